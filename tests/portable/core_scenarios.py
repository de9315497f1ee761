"""Session and safety scenarios run unchanged under CPython and MicroPython; their lines must match.

Imports only the portable core. ``run()`` returns the lines sorted; every line starts with the
scenario name and a zero-padded step number, so sorting keeps each scenario's own order while
making the whole independent of dict ordering. Floats are printed as integer thousandths because
the two interpreters print floats differently.
"""

from agent.core.auth import AuthError, Authorization, Authorizer
from agent.core.errors import AgentError
from agent.core.safety import SafetySettings, SafetySupervisor
from agent.core.session import (
    AuthGranted,
    AuthRevoked,
    Fault,
    LimitReached,
    LocalReset,
    MeterReading,
    PilotChanged,
    RelayFeedback,
    Session,
    SessionSettings,
    StopRequested,
    TimerFired,
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


def _command(command):
    return command.kind + "(" + ",".join(_value(f) for f in command.fields()) + ")"


class _Script:
    """Feeds events to a supervisor, remembering timers as the runtime would, and logs lines."""

    def __init__(self, name, lines, mode="pilot", cost=None, **safety):
        self.name = name
        self.lines = lines
        self.step = 0
        self.session = Session(settings=SessionSettings(mode=mode, max_current_a=32), cost=cost,
                               new_session_id=self._session_id)
        self.sup = SafetySupervisor(session=self.session, settings=SafetySettings(**safety))
        self.timers = {}
        self._ids = 0

    def _session_id(self):
        self._ids += 1
        return "%s-%d" % (self.name, self._ids)

    def _log(self, label, out):
        self.step += 1
        shown = []
        for command in out:
            if command.kind == "schedule_timer":
                self.timers[command.timer_id] = command.at_ms
            elif command.kind == "cancel_timer" and command.timer_id in self.timers:
                del self.timers[command.timer_id]
            shown.append(_command(command))
        self.lines.append("%s:%02d %s -> %s | state=%s relay=%s fault=%s" % (
            self.name, self.step, label, "; ".join(shown), self.session.state, self.sup.relay_closed,
            self.sup.latched_fault))

    def feed(self, event):
        label = type(event).__name__ + _value(event.fields())
        try:
            out = self.sup.handle(event)
        except AgentError as err:
            self.step += 1
            self.lines.append("%s:%02d %s -> error %s: %s" % (self.name, self.step, label, err.code, err))
            return
        self._log(label, out)

    def tick(self, now_ms):
        self._log("tick(%d)" % now_ms, self.sup.tick(now_ms))

    def fire(self, timer_id):
        at_ms = self.timers.pop(timer_id)
        self.feed(TimerFired(timer_id, at_ms))

    def summary(self):
        self.step += 1
        self.lines.append("%s:%02d summary %s" % (self.name, self.step, _value(self.session.last_summary)))


def _auth(auth_id, **limits):
    return Authorization(auth_id=auth_id, source="contract", token="order", **limits)


def _cost(energy_wh, elapsed_ms, idle_ms):
    # 18 paise per Wh (18 rupees per kWh) plus 2 paise per idle minute started.
    return energy_wh * 18 + (idle_ms + 59999) // 60000 * 2


def _pilot_session(lines):
    s = _Script("pilot", lines, cost=_cost)
    s.feed(MeterReading(0, 50000, 0, (0.0, 0.0, 0.0)))
    s.feed(PilotChanged("B", 100))
    s.feed(AuthGranted(_auth("a1"), 200))
    s.feed(PilotChanged("C", 300))
    energy = 50000
    for t in range(1300, 6300, 1000):
        energy += 2
        s.feed(MeterReading(t, energy, 7400, (10.7, 10.7, 10.7)))
    s.feed(PilotChanged("B", 6500))
    s.feed(MeterReading(7300, energy, 0, (0.0, 0.0, 0.0)))
    # The meter went silent while paused; the car asks again: power waits for a fresh reading.
    s.feed(PilotChanged("C", 69000))
    s.feed(MeterReading(69500, energy, 0, (0.0, 0.0, 0.0)))
    s.feed(MeterReading(70000, energy, 0, (0.0, 0.0, 0.0)))
    s.feed(MeterReading(70300, energy + 2, 7400, (10.7, 10.7, 10.7)))
    s.feed(StopRequested(71000, "app"))
    s.feed(PilotChanged("A", 200000))
    s.summary()


def _energy_limit(lines):
    s = _Script("energy", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1", energy_limit_wh=20), 0))
    energy = 1000
    for t in range(1000, 10000, 1000):
        energy = 1000 + 7400 * t // 3600000
        s.feed(MeterReading(t, energy, 7400, (32.0, 0.0, 0.0)))
    s.fire("session.limit")
    s.feed(PilotChanged("A", 12000))
    s.summary()


def _money_limit(lines):
    s = _Script("money", lines, cost=_cost)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1", money_limit_paise=500), 0))
    for t in range(1000, 5000, 1000):
        s.feed(MeterReading(t, 1000 + 22000 * t // 3600000, 22000, (31.9, 31.9, 31.9)))
    s.fire("session.limit")
    s.feed(PilotChanged("A", 5000))
    s.summary()


def _time_and_departure(lines):
    s = _Script("time", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1", time_limit_ms=3000, departure_ms=9000), 500))
    s.feed(MeterReading(1500, 1001, 3600, 15.6))
    s.feed(MeterReading(2500, 1002, 3600, 15.6))
    s.fire("session.limit")
    s.feed(AuthRevoked("a1", 3600))


def _socket(lines):
    s = _Script("socket", lines, mode="socket", cost=_cost)
    s.feed(MeterReading(0, 500, 0, 0.0))
    s.feed(PilotChanged("C", 1))
    s.feed(AuthGranted(_auth("a1"), 100))
    s.feed(MeterReading(1000, 500, 2300, 10.0))
    s.feed(MeterReading(2000, 501, 2300, 10.0))
    s.fire("session.plug_hold")
    s.feed(MeterReading(4000, 502, 20, 0.1))
    for t in range(5000, 64000, 4000):
        s.feed(MeterReading(t, 502, 0, 0.0))
    s.fire("session.finish_hold")
    s.summary()


def _faults(lines):
    s = _Script("latch", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1"), 10))
    s.feed(PilotChanged("E", 20))
    s.feed(PilotChanged("C", 30))
    s.feed(AuthGranted(_auth("a2"), 40))
    s.feed(LocalReset(50))
    s.feed(AuthGranted(_auth("a2"), 60))
    s.feed(MeterReading(1000, 999, 0, 0.0))
    s.feed(LocalReset(1100))

    s = _Script("overcurrent", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1"), 0))
    for t in range(1000, 8000, 1000):
        s.feed(MeterReading(t, 1000, 8000, (36.0, 0.0, 0.0)))
    s.tick(7999)
    s.tick(8000)

    s = _Script("timeout", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1"), 0))
    s.tick(5000)
    s.tick(5001)
    s.feed(MeterReading(5200, 1000, 0, 0.0))

    s = _Script("weld", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 0))
    s.feed(AuthGranted(_auth("a1"), 0))
    s.feed(RelayFeedback(True, 50))
    s.feed(StopRequested(1000))
    s.tick(2999)
    s.tick(3000)
    s.feed(RelayFeedback(False, 3100))
    s.feed(LocalReset(3200))
    s.feed(Fault("rcd", 3300, latch=False))
    s.feed(LimitReached("tariff", 3400))


def _bad_input(lines):
    s = _Script("bad", lines)
    s.feed(MeterReading(1000, 10, 0, 0.0))
    s.feed(PilotChanged("B", 999))
    s.feed(AuthRevoked("nobody", 1001))
    for label, build in (
        ("reading", lambda: MeterReading(0, -5, 0, 0.0)),
        ("pilot", lambda: PilotChanged("Z", 0)),
        ("auth", lambda: Authorization(auth_id="x", source="cash")),
        ("limit", lambda: Authorization(auth_id="x", source="ocpi", energy_limit_wh=0)),
        ("session", lambda: SessionSettings(finish_hold_ms=5)),
        ("safety", lambda: SafetySettings(overcurrent_hold_ms=60000)),
        ("safety-key", lambda: SafetySettings.from_dict({"timeout": 1})),
    ):
        try:
            build()
            lines.append("bad:%s accepted" % label)
        except AgentError as err:
            lines.append("bad:%s error %s: %s" % (label, err.code, err))


def _authorizer(lines):
    ids = []

    def new_id():
        ids.append(1)
        return "auth-%d" % len(ids)

    authorizer = Authorizer(new_id=new_id, allow_list={"card-1": {"energy_limit_wh": 5000}, "card-2": None},
                            free_vend=False, free_vend_limits={"time_limit_ms": 3600000})
    for label, grant in (
        ("contract", lambda: authorizer.from_contract("order-7", money_limit_paise=20000)),
        ("ocpi", lambda: authorizer.from_ocpi("TOKEN-1", energy_limit_wh=7000)),
        ("card-1", lambda: authorizer.from_local_token("card-1")),
        ("card-2", lambda: authorizer.from_local_token("card-2")),
        ("card-9", lambda: authorizer.from_local_token("card-9")),
        ("free-off", lambda: authorizer.from_free_vend()),
    ):
        try:
            auth = grant()
            shown = "none" if auth is None else "%s %s %s %s" % (auth.auth_id, auth.source, auth.token,
                                                                 _value(auth.limits()))
            lines.append("auth:%s %s" % (label, shown))
        except AuthError as err:
            lines.append("auth:%s error %s: %s" % (label, err.code, err))
    authorizer.set_free_vend(True)
    auth = authorizer.from_free_vend()
    lines.append("auth:free-on %s %s %s" % (auth.auth_id, auth.source, _value(auth.limits())))


def _plug_timeout(lines):
    # A remote start for a driver who never comes lapses; one who comes in time charges.
    s = _Script("plugto", lines)
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(AuthGranted(_auth("p1"), 1000))
    s.fire("session.plug")
    s.feed(AuthGranted(_auth("p2"), 200000))
    s.feed(PilotChanged("B", 260000))
    s.feed(PilotChanged("A", 270000))
    s.feed(MeterReading(299900, 1000, 0, 0.0))
    s.feed(PilotChanged("C", 300000))
    s.feed(TimerFired("session.plug", 450000))
    s = _Script("plugto-socket", lines, mode="socket")
    s.feed(MeterReading(0, 1000, 0, 0.0))
    s.feed(AuthGranted(_auth("p3"), 1000))
    s.feed(MeterReading(180500, 1000, 0, 0.0))
    s.fire("session.plug")
    s.summary()


def run():
    lines = []
    for scenario in (_pilot_session, _energy_limit, _money_limit, _time_and_departure, _socket, _faults,
                     _bad_input, _authorizer, _plug_timeout):
        scenario(lines)
    return sorted(lines)


if __name__ == "__main__":
    for line in run():
        print(line)
