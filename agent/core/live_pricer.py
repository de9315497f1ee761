"""The running cost of a live session, from meter readings, on every meter poll.

Each interval between two readings becomes one period for the session pricer, priced with the
state at its start, so the live figure is the one a receipt made at that moment would state.
"""

from agent.core.tariff_model import Period
from agent.core.tariff_numbers import TariffError
from agent.core.tariff_pricer import SessionPricer


class LivePricer:
    """Running cost of a live session from meter readings, cheap enough for every meter poll.

    Each interval between two readings is one period, priced with the state at its start
    (charging or idle, current, power). ``breakdown(now_s)`` gives the cost so far.
    """

    __slots__ = ("pricer", "last_s", "last_wh", "last_charging", "last_current_ma",
                 "last_power_w")

    def __init__(self, tariff, *, utc_offset_s=0, record_periods=True):
        self.pricer = SessionPricer(tariff, utc_offset_s, record_periods=record_periods)
        self.last_s = None
        self.last_wh = None
        self.last_charging = False
        self.last_current_ma = None
        self.last_power_w = None

    @property
    def tariff(self):
        return self.pricer.tariff

    def reading(self, epoch_s, energy_wh, *, power_w=None, current_ma=None, charging=True):
        """Take a meter reading: ``energy_wh`` is the meter register, a whole number of Wh."""
        for name, value in (("epoch_s", epoch_s), ("energy_wh", energy_wh)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TariffError(name, "must be a whole number, got " + repr(value))
        if self.last_s is not None:
            if epoch_s < self.last_s:
                raise TariffError("epoch_s", "reading older than the previous one")
            if energy_wh < self.last_wh:
                raise TariffError("energy_wh", "meter register went backwards")
            self.pricer.add(self._period(epoch_s, energy_wh))
        else:
            self.pricer.begin(epoch_s, Period(epoch_s, 0, 0, 0, current_ma, current_ma,
                                              power_w, power_w))
        self.last_s = epoch_s
        self.last_wh = energy_wh
        self.last_charging = bool(charging)
        self.last_current_ma = current_ma
        self.last_power_w = power_w

    def _period(self, epoch_s, energy_wh):
        elapsed = epoch_s - self.last_s
        return Period(self.last_s, energy_wh - self.last_wh,
                      elapsed if self.last_charging else 0,
                      0 if self.last_charging else elapsed,
                      self.last_current_ma, self.last_current_ma,
                      self.last_power_w, self.last_power_w)

    def breakdown(self, now_s=None):
        """Cost so far; with ``now_s`` after the last reading, time up to ``now_s`` counts too."""
        if now_s is None or self.last_s is None or now_s <= self.last_s:
            return self.pricer.breakdown()
        pricer = self.pricer.copy()
        pricer.add(self._period(now_s, self.last_wh))
        return pricer.breakdown()

    def periods(self):
        """The session's OCPI charging periods so far (merged while nothing relevant changes)."""
        return list(self.pricer.periods or ())
