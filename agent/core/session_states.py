"""Names the session machine shares with the safety gate, the runtime and the tests.

The states, pilot states, modes and timer ids are plain strings so that journals, status
messages and test output read the same under CPython and MicroPython.
"""

from agent.core.errors import AgentError

IDLE = "idle"
PLUGGED_WAITING_FOR_AUTH = "plugged_waiting_for_auth"
AUTHORIZED_WAITING_FOR_CAR = "authorized_waiting_for_car"
CHARGING = "charging"
SUSPENDED_EV = "suspended_ev"
SUSPENDED_EVSE = "suspended_evse"
FINISHING = "finishing"
FINISHED = "finished"
FAULTED = "faulted"

STATES = (IDLE, PLUGGED_WAITING_FOR_AUTH, AUTHORIZED_WAITING_FOR_CAR, CHARGING, SUSPENDED_EV,
          SUSPENDED_EVSE, FINISHING, FINISHED, FAULTED)

PILOT_STATES = ("A", "B", "C", "D", "E", "F", "diode_fault")
MODES = ("pilot", "socket")

LIMIT_TIMER = "session.limit"
PLUG_HOLD_TIMER = "session.plug_hold"
FINISH_HOLD_TIMER = "session.finish_hold"
PLUG_TIMER = "session.plug"  # an authorization waiting for a car lapses when it fires


class SessionError(AgentError):
    code = "session-error"
