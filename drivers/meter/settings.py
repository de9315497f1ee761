"""Profile keys every meter backend shares: the model (its register map) and the link's patience."""
from __future__ import annotations

from typing import Any, Mapping

from drivers.configfile import Section
from drivers.meter.regmap import list_models, load_map


def read_model(sec: Section, phases: int) -> str:
    """A model with a register map that measures at least the board's phases."""
    model = sec.str("model", choices=list_models())
    model_phases = _model_phases(model)
    if model_phases < phases:
        raise sec.error("model", f"{model} measures {model_phases} phase(s) but the board has {phases}",
                        ", ".join(m for m in list_models() if _model_phases(m) >= phases))
    return model


def read_unit_id(sec: Section) -> int:
    return sec.int("unit_id", 1, min=1, max=247)


def read_link_limits(sec: Section) -> dict[str, int]:
    """Timeout and retries, for the simulated link too (tests shorten them)."""
    return {
        "timeout_ms": sec.int("timeout_ms", 500, min=20, max=10000),
        "retries": sec.int("retries", 2, min=0, max=10),
    }


def _model_phases(model: str) -> int:
    return load_map(model).phases


async def build_modbus_meter(settings: Mapping[str, Any], parts):
    """The Modbus client for a real meter, RTU or TCP alike (``settings`` name the transport)."""
    from drivers.meter import make_meter

    return make_meter(clock=parts.clock, max_current_a=parts.max_current_a, **settings)
