"""Commands the session and the safety gate emit; the runtime carries them out.

Commands compare by value, so tests and the gate can look for "the relay was asked to close"
without caring which object said so.
"""


class Command:
    __slots__ = ()
    kind = "command"

    def fields(self):
        return ()

    def __eq__(self, other):
        return type(self) is type(other) and self.fields() == other.fields()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.kind, repr(self.fields())))

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(repr(f) for f in self.fields()))


class CloseRelay(Command):
    __slots__ = ("reason",)
    kind = "close_relay"

    def __init__(self, reason):
        self.reason = reason

    def fields(self):
        return (self.reason,)


class OpenRelay(Command):
    __slots__ = ("reason",)
    kind = "open_relay"

    def __init__(self, reason):
        self.reason = reason

    def fields(self):
        return (self.reason,)


class SetOfferedCurrent(Command):
    """Pilot PWM duty in amps; 0 means no PWM (state B1/C1: "not now")."""

    __slots__ = ("current_a",)
    kind = "set_offered_current"

    def __init__(self, current_a):
        self.current_a = current_a

    def fields(self):
        return (self.current_a,)


class PublishStatus(Command):
    __slots__ = ("status",)
    kind = "publish_status"

    def __init__(self, status):
        self.status = status

    def fields(self):
        return (self.status,)


class JournalRecord(Command):
    __slots__ = ("record", "data")
    kind = "journal_record"

    def __init__(self, record, data):
        self.record = record
        self.data = data

    def fields(self):
        return (self.record, self.data)


class ScheduleTimer(Command):
    """Fire ``TimerFired(timer_id, t)`` at ``at_ms``; replaces any pending timer of that id."""

    __slots__ = ("timer_id", "at_ms")
    kind = "schedule_timer"

    def __init__(self, timer_id, at_ms):
        self.timer_id = timer_id
        self.at_ms = at_ms

    def fields(self):
        return (self.timer_id, self.at_ms)


class CancelTimer(Command):
    __slots__ = ("timer_id",)
    kind = "cancel_timer"

    def __init__(self, timer_id):
        self.timer_id = timer_id

    def fields(self):
        return (self.timer_id,)
