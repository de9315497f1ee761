"""The period pricer: a session's exact running cost, period by period, for batch and live pricing.

OCPI's step_size, parking after charging and reservation rules are applied here (their
semantics and the choices made are in ``agent.core.tariff``'s docstring); every period costs
O(1) and a breakdown can be taken at any moment, so live cost, quotes, receipts and CDRs agree.
"""

from agent.core.tariff_breakdown import CostBreakdown, flat_part
from agent.core.tariff_calendar import local_parts
from agent.core.tariff_model import ENERGY, FLAT, METERED, PARKING_TIME, TIME, Period, Tariff
from agent.core.tariff_numbers import COST_DEN, VAT_SCALE, TariffError, ceil_to, round_half_up


class _Dimension:
    """Exact running cost of one metered dimension, with OCPI step_size bookkeeping."""

    __slots__ = ("comp", "priced", "billed", "cost_n", "vat_n", "volume", "vat_missing")

    def __init__(self):
        self.comp = None
        self.priced = 0
        self.billed = 0
        self.cost_n = 0
        self.vat_n = 0
        self.volume = 0
        self.vat_missing = False

    def copy(self):
        other = _Dimension()
        other.comp = self.comp
        other.priced = self.priced
        other.billed = self.billed
        other.cost_n = self.cost_n
        other.vat_n = self.vat_n
        other.volume = self.volume
        other.vat_missing = self.vat_missing
        return other

    def _close(self, rounded):
        comp = self.comp
        target = ceil_to(self.priced, comp.step_size) if rounded else self.priced
        billed = target - self.billed
        if billed > 0:
            self.billed = target
            cost = comp.cost_n(billed)
            self.cost_n += cost
            if comp.vat_e4 is None:
                self.vat_missing = True
            else:
                self.vat_n += cost * comp.vat_e4

    def switch(self, comp):
        """Make ``comp`` the active component (None: the dimension is free from now on)."""
        if comp is self.comp:
            return
        if self.comp is not None:
            self._close(comp is None)
        self.comp = comp

    def add(self, volume, priced=None):
        """Account ``volume``; ``priced`` (default all of it) is the part the component prices."""
        self.volume += volume
        if self.comp is not None:
            self.priced += volume if priced is None else priced

    def rounding_extra(self):
        """Volume billed beyond the priced volume if the session ended now (step_size rounding)."""
        billed = self.billed
        comp = self.comp
        if comp is not None:
            target = ceil_to(self.priced, comp.step_size)
            if target > billed:
                billed = target
        return billed - self.priced

    def final(self):
        """(cost numerator, vat numerator, billed volume, vat missing) if the session ended now."""
        cost_n, vat_n, billed, missing = self.cost_n, self.vat_n, self.billed, self.vat_missing
        comp = self.comp
        if comp is not None:
            extra = ceil_to(self.priced, comp.step_size) - billed
            if extra > 0:
                cost = comp.cost_n(extra)
                cost_n += cost
                billed += extra
                if comp.vat_e4 is None:
                    missing = True
                else:
                    vat_n += cost * comp.vat_e4
        return cost_n, vat_n, billed, missing


