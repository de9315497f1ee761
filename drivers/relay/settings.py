"""Profile keys every relay backend shares: the settle time and the fail-safe sentence."""
from __future__ import annotations

from drivers.configfile import Section


def read_settle_ms(sec: Section) -> int:
    """How long the contacts (and their mirror) may take to follow the coil."""
    return sec.int("settle_ms", 100, min=0, max=5000)


def read_fail_safe(sec: Section, default: str | None = None) -> str:
    """How the hardware keeps the relay open without the agent: required unless ``default``.

    The self-test prints it so whoever commissions the charger reads it; an empty sentence is
    as good as none.
    """
    text = sec.str("fail_safe") if default is None else sec.str("fail_safe", default)
    if not text.strip():
        raise sec.error("fail_safe", "must say how the hardware keeps the relay open without the agent")
    return text
