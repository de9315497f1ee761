"""Page sessions expire when unused, a live stream does not keep one alive, the throttle doubles."""
from __future__ import annotations

from protocols.owner.guard import LoginThrottle, Sessions, csrf_ok


class Clock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self):
        return self.now_s


def test_a_session_lasts_its_time_after_the_last_request_but_not_after_a_stream_poll():
    clock = Clock()
    ids = iter(f"id-{i}" for i in range(100))
    sessions = Sessions(now_s=clock, ttl_s=100, token=lambda: next(ids))
    s = sessions.create("owner")
    clock.now_s = 90
    assert sessions.get(s.sid) is s  # a request: good for another 100 s
    clock.now_s = 180
    assert sessions.get(s.sid, touch=False) is s
    clock.now_s = 191
    assert sessions.get(s.sid, touch=False) is None and sessions.get(s.sid) is None


def test_a_changed_password_logs_out_the_roles_other_browsers_and_memory_stays_bounded():
    clock = Clock()
    sessions = Sessions(now_s=clock, max_sessions=3)
    a, b, t = sessions.create("owner"), sessions.create("owner"), sessions.create("technician")
    sessions.end_role("owner", keep=a.sid)
    assert sessions.get(a.sid) is a and sessions.get(b.sid) is None and sessions.get(t.sid) is t
    made = [sessions.create("owner") for _ in range(5)]
    assert sum(sessions.get(x.sid) is not None for x in made + [a, t]) == 3


def test_csrf_tokens_are_compared_whole():
    sessions = Sessions(now_s=Clock())
    s = sessions.create("owner")
    assert csrf_ok(s, s.csrf) and not csrf_ok(s, s.csrf[:-1]) and not csrf_ok(s, None) and not csrf_ok(s, "")


def test_the_throttle_counts_all_addresses_together_too():
    clock = Clock()
    throttle = LoginThrottle(now_s=clock, free_failures=5, free_failures_all=8, base_delay_s=2)
    for i in range(8):
        throttle.failed(f"10.0.0.{i}")  # one guess from each of many addresses
    assert throttle.wait_s("10.0.0.99") == 0
    throttle.failed("10.0.0.50")
    assert throttle.wait_s("10.0.0.99") == 2  # a ninth address waits as well
    clock.now_s = 2
    assert throttle.wait_s("10.0.0.99") == 0