class SessionPricer:
    """Prices a session period by period; O(1) per period, breakdown at any moment.

    Both batch pricing and the live pricer feed this, so they cannot disagree.
    ``reservation_expired``: True, False, or None to infer it (module docstring, Reservations).
    """

    __slots__ = ("tariff", "utc_offset_s", "start_s", "energy_wh", "elapsed_s", "dims", "flat",
                 "last_key", "periods", "held_s", "run_open",
                 "reservation_expired", "reservation_start_s", "reservation_s", "res_time",
                 "res_time_expired", "res_flat", "res_flat_expired")

    def __init__(self, tariff, utc_offset_s=0, *, record_periods=False,
                 reservation_expired=None):
        if not isinstance(tariff, Tariff):
            tariff = Tariff(tariff)
        self.tariff = tariff
        self.utc_offset_s = utc_offset_s
        self.start_s = None
        self.energy_wh = 0
        self.elapsed_s = 0
        self.dims = {ENERGY: _Dimension(), TIME: _Dimension(), PARKING_TIME: _Dimension()}
        self.flat = None
        self.last_key = None
        self.periods = [] if record_periods else None
        # Parking after charging (module docstring): seconds of the current run held back while
        # it fits, and whether the current run may still fit.
        self.held_s = 0
        self.run_open = True
        # Reservation time priced both ways (used, expired) until the outcome is known.
        self.reservation_expired = reservation_expired
        self.reservation_start_s = None
        self.reservation_s = 0
        self.res_time = _Dimension()
        self.res_time_expired = _Dimension()
        self.res_flat = None
        self.res_flat_expired = None

    def copy(self):
        other = SessionPricer(self.tariff, self.utc_offset_s,
                              reservation_expired=self.reservation_expired)
        other.start_s = self.start_s
        other.energy_wh = self.energy_wh
        other.elapsed_s = self.elapsed_s
        other.dims = {}
        for key in self.dims:
            other.dims[key] = self.dims[key].copy()
        other.flat = self.flat
        other.last_key = self.last_key
        other.held_s = self.held_s
        other.run_open = self.run_open
        other.reservation_start_s = self.reservation_start_s
        other.reservation_s = self.reservation_s
        other.res_time = self.res_time.copy()
        other.res_time_expired = self.res_time_expired.copy()
        other.res_flat = self.res_flat
        other.res_flat_expired = self.res_flat_expired
        return other

    def begin(self, start_s, period=None):
        """Start the session at ``start_s``: the FLAT fee is chosen by the state at this moment.

        Called by the first ``add`` when not called before; a live session calls it at its
        first reading so that the start fee shows before any energy flows.
        """
        if self.start_s is not None:
            return
        self.start_s = start_s
        if period is None:
            period = Period(start_s)
        sod, day, weekday = local_parts(start_s, self.utc_offset_s)
        self.flat = self.tariff.select(FLAT, sod, day, weekday, 0, 0, period) or False

    def add(self, period):
        """Account one period; restrictions are evaluated at its start."""
        tariff = self.tariff
        if period.reservation_s:
            if self.start_s is not None:
                raise TariffError("period.reservation_s", "reservation time after the session "
                                  "started", "reservation periods before the session's")
            self._reserve(period)
            if not (period.energy_wh or period.time_s or period.parking_s):
                return
            # The session starts when the reservation time ends.
            period = Period(period.start_s + period.reservation_s, period.energy_wh,
                            period.time_s, period.parking_s, period.min_current_ma,
                            period.max_current_ma, period.min_power_w, period.max_power_w)
        if self.start_s is None:
            self.begin(period.start_s, period)
        sod, day, weekday = local_parts(period.start_s, self.utc_offset_s)
        energy_before = self.energy_wh
        duration = self.elapsed_s
        dims = self.dims
        if period.time_s > 0 and self.held_s:
            # Charging ends the parking run, so it was not the session's last: the charging time
            # TIME's rounding adds lies after this charging, not over the run. Its held-back
            # seconds are priced now, by the PARKING_TIME component that was active during it.
            dims[PARKING_TIME].add(0, self.held_s)
            self.held_s = 0
        key = []
        for name in METERED:
            comp = tariff.select(name, sod, day, weekday, energy_before, duration, period)
            dims[name].switch(comp)
            key.append(-1 if comp is None else comp.element_index)
        if period.time_s > 0:
            self.run_open = True
        dims[ENERGY].add(period.energy_wh)
        dims[TIME].add(period.time_s)
        parking = period.parking_s
        if parking:
            # A period holding both is taken as charging first, then parking.
            if self.run_open:
                run = self.held_s + parking
                if run <= dims[TIME].rounding_extra():
                    self.held_s = run
                    dims[PARKING_TIME].add(parking, 0)
                else:
                    # All or nothing: the seconds held back are billed with this period.
                    self.held_s = 0
                    self.run_open = False
                    dims[PARKING_TIME].add(parking, run)
            else:
                dims[PARKING_TIME].add(parking)
        self.energy_wh += period.energy_wh
        self.elapsed_s += period.time_s + period.parking_s
        if self.periods is not None:
            self._record(period, (key[0], key[1], key[2], period.time_s > 0))

    def _reserve(self, period):
        """Account the reservation time of a period, priced both as used and as expired."""
        tariff = self.tariff
        offset = self.utc_offset_s
        if self.reservation_start_s is None:
            # The reservation fee is chosen by the state when the reservation is made.
            self.reservation_start_s = period.start_s
            sod, day, weekday = local_parts(period.start_s, offset)
            self.res_flat = tariff.select_reservation(FLAT, False, sod, day, weekday, 0, period)
            self.res_flat_expired = tariff.select_reservation(FLAT, True, sod, day, weekday, 0,
                                                              period)
        sod, day, weekday = local_parts(period.start_s, offset)
        used = tariff.select_reservation(TIME, False, sod, day, weekday, self.reservation_s,
                                         period)
        expired = tariff.select_reservation(TIME, True, sod, day, weekday, self.reservation_s,
                                            period)
        self.res_time.switch(used)
        self.res_time.add(period.reservation_s)
        self.res_time_expired.switch(expired)
        self.res_time_expired.add(period.reservation_s)
        self.reservation_s += period.reservation_s
        if self.periods is not None:
            self._record(Period(period.start_s, reservation_s=period.reservation_s),
                         ("reservation", -1 if used is None else used.element_index,
                          -1 if expired is None else expired.element_index))

    def expired(self):
        """Whether the reservation expired (None: there was none), as the breakdown prices it."""
        if self.reservation_start_s is None:
            return None
        flag = self.reservation_expired
        if flag is None:
            return self.start_s is None
        if flag and self.start_s is not None:
            raise TariffError("reservation_expired", "a reservation followed by a session did "
                              "not expire", "False, or None to infer it")
        return bool(flag)

    def _record(self, period, key):
        """Keep OCPI charging periods: a new one whenever the active elements or state change."""
        periods = self.periods
        if periods and self.last_key == key:
            last = periods[-1]
            last.energy_wh += period.energy_wh
            last.time_s += period.time_s
            last.parking_s += period.parking_s
            last.reservation_s += period.reservation_s
            last.min_current_ma = _lower(last.min_current_ma, period.min_current_ma)
            last.max_current_ma = _higher(last.max_current_ma, period.max_current_ma)
            last.min_power_w = _lower(last.min_power_w, period.min_power_w)
            last.max_power_w = _higher(last.max_power_w, period.max_power_w)
        else:
            periods.append(Period(period.start_s, period.energy_wh, period.time_s,
                                  period.parking_s, period.min_current_ma, period.max_current_ma,
                                  period.min_power_w, period.max_power_w, period.reservation_s))
        self.last_key = key

    def breakdown(self):
        """The cost if the session ended now (rounding per the module rule)."""
        tariff = self.tariff
        out = CostBreakdown()
        out.currency = tariff.currency
        out.minor_digits = tariff.minor_digits
        missing = False
        parts = {}
        billed = {}
        vat_den = COST_DEN * VAT_SCALE
        for name in METERED:
            cost_n, vat_n, billed_volume, miss = self.dims[name].final()
            parts[name] = (round_half_up(cost_n, COST_DEN), round_half_up(vat_n, vat_den))
            billed[name] = billed_volume
            missing = missing or miss
        out.flat_excl_u, out.flat_vat_u, miss = flat_part(self.flat)
        missing = missing or miss
        expired = self.expired()
        out.reservation_expired = expired
        res_time = self.res_time_expired if expired else self.res_time
        cost_n, vat_n, out.billed_reservation_s, miss = res_time.final()
        out.reservation_time_excl_u = round_half_up(cost_n, COST_DEN)
        out.reservation_time_vat_u = round_half_up(vat_n, vat_den)
        missing = missing or miss
        out.reservation_flat_excl_u, out.reservation_flat_vat_u, miss = flat_part(
            self.res_flat_expired if expired else self.res_flat)
        missing = missing or miss
        out.reservation_s = self.reservation_s
        out.energy_excl_u, out.energy_vat_u = parts[ENERGY]
        out.time_excl_u, out.time_vat_u = parts[TIME]
        out.parking_excl_u, out.parking_vat_u = parts[PARKING_TIME]
        excl = out.energy_excl_u + out.time_excl_u + out.parking_excl_u + out.flat_excl_u \
            + out.reservation_time_excl_u + out.reservation_flat_excl_u
        vat = out.energy_vat_u + out.time_vat_u + out.parking_vat_u + out.flat_vat_u \
            + out.reservation_time_vat_u + out.reservation_flat_vat_u
        incl = excl + vat
        out.min_price_applied = False
        out.max_price_applied = False
        new_excl = excl
        if tariff.min_excl_u is not None and new_excl < tariff.min_excl_u:
            new_excl = tariff.min_excl_u
            out.min_price_applied = True
        if tariff.max_excl_u is not None and new_excl > tariff.max_excl_u:
            new_excl = tariff.max_excl_u
            out.max_price_applied = True
        new_incl = incl
        if new_excl != excl:
            if excl > 0:
                new_incl = new_excl + round_half_up(vat * new_excl, excl)
            else:
                new_incl = new_excl + round_half_up(new_excl * tariff.max_vat_e4, VAT_SCALE)
        if tariff.min_incl_u is not None and new_incl < tariff.min_incl_u:
            new_incl = tariff.min_incl_u
            out.min_price_applied = True
        if tariff.max_incl_u is not None and new_incl > tariff.max_incl_u:
            new_incl = tariff.max_incl_u
            out.max_price_applied = True
        out.total_excl_u = new_excl
        out.total_incl_u = new_incl
        out.total_vat_u = new_incl - new_excl
        out.total_paise = round_half_up(new_incl, 10 ** (4 - out.minor_digits))
        out.energy_wh = self.dims[ENERGY].volume
        out.time_s = self.dims[TIME].volume
        out.parking_s = self.dims[PARKING_TIME].volume
        out.billed_energy_wh = billed[ENERGY]
        out.billed_time_s = billed[TIME]
        out.billed_parking_s = billed[PARKING_TIME]
        out.vat_missing = missing
        out.limit_applied = False
        out.uncapped_paise = out.total_paise
        return out


