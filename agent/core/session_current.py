"""The current a connector may draw: the site's share applied to one session.

Why a mixin of its own: the load manager (outside the core) decides each connector's share of
the site's supply; the session only has to turn that share into what the car is told and whether
power may flow. A pilot connector offers ``min(share, max_current_a)`` rounded down to whole
amps; below 6 A, the lowest current IEC 61851 PWM can offer, it offers nothing and pauses
(``suspended_evse``), and resumes when the share is back. A socket outlet cannot be modulated:
at 6 A or more it is on, below that it is off. The relay itself is the safety gate's business
(``agent.core.safety``), which sees the same event.

A pause for the site's sake is not the buyer's idle time (idle time is billed as parking), and a
socket outlet switched off is not a car that finished: its finish detection waits until the
outlet is on again.

``CurrentControl`` is a mixin of ``agent.core.session.Session``.
"""

from agent.core.session_commands import SetOfferedCurrent
from agent.core.session_states import (
    CHARGING,
    FINISH_HOLD_TIMER,
    SUSPENDED_EV,
    SUSPENDED_EVSE,
)

# IEC 61851-1: the lowest current a PWM duty cycle can offer.
MIN_OFFER_A = 6


def offer_for(limit_a, max_current_a):
    """Whole amps a connector offers under ``limit_a`` (None: no limit); 0 means paused."""
    offer = max_current_a if limit_a is None or limit_a >= max_current_a else limit_a
    offer = int(offer)
    return offer if offer >= MIN_OFFER_A else 0


class CurrentControl:
    """The site's share for ``Session``: what is offered, and the pause below 6 A."""

    def _init_current(self):
        self._limit_a = None
        self.load_paused = False

    @property
    def limit_a(self):
        """The share in force (amps), or None while no load manager has said anything."""
        return self._limit_a

    def offered_a(self):
        """What this connector offers now when a car may charge (0: paused for the site).

        A socket outlet offers nothing to anyone: its "offer" is its rating, the ceiling the gate
        holds its current to while it is on.
        """
        if not self.pilot_mode:
            return self.settings.max_current_a
        return offer_for(self._limit_a, self.settings.max_current_a)

    def _power_may_flow(self):
        return self._gate_ok and not self.load_paused

    def _running_state(self):
        return CHARGING if self._power_may_flow() else SUSPENDED_EVSE

    def _on_current_limit(self, event, out):
        max_a = self.settings.max_current_a
        before_a = offer_for(self._limit_a, max_a)
        self._limit_a = event.limit_a
        paused = offer_for(event.limit_a, max_a) == 0
        was_paused = self.load_paused
        self.load_paused = paused
        if not self._auth_active:
            return
        now = event.time_ms
        if self.pilot_mode and self.pilot in ("B", "C", "D") and self.offered_a() != before_a:
            out.append(SetOfferedCurrent(self.offered_a()))
        if paused == was_paused:
            return
        state = self.state
        if paused:
            # A pilot car that paused itself (B) stays in its own pause.
            if state == CHARGING or (state == SUSPENDED_EV and not self.pilot_mode):
                self.state = SUSPENDED_EVSE
                # A socket outlet switched off draws nothing; that is not the car finishing.
                self._below_since_ms = None
                self._cancel(FINISH_HOLD_TIMER, out)
            self._update_idle(now)
        elif state == SUSPENDED_EVSE and self.relay_requested:
            # Idle is judged again from the next reading: the last one was taken with no power.
            self.state = self._running_state()
            self._below_since_ms = None
