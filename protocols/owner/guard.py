"""Who is logged in, and how fast anyone may guess: the page's sessions and login throttle.

Sessions live in memory only: a restart of the agent logs everyone out, which costs the owner
one login and means no session secret is ever on the board's flash. The cookie carries a random
id (256 bits); its CSRF token is a second random value, sent back in every form.

The throttle slows guessing without locking the owner out for good: after ``free_failures``
wrong attempts from one address each further attempt must wait twice as long as the last
(from ``base_delay_s`` up to ``max_delay_s``), and the same rule runs over all addresses
together with a larger allowance, so many addresses buy a guesser nothing.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Callable


@dataclass(slots=True, kw_only=True)
class PageSession:
    """One logged-in browser."""

    sid: str
    role: str
    csrf: str
    expires_s: float
    must_set_password: bool = False


@dataclass(kw_only=True)
class Sessions:
    """Logged-in browsers by cookie id; each expires ``ttl_s`` after its last use."""

    now_s: Callable[[], float]
    ttl_s: float = 12 * 3600
    token: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(32))
    max_sessions: int = 64
    _by_sid: dict = field(default_factory=dict)

    def create(self, role: str, *, must_set_password: bool = False) -> PageSession:
        self._expire()
        while len(self._by_sid) >= self.max_sessions:  # the oldest goes: memory stays bounded
            self._by_sid.pop(next(iter(self._by_sid)))
        session = PageSession(sid=self.token(), role=role, csrf=self.token(),
                              expires_s=self.now_s() + self.ttl_s, must_set_password=must_set_password)
        self._by_sid[session.sid] = session
        return session

    def get(self, sid: str | None, *, touch: bool = True) -> PageSession | None:
        """The live session of a cookie; ``touch`` (a person's request) extends it, a stream does not."""
        if not sid:
            return None
        session = self._by_sid.get(sid)
        if session is None:
            return None
        now = self.now_s()
        if session.expires_s <= now:
            self._by_sid.pop(sid, None)
            return None
        if touch:
            session.expires_s = now + self.ttl_s
        return session

    def end(self, sid: str | None) -> None:
        self._by_sid.pop(sid or "", None)

    def end_role(self, role: str, *, keep: str | None = None) -> None:
        """Log out every browser of a role (its password changed), except ``keep``."""
        for sid in [s for s, v in self._by_sid.items() if v.role == role and s != keep]:
            self._by_sid.pop(sid, None)

    def _expire(self) -> None:
        now = self.now_s()
        for sid in [s for s, v in self._by_sid.items() if v.expires_s <= now]:
            self._by_sid.pop(sid, None)


def csrf_ok(session: PageSession, sent: str | None) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(session.csrf.encode(), sent.encode())


@dataclass(slots=True)
class _Count:
    failures: int = 0
    not_before_s: float = 0.0


@dataclass(kw_only=True)
class LoginThrottle:
    """Failed logins per client address and in all; ``wait_s`` says how long until the next try."""

    now_s: Callable[[], float]
    free_failures: int = 5
    free_failures_all: int = 50
    base_delay_s: float = 2.0
    max_delay_s: float = 600.0
    max_clients: int = 1024
    _clients: dict = field(default_factory=dict)
    _all: _Count = field(default_factory=_Count)

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        now = self.now_s()
        mine = self._clients.get(client)
        waits = [self._all.not_before_s - now]
        if mine is not None:
            waits.append(mine.not_before_s - now)
        return max(0.0, *waits)

    def failed(self, client: str) -> None:
        if client not in self._clients and len(self._clients) >= self.max_clients:
            self._clients.pop(next(iter(self._clients)))
        mine = self._clients.setdefault(client, _Count())
        self._bump(mine, self.free_failures)
        self._bump(self._all, self.free_failures_all)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _bump(self, count: _Count, free: int) -> None:
        count.failures += 1
        over = count.failures - free
        if over > 0:
            delay = min(self.max_delay_s, self.base_delay_s * 2 ** min(over - 1, 20))
            count.not_before_s = self.now_s() + delay
