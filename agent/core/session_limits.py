"""Predictive limits of a session: energy, money, time and departure.

A limit is not checked only when a reading arrives: from the measured power the session works
out the instant the first limit will be reached and sets ``LIMIT_TIMER`` for it, so a session
ends within milliseconds of its limit instead of up to a whole meter poll late. Money goes
through the injected cost function, which must be non-decreasing in each argument, so the
crossing is found by bisection without knowing the tariff.

A money limit is reached when the cost has reached it *and* the session going on for one more
second as it is (``_MONEY_LOOKAHEAD_MS``, at the measured power) would cost more than it. Why:
a fixed part of the price (a start fee, a minimum price, a step already billed) can reach the
limit before any energy flows; the cost then stays flat while energy is delivered that this
price already pays for, so stopping as soon as the cost reaches the limit would bill the whole
amount for nothing (a quote for 20 Wh at a site with a minimum price, paid in full, stopped at
0 Wh). A cost that already exceeds the limit (a start fee above it) still stops at once.

``SessionLimits`` is a mixin of ``agent.core.session.Session``: it reads the session's state
and uses its timer helpers.
"""

from agent.core.session_states import CHARGING, LIMIT_TIMER, SessionError

_MS_PER_HOUR = 3600000
# How far ahead the money limit is searched; beyond this the next reading re-plans anyway.
_MONEY_HORIZON_MS = 48 * _MS_PER_HOUR
# How far ahead "would the session cost more than its limit" looks (module docstring).
_MONEY_LOOKAHEAD_MS = 1000


def _ceil_div(a, b):
    return -((-a) // b)


class SessionLimits:
    """Limit planning for ``Session``: when the first limit falls due, and whether it has."""

    def limit_due(self, now_ms):
        """The first limit already reached at ``now_ms`` (power extrapolated), or None.

        The supervisor calls this on its timer as a second line behind the limit timer.
        """
        auth = self._auth
        if auth is None or not self._auth_active or self._start_ms is None:
            return None
        if auth.departure_ms is not None and now_ms >= auth.departure_ms:
            return "departure"
        if auth.time_limit_ms is not None and now_ms - self._start_ms >= auth.time_limit_ms:
            return "time"
        energy_wh = self._projected_energy_wh(now_ms)
        if auth.energy_limit_wh is not None and energy_wh >= auth.energy_limit_wh:
            return "energy"
        if auth.money_limit_paise is not None and self._money_reached(now_ms, energy_wh, auth.money_limit_paise):
            return "money"
        return None

    def _money_reached(self, now_ms, energy_wh, limit):
        elapsed = now_ms - self._start_ms
        idle = self.idle_ms(now_ms)
        if self._cost(energy_wh, elapsed, idle) < limit:
            return False
        later = now_ms + _MONEY_LOOKAHEAD_MS
        idle_later = idle + (_MONEY_LOOKAHEAD_MS if self._idle_since_ms is not None else 0)
        return self._cost(self._projected_energy_wh(later), elapsed + _MONEY_LOOKAHEAD_MS, idle_later) > limit

    def _cost(self, energy_wh, elapsed_ms, idle_ms):
        value = self._cost_fn(energy_wh, elapsed_ms, idle_ms)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SessionError("cost function returned %r; it must return an int of paise >= 0" % (value,),
                               code="bad-tariff")
        return value

    def _projected_energy_wh(self, now_ms):
        delivered = self.delivered_wh()
        if self.state != CHARGING or self._reading_ms is None or self._power_w <= 0 or now_ms <= self._reading_ms:
            return delivered
        return delivered + int(self._power_w * (now_ms - self._reading_ms)) // _MS_PER_HOUR

    def _plan_limits(self, now, out):
        """Schedule the limit timer at the earliest instant a limit will be reached."""
        auth = self._auth
        if auth is None or self._start_ms is None:
            return
        deadlines = []
        if auth.departure_ms is not None:
            deadlines.append(auth.departure_ms)
        if auth.time_limit_ms is not None:
            deadlines.append(self._start_ms + auth.time_limit_ms)
        power = int(self._power_w)
        anchor = self._reading_ms
        if anchor is not None and power > 0 and self.state == CHARGING and self._start_energy_wh is not None:
            delivered = self.delivered_wh()
            if auth.energy_limit_wh is not None:
                remaining = auth.energy_limit_wh - delivered
                deadlines.append(anchor + _ceil_div(remaining * _MS_PER_HOUR, power))
            if auth.money_limit_paise is not None:
                at = self._money_crossing(anchor, delivered, power, auth.money_limit_paise)
                if at is not None:
                    deadlines.append(at)
        if not deadlines:
            self._cancel(LIMIT_TIMER, out)
            return
        at_ms = deadlines[0]
        for value in deadlines:
            if value < at_ms:
                at_ms = value
        if at_ms < now:
            at_ms = now
        self._schedule(LIMIT_TIMER, at_ms, out)

    def _money_crossing(self, anchor, delivered, power, limit):
        elapsed0 = anchor - self._start_ms
        idle0 = self.idle_ms(anchor)
        idle_grows = self._idle_since_ms is not None

        def cost_after(dt):
            return self._cost(delivered + power * dt // _MS_PER_HOUR, elapsed0 + dt,
                              idle0 + (dt if idle_grows else 0))

        def reached(dt):  # both parts grow with dt, so this flips once: bisection finds it
            return cost_after(dt) >= limit and cost_after(dt + _MONEY_LOOKAHEAD_MS) > limit

        if reached(0):
            return anchor
        high = 1000
        while not reached(high):
            if high >= _MONEY_HORIZON_MS:
                return None
            high *= 2
        low = 0
        while high - low > 1:
            mid = (low + high) // 2
            if reached(mid):
                high = mid
            else:
                low = mid
        return anchor + high
