"""Quotes ahead of a session: what X Wh will cost, and what a budget buys.

A quote must be the price the receipt will later show for the same charge, so it simulates the
session as periods and prices them with the same engine (``agent.core.tariff``). Periods are split
wherever the tariff could change its mind: at every time of day named by a restriction, at local
midnight, at duration and energy thresholds. Charging is assumed at constant power; energy after
``s`` seconds is ``power_w * s // 3600`` Wh, the charge of X Wh ends after
``ceil(X * 3600 / power_w)`` seconds.

Budgets are compared with the amount paid (incl. VAT, in minor units such as paise). The inverse
is a bisection over whole Wh (or seconds) that keeps ``cost(lo) <= budget < cost(hi)``, so the
answer always satisfies "this costs at most the budget and one more Wh costs more", even for
tariffs whose cost is not monotonic in energy (step_size rounding across an element switch).
Portable to MicroPython like the engine.
"""

from agent.core.tariff import Period, SessionPricer, Tariff, TariffError, offset_at

DEFAULT_MAX_ENERGY_WH = 500000
DEFAULT_MAX_TIME_S = 7 * 86400


def _tariff(tariff):
    return tariff if isinstance(tariff, Tariff) else Tariff(tariff)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TariffError(name, "must be a whole number >= " + str(minimum) + ", got "
                          + repr(value))


def _next_boundary(tariff, now_s, start_s, energy_wh, power_w, utc_offset_s):
    """Seconds from ``now_s`` to the next instant where a restriction may flip."""
    local = now_s + offset_at(utc_offset_s, now_s)
    sod = local % 86400
    best = 86400 - sod
    for boundary in tariff.boundaries_sod:
        delta = (boundary - sod) % 86400
        if 0 < delta < best:
            best = delta
    elapsed = now_s - start_s
    for threshold in tariff.duration_thresholds_s():
        if threshold > elapsed and threshold - elapsed < best:
            best = threshold - elapsed
    if power_w > 0:
        for threshold in tariff.energy_thresholds_wh():
            if threshold > energy_wh:
                reach_s = -(-threshold * 3600 // power_w) - elapsed
                if 0 < reach_s < best:
                    best = reach_s
    return best


def simulate(tariff, start_s, charge_s, power_w, utc_offset_s=0, *, energy_wh=None,
             park_s=0, current_ma=None):
    """Periods of a charge at constant ``power_w`` for ``charge_s``, then ``park_s`` idle.

    ``energy_wh`` caps the energy (the last second may deliver less than the power allows).
    """
    tariff = _tariff(tariff)
    _check_int("power_w", power_w, 1)
    _check_int("charge_s", charge_s, 0)
    _check_int("park_s", park_s, 0)
    periods = []
    elapsed = 0
    energy = 0
    total_s = charge_s + park_s
    while elapsed < total_s:
        now = start_s + elapsed
        charging = elapsed < charge_s
        step = _next_boundary(tariff, now, start_s, energy, power_w if charging else 0,
                              utc_offset_s)
        limit = (charge_s if charging else total_s) - elapsed
        if step > limit:
            step = limit
        if charging:
            reached = power_w * (elapsed + step) // 3600
            if energy_wh is not None and reached > energy_wh:
                reached = energy_wh
            periods.append(Period(now, reached - energy, step, 0, current_ma, current_ma,
                                  power_w, power_w))
            energy = reached
        else:
            periods.append(Period(now, 0, 0, step, None, None, 0, 0))
        elapsed += step
    return periods


def charge_duration_s(energy_wh, power_w):
    """Seconds a charge of ``energy_wh`` takes at ``power_w``."""
    return -(-energy_wh * 3600 // power_w)


def quote_energy(tariff, energy_wh, start_s, power_w, utc_offset_s=0, *, park_s=0,
                 current_ma=None):
    """CostBreakdown of charging ``energy_wh`` at ``power_w`` from ``start_s`` (then parking)."""
    tariff = _tariff(tariff)
    _check_int("energy_wh", energy_wh, 0)
    _check_int("power_w", power_w, 1)
    pricer = SessionPricer(tariff, utc_offset_s)
    periods = simulate(tariff, start_s, charge_duration_s(energy_wh, power_w), power_w,
                       utc_offset_s, energy_wh=energy_wh, park_s=park_s, current_ma=current_ma)
    if not periods:
        periods = [Period(start_s, 0, 0, 0, current_ma, current_ma, power_w, power_w)]
    for period in periods:
        pricer.add(period)
    return pricer.breakdown()


def quote_time(tariff, charge_s, start_s, power_w, utc_offset_s=0, *, current_ma=None):
    """CostBreakdown of charging for ``charge_s`` seconds at ``power_w`` from ``start_s``."""
    tariff = _tariff(tariff)
    pricer = SessionPricer(tariff, utc_offset_s)
    periods = simulate(tariff, start_s, charge_s, power_w, utc_offset_s, current_ma=current_ma)
    if not periods:
        periods = [Period(start_s, 0, 0, 0, current_ma, current_ma, power_w, power_w)]
    for period in periods:
        pricer.add(period)
    return pricer.breakdown()


def _inverse(cost_of, budget_paise, maximum):
    """Largest-found x with cost_of(x) <= budget < cost_of(x + 1), or None if x=0 is too dear.

    Returns ``maximum`` when even that is affordable (for example under a max_price).
    """
    if cost_of(0) > budget_paise:
        return None
    lo = 0
    hi = 1
    while True:
        if hi >= maximum:
            hi = maximum
            if cost_of(hi) <= budget_paise:
                return maximum
            break
        if cost_of(hi) > budget_paise:
            break
        lo = hi
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cost_of(mid) <= budget_paise:
            lo = mid
        else:
            hi = mid
    return lo


def energy_for_budget(tariff, budget_paise, start_s, power_w, utc_offset_s=0, *,
                      max_energy_wh=DEFAULT_MAX_ENERGY_WH, current_ma=None):
    """Whole Wh that ``budget_paise`` (incl. VAT, e.g. paise) buys at ``power_w`` from ``start_s``.

    None when not even an empty session fits the budget (a flat fee or min_price above it).
    """
    tariff = _tariff(tariff)
    _check_int("budget_paise", budget_paise, 0)

    def cost_of(wh):
        return quote_energy(tariff, wh, start_s, power_w, utc_offset_s,
                            current_ma=current_ma).total_paise

    return _inverse(cost_of, budget_paise, max_energy_wh)


def time_for_budget(tariff, budget_paise, start_s, power_w, utc_offset_s=0, *,
                    max_time_s=DEFAULT_MAX_TIME_S, current_ma=None):
    """Whole seconds of charging at ``power_w`` that ``budget_paise`` buys (time-priced tariffs)."""
    tariff = _tariff(tariff)
    _check_int("budget_paise", budget_paise, 0)

    def cost_of(seconds):
        return quote_time(tariff, seconds, start_s, power_w, utc_offset_s,
                          current_ma=current_ma).total_paise

    return _inverse(cost_of, budget_paise, max_time_s)
