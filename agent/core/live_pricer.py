"""The running cost of a live session, from meter readings, on every meter poll.

Each interval between two readings becomes one period for the session pricer, priced with the
state at its start, so the live figure is the one a receipt made at that moment would state.

The session closes at its stop reading (``close``), and the energy priced is then exactly the
stop minus the start, whatever the readings in between did: a reading that was too high (a
misread while parked) would otherwise stay priced although the signed stop reading, and so
the receipt's energy, is below it.
"""

from agent.core.tariff_model import Period
from agent.core.tariff_numbers import TariffError
from agent.core.tariff_pricer import SessionPricer


class LivePricer:
    """Running cost of a live session from meter readings, cheap enough for every meter poll.

    Each interval between two readings is one period, priced with the state at its start
    (charging or idle, current, power). ``breakdown(now_s)`` gives the cost so far.
    """

    __slots__ = ("pricer", "first_wh", "first_period", "last_s", "last_wh", "last_charging",
                 "last_current_ma", "last_power_w")

    def __init__(self, tariff, *, utc_offset_s=0, record_periods=True):
        self.pricer = SessionPricer(tariff, utc_offset_s, record_periods=record_periods)
        self.first_wh = None
        self.first_period = None
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
            self.pricer.add(self._period(epoch_s, energy_wh, power_w))
        else:
            self.first_wh = energy_wh
            self.first_period = Period(epoch_s, 0, 0, 0, current_ma, current_ma, power_w, power_w)
            self.pricer.begin(epoch_s, self.first_period)
        self.last_s = epoch_s
        self.last_wh = energy_wh
        self.last_charging = bool(charging)
        self.last_current_ma = current_ma
        self.last_power_w = power_w

    def close(self, epoch_s, energy_wh):
        """Take the session's stop reading; from then on the energy priced is its stop minus start.

        A stop at or above the last reading is one more reading (the car idle since). A stop
        below it means a reading in between was too high: the session is priced again from its
        charging periods with the excess taken off the latest energy, so the breakdown and the
        periods state the energy the signed readings show.
        """
        if self.last_s is None:
            raise TariffError("close", "the session has no start reading")
        if energy_wh < self.first_wh:
            raise TariffError("energy_wh", "stop reading below the start reading")
        if epoch_s < self.last_s:
            epoch_s = self.last_s
        if energy_wh >= self.last_wh:
            self.reading(epoch_s, energy_wh, charging=False)
            return
        if self.pricer.periods is None:
            raise TariffError("close", "a stop below the last reading needs the recorded periods")
        periods = [Period(p.start_s, p.energy_wh, p.time_s, p.parking_s, p.min_current_ma,
                          p.max_current_ma, p.min_power_w, p.max_power_w, p.reservation_s)
                   for p in self.pricer.periods]
        if epoch_s > self.last_s:
            periods.append(self._period(epoch_s, self.last_wh))
        excess = self.last_wh - energy_wh
        for period in reversed(periods):
            if excess <= 0:
                break
            cut = period.energy_wh if period.energy_wh < excess else excess
            period.energy_wh -= cut
            excess -= cut
        old = self.pricer
        pricer = SessionPricer(old.tariff, old.utc_offset_s, record_periods=True,
                               reservation_expired=old.reservation_expired)
        pricer.begin(old.start_s, self.first_period)
        for period in periods:
            pricer.add(period)
        self.pricer = pricer
        self.last_s = epoch_s
        self.last_wh = energy_wh
        self.last_charging = False

    def _period(self, epoch_s, energy_wh, power_w=None):
        """The interval since the last reading, priced with the state at its start; except that
        an interval which ends drawing power with energy delivered was charging time whatever
        that state said (the first reading after the contacts close comes before the session
        knows it charges), so delivered energy never sits in a period with no charging time. A
        register that rose with no power drawn (a misread while parked) stays parking."""
        elapsed = epoch_s - self.last_s
        charging = self.last_charging or (energy_wh > self.last_wh and power_w is not None and power_w > 1)
        return Period(self.last_s, energy_wh - self.last_wh,
                      elapsed if charging else 0,
                      0 if charging else elapsed,
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
