"""The site's share of current (``CurrentLimit``) under CPython and MicroPython; lines must match.

Imports only the portable core. Same form as ``core_scenarios``: every line starts with the
scenario name and a zero-padded step, ``run()`` returns them sorted, floats are printed as
integer thousandths.
"""

from agent.core.auth import Authorization
from agent.core.errors import AgentError
from agent.core.safety import SafetySettings, SafetySupervisor
from agent.core.session import (
    AuthGranted,
    CurrentLimit,
    MeterReading,
    PilotChanged,
    Session,
    SessionSettings,
    StopRequested,
)


def _value(value):
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "%dm" % int(round(value * 1000))
    if isinstance(value, dict):
        return "{" + ",".join("%s=%s" % (k, _value(value[k])) for k in sorted(value)) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_value(v) for v in value) + ")"
    return str(value)


class _Script:
    def __init__(self, name, lines, mode="pilot", max_current_a=32):
        self.name = name
        self.lines = lines
        self.step = 0
        self.session = Session(settings=SessionSettings(mode=mode, max_current_a=max_current_a),
                               new_session_id=lambda: name + "-1")
        self.sup = SafetySupervisor(session=self.session, settings=SafetySettings())

    def _line(self, label, text):
        self.step += 1
        self.lines.append("%s:%02d %s -> %s | state=%s relay=%s ceiling=%s idle_ms=%d" % (
            self.name, self.step, label, text, self.session.state, self.sup.relay_closed,
            _value(self.sup.status(self.sup._now_ms)["ceiling_a"]), self.session.idle_ms(self.sup._now_ms)))

    def _show(self, label, out):
        shown = [c.kind + "(" + ",".join(_value(f) for f in c.fields()) + ")" for c in out
                 if c.kind != "publish_status" and c.kind != "schedule_timer"]
        self._line(label, "; ".join(shown))

    def feed(self, event):
        label = type(event).__name__ + _value(event.fields())
        try:
            out = self.sup.handle(event)
        except AgentError as err:
            self.step += 1
            self.lines.append("%s:%02d %s -> error %s: %s" % (self.name, self.step, label, err.code, err))
            return
        self._show(label, out)

    def tick(self, now_ms):
        self._show("tick(%d)" % now_ms, self.sup.tick(now_ms))

    def readings(self, start_ms, end_ms, energy_wh, power_w, current_a):
        """A reading a second from ``start_ms`` to ``end_ms``, the register rising at ``power_w``."""
        for t in range(start_ms, end_ms + 1, 1000):
            self.feed(MeterReading(t, energy_wh + power_w * (t - start_ms) // 3600000, power_w, current_a))


def _auth(auth_id):
    return Authorization(auth_id=auth_id, source="contract", token="order")


def _pilot_follows_the_share(lines):
    """The offer follows the share; a car that keeps drawing is judged only after its reaction time."""
    s = _Script("share", lines)
    s.feed(MeterReading(0, 1000, 0, (0.0, 0.0, 0.0)))
    s.feed(CurrentLimit(20.7, 10))
    s.feed(PilotChanged("C", 100))
    s.feed(AuthGranted(_auth("a1"), 200))
    s.feed(MeterReading(1000, 1001, 13800, (20.0, 20.0, 20.0)))
    s.feed(CurrentLimit(10, 2000))
    # Within its 5 s the car may still draw what it was offered before; after them 20 A is over
    # the 10 A ceiling: the overload window opens at 7 s and 7 s later the session stops.
    s.readings(3000, 13000, 1002, 13800, (20.0, 20.0, 20.0))
    s.tick(13999)
    s.tick(14000)


def _pilot_obeys(lines):
    s = _Script("obeys", lines)
    s.feed(MeterReading(0, 1000, 0, (0.0, 0.0, 0.0)))
    s.feed(PilotChanged("C", 100))
    s.feed(AuthGranted(_auth("a1"), 200))
    s.feed(MeterReading(1000, 1001, 22000, (32.0, 32.0, 32.0)))
    s.feed(CurrentLimit(16, 2000))
    s.feed(MeterReading(4000, 1020, 11000, (16.0, 16.0, 16.0)))
    s.feed(CurrentLimit(40, 5000))
    s.feed(MeterReading(20000, 1100, 22000, (32.0, 32.0, 32.0)))
    s.tick(20001)


def _pilot_pauses_below_six(lines):
    """Below 6 A nothing is offered; the relay opens once the car has had its time, or when it stops."""
    s = _Script("pause", lines)
    s.feed(MeterReading(0, 1000, 0, (0.0, 0.0, 0.0)))
    s.feed(PilotChanged("C", 100))
    s.feed(AuthGranted(_auth("a1"), 200))
    s.feed(MeterReading(1000, 1001, 7400, (10.7, 10.7, 10.7)))
    s.feed(CurrentLimit(5.9, 2000))
    s.readings(3000, 6000, 1002, 7400, (10.7, 10.7, 10.7))
    s.tick(6999)
    s.tick(7000)
    s.readings(8000, 10000, 1010, 0, (0.0, 0.0, 0.0))
    s.feed(CurrentLimit(8, 10500))
    s.readings(11000, 12000, 1010, 5500, (8.0, 8.0, 8.0))
    # This time the car stops by itself (C -> B) before its reaction time is up.
    s.feed(CurrentLimit(0, 12500))
    s.feed(PilotChanged("B", 13000))
    s.feed(PilotChanged("C", 13500))
    s.tick(13501)
    s.feed(CurrentLimit(6, 14000))
    s.readings(14500, 15500, 1012, 4100, (6.0, 6.0, 6.0))
    s.feed(StopRequested(16000, "app"))
    s.feed(PilotChanged("A", 17000))


def _a_limit_before_the_car(lines):
    s = _Script("early", lines)
    s.feed(MeterReading(0, 1000, 0, (0.0, 0.0, 0.0)))
    s.feed(CurrentLimit(3, 10))
    s.feed(PilotChanged("B", 100))
    s.feed(AuthGranted(_auth("a1"), 200))
    s.feed(PilotChanged("C", 300))
    s.tick(301)
    s.feed(CurrentLimit(12.5, 400))
    s.tick(401)


def _socket_switches(lines):
    """A socket outlet is on or off; off is neither the car finishing nor idle time."""
    s = _Script("socket", lines, mode="socket", max_current_a=15)
    s.feed(MeterReading(0, 500, 0, 0.0))
    s.feed(AuthGranted(_auth("a1"), 100))
    s.feed(MeterReading(1000, 500, 2300, 10.0))
    s.feed(MeterReading(3000, 501, 2300, 10.0))
    s.feed(CurrentLimit(0, 4000))
    # Off for two minutes, twice the finish hold: the session waits.
    for t in range(5000, 125000, 4000):
        s.feed(MeterReading(t, 502, 0, 0.0))
    s.feed(CurrentLimit(7, 125500))
    s.feed(MeterReading(126000, 502, 2300, 10.0))
    s.feed(CurrentLimit(5, 127000))
    s.feed(MeterReading(127500, 503, 0, 0.0))
    s.feed(CurrentLimit(15, 128000))
    s.feed(MeterReading(129000, 503, 2300, 10.0))
    s.feed(StopRequested(130000, "app"))


def _bad_limits(lines):
    for label, build in (
        ("negative", lambda: CurrentLimit(-1, 0)),
        ("nan", lambda: CurrentLimit(float("nan"), 0)),
        ("huge", lambda: CurrentLimit(5000, 0)),
        ("text", lambda: CurrentLimit("16", 0)),
        ("reaction", lambda: SafetySettings(ev_reaction_ms=9000)),
    ):
        try:
            build()
            lines.append("bad:%s accepted" % label)
        except AgentError as err:
            lines.append("bad:%s error %s: %s" % (label, err.code, err))


def run():
    lines = []
    for scenario in (_pilot_follows_the_share, _pilot_obeys, _pilot_pauses_below_six, _a_limit_before_the_car,
                     _socket_switches, _bad_limits):
        scenario(lines)
    return sorted(lines)


if __name__ == "__main__":
    for line in run():
        print(line)