def _lower(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


def _higher(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a if a > b else b


def price_periods(tariff, periods, utc_offset_s=0, start_s=None, reservation_expired=None):
    """Cost of a session given as charging periods, in time order.

    ``periods`` holds Period objects or (start_epoch_s, dimensions dict) pairs; see
    ``Period.from_dict`` for the dimension names. ``start_s`` is the session start when it is
    not the first period's (a session with no periods yet still owes its FLAT fee).
    Reservation time comes first, as periods with ``reservation_s``; ``reservation_expired``
    is True, False, or None to infer it (expired when no session period followed).
    """
    if reservation_expired not in (None, True, False):
        raise TariffError("reservation_expired", "must be True, False or None, got "
                          + repr(reservation_expired))
    pricer = SessionPricer(tariff, utc_offset_s, reservation_expired=reservation_expired)
    if start_s is not None:
        pricer.begin(start_s)
    previous = None
    for i, item in enumerate(periods):
        field = "periods[" + str(i) + "]"
        if not isinstance(item, Period):
            if not isinstance(item, (tuple, list)) or len(item) != 2 \
                    or not isinstance(item[1], dict):
                raise TariffError(field, "must be a Period or (start_epoch_s, dimensions dict)")
            item = Period.from_dict(item[0], item[1], field)
        item.check(field)
        if previous is not None and item.start_s < previous:
            raise TariffError(field + ".start_s", "periods must be in time order")
        previous = item.start_s
        if item.reservation_s and pricer.start_s is not None:
            raise TariffError(field + ".reservation_s", "reservation time after the session "
                              "started", "reservation periods before the session's")
        pricer.add(item)
    return pricer.breakdown()
