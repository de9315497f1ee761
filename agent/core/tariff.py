"""Pricing engine for OCPI 2.2.1 tariffs: one engine for live cost, quotes, receipts and CDRs.

The same numbers must appear on the charger's display, in the signed receipt and in the CDR an
eMSP re-checks, so every price is computed here and nowhere else. The module runs unchanged on
MicroPython: plain classes, ints and dicts only.

Money
    Prices and costs are integers in 1/10,000 of the currency unit ("u"; OCPI allows four
    decimals, so every tariff price is exact in u). Within a dimension the cost is kept as an
    exact fraction (numerator over ``_DEN`` = 18,000, the least common multiple of 1,000 Wh per
    kWh and 3,600 s per hour), so no rounding happens while a session runs.

Rounding rule (applied once, when a breakdown is made)
    1. Each dimension's cost excl. VAT (energy, time, parking, flat) is rounded half-up to u.
    2. Each dimension's VAT is computed on the exact excl.-VAT amount of every price component
       at that component's own rate, summed exactly, then rounded half-up to u once.
    3. Totals are sums of those rounded dimension figures, so the CDR's parts add up.
    4. min_price/max_price clamp the totals (excl. and incl. VAT each against its own bound, as
       OCPI requires); the dimension figures are left as they were.
    5. The amount paid is the total incl. VAT rounded half-up to the currency's ISO 4217 minor
       unit (paise for INR).
    6. A session's money limit (what the buyer prepaid, or the budget they set) caps the amount
       to collect (``capped``): a limit is a promise to the buyer, and the stop that enforces it
       can only be predicted, so the few paise a late stop adds are the charger's to absorb.
       Like max_price, the cap scales the totals and leaves the dimension figures as they were.

OCPI semantics (where the spec is precise)
    * For each dimension (ENERGY, TIME, PARKING_TIME) the first element with a component of that
      dimension whose restrictions match is used; restrictions are evaluated at the start of
      each period.
    * TIME prices charging time, PARKING_TIME prices time connected but not charging.
    * step_size rounds up the whole billed volume of a dimension only for the last element used
      and when switching to an element that has no component for that dimension; a switch to
      another element that does price the dimension bills the run exactly. Rounding applies to
      the dimension's total priced volume, less what earlier runs already billed (the spec's
      step_size examples #1 and #2).

Parking after charging (where only the spec's worked examples decide)
    Charging time that TIME's step_size rounding adds to the bill (the cover) pays for a run of
    parking that directly follows the charging, all or nothing: a run that fits entirely within
    the cover costs nothing; a run that exceeds it is billed whole as PARKING_TIME, rounded by
    PARKING_TIME's own step_size, the part that fitted included.

    Why: it is the only rule that gives the total of every worked example of the spec. Step_size
    example #1 charges 10 minutes, bills them as 15 and does not bill the 2 minutes parked after
    them (0.50); the complex example charges 147 minutes, bills them as 150 and still bills all
    42 minutes parked after them, as 45 (8.75; Saturday: 114 billed as 120, then all 71 parked
    billed as 75, 12.50). Billing TIME and PARKING_TIME independently misses example #1;
    covering parking up to the cover and billing only the excess misses the complex example.

    Known consequence, the cliff: one second of parking beyond the cover bills the whole run
    from its first second, not only that second (10 minutes charged per 15: 5 minutes parked
    are free, 5 minutes and 1 second are billed as PARKING_TIME in full).

    * The cover of a run is the billed charging time if the session ended now, less the charging
      time and the parking already covered by earlier runs. It is re-evaluated at every parking
      period, since TIME's active component (and so its step_size) may change while parked.
    * A run starts when parking follows charging and ends when charging resumes (a period with
      charging time; a period holding both is taken as charging first, then parking). A tariff
      without TIME, or TIME billed per second (step_size 1), gives no cover; parking before any
      charging has none either.
    * Incrementally, the seconds of a run that still fits are held back (counted as parking time,
      not priced), so a breakdown in the middle of a run shows it free, exactly as a session
      ending there would be. The moment the run exceeds its cover, the held-back seconds are
      priced with the PARKING_TIME component active at that moment and the run is no longer
      coverable; the rest of it is priced as it comes. Live pricing, batch pricing and a
      breakdown at any moment therefore agree, and splitting a period where no restriction
      flips changes nothing.
    * Approximation: when a run crossed a parking time window (say, parking free at night and
      priced by day) before exceeding its cover, its held-back seconds are priced at the
      component of the window where the cover ran out, not at the one they fell in.
    * A run counts against the cover whether or not PARKING_TIME is priced while it lasts (the
      billed charging time spans those minutes either way). A run that ended within its cover
      stays free: charging that resumes later is billed by TIME as usual, its rounding never
      raised by covered parking, and the next run's cover is reduced by it.

Choices (where the spec leaves room)
    * FLAT is charged once per session, from the first matching element at the session start.
    * Volume in a period without a matching component is free and does not count towards a
      later step_size rounding; billed volume beyond the consumed volume (from rounding) is a
      credit that later runs of the same dimension use up first.
    * min_current/min_power compare the period's minimum, max_current/max_power its maximum; a
      period without that measurement does not match such a restriction.
    * min_kwh/max_kwh compare the session energy before the period; min_duration/max_duration
      the session time (charging plus parking) before the period.
    * Reservations are priced separately from the session (see Reservations below).
    * A component without ``vat`` carries no VAT (``vat_missing`` is set on the breakdown).
    * Without an incl.-VAT bound, a clamped excl.-VAT total carries the session's own VAT share
      (or, for a session with no cost at all, the highest VAT rate of the tariff).
    * Volumes are integers: Wh for energy, seconds for time.

Reservations
    A reservation starts when it is made and ends when the session starts (the driver starts
    charging on the reserved EVSE) or when it expires. It reaches the engine as periods holding
    ``reservation_s`` (the CDR's RESERVATION_TIME), before any period of the session.
    * Elements with a ``reservation`` restriction price only reservation time and the
      reservation fee; elements without one never do. Reservation elements may hold FLAT and
      TIME components only (OCPI); anything else is refused when the tariff is read.
    * A reservation that is used (or cancelled) is priced by the RESERVATION elements only. An
      expired one is priced, per dimension, by the first matching RESERVATION_EXPIRES element
      with that dimension, and, when none has it, by the RESERVATION elements, whatever the
      order of the elements. The spec states this for TIME (example #18: expired time at its
      own rate; example #17: no expired rate, so the reserved time at the RESERVATION rate
      plus the expiry fee). For FLAT it is a choice made for symmetry: an expiry fee replaces
      a plain reservation fee rather than adding to it (no worked example has both).
    * Expired or not: ``reservation_expired`` (engine API and ``price_periods``) says so; when it
      is None the engine infers it: a reservation that no session period followed expired (a
      CDR holding only RESERVATION_TIME). A cancelled reservation needs the explicit False.
    * Both outcomes are accumulated as the periods come (O(1) each), so the choice costs nothing
      and a breakdown during a reservation may show either.
    * The reservation fee (FLAT of a reservation element, chosen at the reservation's start) is
      not the session's start fee (FLAT of a non-reservation element, chosen at the session's
      start): a reserved session pays both, an expired reservation only the former. OCPI's
      total_fixed_cost excludes reservation fees; both reservation figures go into
      total_reservation_cost.
    * Reservation time and the reservation fee are two more dimensions for the rounding rule
      (each rounded and taxed on its own); min_price/max_price clamp the total including them,
      as that is the CDR's total_cost. Restrictions of reservation elements are evaluated at
      each reservation period's start with no energy and the reservation's elapsed time as
      duration; step_size applies to reservation time as to TIME.
    * A reservation period after the session started is refused; a period holding both
      reservation time and session volume is taken as the reservation first, the session
      starting when the reservation time ends.

Time
    Tariff times are local to the site. The engine takes ``utc_offset_s`` as a number of seconds
    (or, at the CPython edge, a function of the epoch second returning one, for zones with
    daylight saving); it never looks up zones itself.
"""

from agent.core.errors import AgentError

U_PER_UNIT = 10000
_DEN = 18000
_VAT_SCALE = 1000000  # vat_e4 (percent x 10,000) / 1,000,000 = fraction

ENERGY = "ENERGY"
TIME = "TIME"
PARKING_TIME = "PARKING_TIME"
FLAT = "FLAT"
DIMENSIONS = (ENERGY, FLAT, PARKING_TIME, TIME)
_METERED = (ENERGY, TIME, PARKING_TIME)
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_RESTRICTION_KEYS = (
    "start_time", "end_time", "start_date", "end_date", "min_kwh", "max_kwh",
    "min_current", "max_current", "min_power", "max_power", "min_duration", "max_duration",
    "day_of_week", "reservation",
)
RESERVATION = "RESERVATION"
RESERVATION_EXPIRES = "RESERVATION_EXPIRES"
_RESERVATIONS = (RESERVATION, RESERVATION_EXPIRES)
_RESERVATION_DIMENSIONS = (FLAT, TIME)
_EXPIRED_ORDER = (RESERVATION_EXPIRES, RESERVATION)
_USED_ORDER = (RESERVATION,)

# ISO 4217 currencies whose minor unit is not 2 decimals; every other code has 2.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}


class TariffError(AgentError):
    """A tariff or a period is invalid; ``field`` names where, ``allowed`` what would do."""

    code = "tariff-invalid"

    def __init__(self, field, problem, allowed=None):
        text = field + ": " + problem if field else problem
        if allowed:
            text = text + " (allowed: " + allowed + ")"
        AgentError.__init__(self, text, field=field, problem=problem, allowed=allowed)
        self.field = field
        self.problem = problem
        self.allowed = allowed


def minor_unit_digits(currency):
    """Decimals of what is actually paid in ``currency`` (ISO 4217)."""
    return _MINOR_UNITS.get(currency, 2)


def parse_fixed(value, places, field, allow_negative=False):
    """Exact integer of ``value`` scaled by 10**places; more decimals than ``places`` is an error.

    Floats are read through their shortest repr, which returns the decimal text the number was
    written with (for up to 15 significant digits), so "0.25" and 0.25 give the same result.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TariffError(field, "must be a number, got " + repr(value))
    if isinstance(value, int):
        digits = str(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TariffError(field, "must be a finite number, got " + repr(value))
        digits = repr(value)
    else:
        digits = value.strip()
    text = digits.lower()
    negative = text.startswith("-")
    if negative or text.startswith("+"):
        text = text[1:]
    exponent = 0
    if "e" in text:
        text, exp_text = text.split("e", 1)
        try:
            exponent = int(exp_text)
        except ValueError:
            raise TariffError(field, "not a decimal number: " + repr(value))
    if "." in text:
        whole, frac = text.split(".", 1)
    else:
        whole, frac = text, ""
    body = whole + frac
    if not body or not body.isdigit():
        raise TariffError(field, "not a decimal number: " + repr(value))
    mantissa = int(whole + frac)
    scale = places - len(frac) + exponent
    if scale >= 0:
        result = mantissa * 10 ** scale
    else:
        div = 10 ** (-scale)
        if mantissa % div:
            raise TariffError(field, "more than " + str(places) + " decimals: " + repr(value),
                              "at most " + str(places) + " decimals")
        result = mantissa // div
    if negative and result:
        if not allow_negative:
            raise TariffError(field, "must not be negative, got " + repr(value))
        result = -result
    return result


def format_fixed(value, places):
    """Decimal text of an integer scaled by 10**places, trailing zeros kept to ``places``."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if places == 0:
        return sign + str(value)
    scale = 10 ** places
    frac = str(value % scale)
    return sign + str(value // scale) + "." + "0" * (places - len(frac)) + frac


def _round_half_up(numerator, denominator):
    """Nearest integer to a non-negative fraction, halves away from zero."""
    if numerator < 0:
        return -((-numerator * 2 + denominator) // (2 * denominator))
    return (numerator * 2 + denominator) // (2 * denominator)


def _ceil_to(value, step):
    if step <= 1:
        return value
    return -(-value // step) * step


def _parse_hhmm(value, field):
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":" \
            or not (value[:2] + value[3:]).isdigit():
        raise TariffError(field, "must be a time HH:MM, got " + repr(value), "00:00 to 23:59")
    hours = int(value[:2])
    minutes = int(value[3:])
    if hours > 23 or minutes > 59:
        raise TariffError(field, "no such time of day: " + repr(value), "00:00 to 23:59")
    return hours * 3600 + minutes * 60


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (no datetime on MicroPython)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days):
    """(year, month, day) of a day number since 1970-01-01."""
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _parse_date(value, field):
    ok = isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-" \
        and (value[:4] + value[5:7] + value[8:]).isdigit()
    if ok:
        year, month, day = int(value[:4]), int(value[5:7]), int(value[8:])
        ok = 1 <= month <= 12 and 1 <= day <= 31
        if ok:
            days = days_from_civil(year, month, day)
            ok = civil_from_days(days) == (year, month, day)
    if not ok:
        raise TariffError(field, "must be a date YYYY-MM-DD, got " + repr(value))
    return days


class Component:
    """One price component, prices in u per unit (kWh, hour, session), VAT in percent x 10,000."""

    __slots__ = ("dimension", "price_u", "vat_e4", "step_size", "element_index")

    def __init__(self, dimension, price_u, vat_e4, step_size, element_index):
        self.dimension = dimension
        self.price_u = price_u
        self.vat_e4 = vat_e4
        self.step_size = step_size
        self.element_index = element_index

    def cost_n(self, volume):
        """Exact cost of ``volume`` (Wh, s, or sessions) as a numerator over _DEN."""
        if self.dimension == ENERGY:
            return self.price_u * volume * 18
        if self.dimension == FLAT:
            return self.price_u * volume * _DEN
        return self.price_u * volume * 5


class Restrictions:
    """Parsed TariffRestrictions in integer units (s of day, day numbers, Wh, mA, W, s)."""

    __slots__ = ("start_sod", "end_sod", "start_day", "end_day", "min_wh", "max_wh",
                 "min_current_ma", "max_current_ma", "min_power_w", "max_power_w",
                 "min_duration_s", "max_duration_s", "days", "reservation")

    def __init__(self, data, field):
        if not isinstance(data, dict):
            raise TariffError(field, "must be an object")
        for key in data:
            if key not in _RESTRICTION_KEYS:
                raise TariffError(field + "." + key, "unknown restriction",
                                  ", ".join(_RESTRICTION_KEYS))
        get = data.get
        self.start_sod = _parse_hhmm(get("start_time"), field + ".start_time") \
            if get("start_time") is not None else None
        self.end_sod = _parse_hhmm(get("end_time"), field + ".end_time") \
            if get("end_time") is not None else None
        self.start_day = _parse_date(get("start_date"), field + ".start_date") \
            if get("start_date") is not None else None
        self.end_day = _parse_date(get("end_date"), field + ".end_date") \
            if get("end_date") is not None else None
        self.min_wh = self._fixed(data, "min_kwh", 3, field)
        self.max_wh = self._fixed(data, "max_kwh", 3, field)
        self.min_current_ma = self._fixed(data, "min_current", 3, field)
        self.max_current_ma = self._fixed(data, "max_current", 3, field)
        self.min_power_w = self._fixed(data, "min_power", 3, field)
        self.max_power_w = self._fixed(data, "max_power", 3, field)
        self.min_duration_s = self._fixed(data, "min_duration", 0, field)
        self.max_duration_s = self._fixed(data, "max_duration", 0, field)
        days = get("day_of_week")
        if days is None:
            self.days = None
        else:
            if not isinstance(days, list):
                raise TariffError(field + ".day_of_week", "must be a list of days", ", ".join(DAYS))
            mask = 0
            for i, day in enumerate(days):
                if day not in DAYS:
                    raise TariffError(field + ".day_of_week[" + str(i) + "]",
                                      "unknown day " + repr(day), ", ".join(DAYS))
                mask |= 1 << DAYS.index(day)
            self.days = mask
        reservation = get("reservation")
        if reservation is not None and reservation not in _RESERVATIONS:
            raise TariffError(field + ".reservation", "unknown value " + repr(reservation),
                              ", ".join(_RESERVATIONS))
        self.reservation = reservation

    @staticmethod
    def _fixed(data, key, places, field):
        value = data.get(key)
        if value is None:
            return None
        return parse_fixed(value, places, field + "." + key)

    def matches(self, sod, day, weekday, energy_wh, duration_s, period):
        """Whether the element is active for a period starting at local ``sod`` on ``day``."""
        start, end = self.start_sod, self.end_sod
        if start is not None and end is not None:
            if start < end:
                if not start <= sod < end:
                    return False
            elif start > end:
                if end <= sod < start:
                    return False
        elif start is not None:
            if sod < start:
                return False
        elif end is not None:
            if sod >= end:
                return False
        if self.start_day is not None and day < self.start_day:
            return False
        if self.end_day is not None and day >= self.end_day:
            return False
        if self.days is not None and not (self.days >> weekday) & 1:
            return False
        if self.min_wh is not None and energy_wh < self.min_wh:
            return False
        if self.max_wh is not None and energy_wh >= self.max_wh:
            return False
        if self.min_duration_s is not None and duration_s < self.min_duration_s:
            return False
        if self.max_duration_s is not None and duration_s >= self.max_duration_s:
            return False
        if self.min_current_ma is not None:
            value = period.min_current_ma
            if value is None or value < self.min_current_ma:
                return False
        if self.max_current_ma is not None:
            value = period.max_current_ma
            if value is None or value >= self.max_current_ma:
                return False
        if self.min_power_w is not None:
            value = period.min_power_w
            if value is None or value < self.min_power_w:
                return False
        if self.max_power_w is not None:
            value = period.max_power_w
            if value is None or value >= self.max_power_w:
                return False
        return True


class Period:
    """One charging period: what was consumed from ``start_s`` until the next period starts.

    Currents in mA (sum over phases) and powers in W, as measured in the period; None when
    unknown. ``reservation_s`` is time the EVSE was reserved before the session (the CDR's
    RESERVATION_TIME).
    """

    __slots__ = ("start_s", "energy_wh", "time_s", "parking_s", "min_current_ma",
                 "max_current_ma", "min_power_w", "max_power_w", "reservation_s")

    def __init__(self, start_s, energy_wh=0, time_s=0, parking_s=0, min_current_ma=None,
                 max_current_ma=None, min_power_w=None, max_power_w=None, reservation_s=0):
        self.start_s = start_s
        self.energy_wh = energy_wh
        self.time_s = time_s
        self.parking_s = parking_s
        self.min_current_ma = min_current_ma
        self.max_current_ma = max_current_ma
        self.min_power_w = min_power_w
        self.max_power_w = max_power_w
        self.reservation_s = reservation_s

    @classmethod
    def from_dict(cls, start_s, dims, field="period"):
        """A period from a dimensions dict (energy_wh, time_s, parking_s, reservation_s,
        *_current_ma, *_power_w).

        ``current_ma``/``power_w`` set both minimum and maximum when those are not given.
        """
        known = ("energy_wh", "time_s", "parking_s", "reservation_s", "current_ma",
                 "min_current_ma", "max_current_ma", "power_w", "min_power_w", "max_power_w")
        for key in dims:
            if key not in known:
                raise TariffError(field + "." + key, "unknown dimension", ", ".join(known))
        current = dims.get("current_ma")
        power = dims.get("power_w")
        min_c = dims.get("min_current_ma")
        max_c = dims.get("max_current_ma")
        min_p = dims.get("min_power_w")
        max_p = dims.get("max_power_w")
        return cls(start_s, dims.get("energy_wh", 0), dims.get("time_s", 0),
                   dims.get("parking_s", 0),
                   current if min_c is None else min_c, current if max_c is None else max_c,
                   power if min_p is None else min_p, power if max_p is None else max_p,
                   dims.get("reservation_s", 0))

    def check(self, field="period"):
        for name in ("start_s", "energy_wh", "time_s", "parking_s", "reservation_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TariffError(field + "." + name, "must be a whole number, got " + repr(value))
            if name != "start_s" and value < 0:
                raise TariffError(field + "." + name, "must not be negative, got " + repr(value))
        for name in ("min_current_ma", "max_current_ma", "min_power_w", "max_power_w"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TariffError(field + "." + name, "must be a whole number, got " + repr(value))


class Tariff:
    """A validated OCPI 2.2.1 Tariff, ready to price periods."""

    def __init__(self, data):
        if not isinstance(data, dict):
            raise TariffError("", "a tariff must be a JSON object")
        self.data = data
        self.id = data.get("id", "")
        currency = data.get("currency", "INR")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() \
                or currency.upper() != currency:
            raise TariffError("currency", "must be an ISO 4217 code, got " + repr(currency),
                              "three capital letters such as INR, EUR")
        self.currency = currency
        self.minor_digits = minor_unit_digits(currency)
        self.min_excl_u, self.min_incl_u = self._price_bound(data, "min_price")
        self.max_excl_u, self.max_incl_u = self._price_bound(data, "max_price")
        elements = data.get("elements")
        if not isinstance(elements, list) or not elements:
            raise TariffError("elements", "must be a non-empty list of tariff elements")
        self._cache = {}
        self.elements = []  # (Restrictions or None, {dimension: Component})
        self.max_vat_e4 = 0
        self.boundaries_sod = [0]
        self.has_reservation = False
        for i, element in enumerate(elements):
            field = "elements[" + str(i) + "]"
            if not isinstance(element, dict):
                raise TariffError(field, "must be an object")
            for key in element:
                if key not in ("price_components", "restrictions"):
                    raise TariffError(field + "." + key, "unknown key",
                                      "price_components, restrictions")
            comps = element.get("price_components")
            if not isinstance(comps, list) or not comps:
                raise TariffError(field + ".price_components", "must be a non-empty list")
            by_dim = {}
            for j, comp in enumerate(comps):
                parsed = self._component(comp, field + ".price_components[" + str(j) + "]", i)
                if parsed.dimension not in by_dim:
                    by_dim[parsed.dimension] = parsed
            restrictions = element.get("restrictions")
            if restrictions is not None:
                restrictions = Restrictions(restrictions, field + ".restrictions")
                if restrictions.reservation is not None:
                    self.has_reservation = True
                    for j, comp in enumerate(comps):
                        if comp.get("type") not in _RESERVATION_DIMENSIONS:
                            raise TariffError(
                                field + ".price_components[" + str(j) + "].type",
                                "a reservation element prices " + repr(comp.get("type")),
                                ", ".join(_RESERVATION_DIMENSIONS))
                for sod in (restrictions.start_sod, restrictions.end_sod):
                    if sod is not None and sod not in self.boundaries_sod:
                        self.boundaries_sod.append(sod)
            self.elements.append((restrictions, by_dim))
        self.boundaries_sod.sort()

    def _component(self, comp, field, index):
        if not isinstance(comp, dict):
            raise TariffError(field, "must be an object")
        for key in comp:
            if key not in ("type", "price", "vat", "step_size"):
                raise TariffError(field + "." + key, "unknown key", "type, price, vat, step_size")
        dimension = comp.get("type")
        if dimension not in DIMENSIONS:
            raise TariffError(field + ".type", "unknown dimension " + repr(dimension),
                              ", ".join(DIMENSIONS))
        if "price" not in comp:
            raise TariffError(field + ".price", "missing")
        price_u = parse_fixed(comp["price"], 4, field + ".price")
        vat = comp.get("vat")
        vat_e4 = None
        if vat is not None:
            vat_e4 = parse_fixed(vat, 4, field + ".vat")
            if vat_e4 > 100 * 10000:
                raise TariffError(field + ".vat", "VAT over 100 %: " + repr(vat), "0 to 100")
            if vat_e4 > self.max_vat_e4:
                self.max_vat_e4 = vat_e4
        step = comp.get("step_size", 1)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise TariffError(field + ".step_size", "must be a whole number >= 0, got " + repr(step))
        return Component(dimension, price_u, vat_e4, step, index)

    @staticmethod
    def _price_bound(data, key):
        value = data.get(key)
        if value is None:
            return None, None
        if not isinstance(value, dict) or "excl_vat" not in value:
            raise TariffError(key, "must be a Price object with excl_vat (and incl_vat)")
        excl = parse_fixed(value["excl_vat"], 4, key + ".excl_vat")
        incl = value.get("incl_vat")
        incl = parse_fixed(incl, 4, key + ".incl_vat") if incl is not None else None
        return excl, incl

    def select(self, dimension, sod, day, weekday, energy_wh, duration_s, period):
        """The component pricing ``dimension`` for a period, or None when it is free."""
        for restrictions, by_dim in self.elements:
            comp = by_dim.get(dimension)
            if comp is None:
                continue
            if restrictions is None:
                return comp
            if restrictions.reservation is not None:
                continue
            if restrictions.matches(sod, day, weekday, energy_wh, duration_s, period):
                return comp
        return None

    def select_reservation(self, dimension, expired, sod, day, weekday, duration_s, period):
        """The component pricing reservation ``dimension`` (FLAT or TIME), or None when free.

        An expired reservation prefers RESERVATION_EXPIRES elements, whatever their order, and
        falls back to RESERVATION ones (module docstring).
        """
        kinds = _EXPIRED_ORDER if expired else _USED_ORDER
        for kind in kinds:
            for restrictions, by_dim in self.elements:
                if restrictions is None or restrictions.reservation != kind:
                    continue
                comp = by_dim.get(dimension)
                if comp is not None and restrictions.matches(sod, day, weekday, 0, duration_s,
                                                             period):
                    return comp
        return None

    def energy_thresholds_wh(self):
        """Session energies (Wh) at which a kWh restriction may flip, ascending."""
        return self._thresholds(("min_wh", "max_wh"))

    def duration_thresholds_s(self):
        """Session durations (s) at which a duration restriction may flip, ascending."""
        return self._thresholds(("min_duration_s", "max_duration_s"))

    def _thresholds(self, names):
        cache = self._cache.get(names)
        if cache is None:
            cache = []
            for restrictions, _ in self.elements:
                if restrictions is not None and restrictions.reservation is None:
                    for name in names:
                        value = getattr(restrictions, name)
                        if value is not None and value not in cache:
                            cache.append(value)
            cache.sort()
            self._cache[names] = cache
        return cache


def offset_at(utc_offset_s, epoch_s):
    """The UTC offset in force at ``epoch_s``: a number, or a function of the epoch second."""
    if callable(utc_offset_s):
        return utc_offset_s(epoch_s)
    return utc_offset_s


def local_parts(epoch_s, utc_offset_s):
    """(seconds of day, day number, weekday Monday=0) of an epoch second in local time."""
    local = epoch_s + offset_at(utc_offset_s, epoch_s)
    day = local // 86400
    return local - day * 86400, day, (day + 3) % 7


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
        target = _ceil_to(self.priced, comp.step_size) if rounded else self.priced
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
            target = _ceil_to(self.priced, comp.step_size)
            if target > billed:
                billed = target
        return billed - self.priced

    def final(self):
        """(cost numerator, vat numerator, billed volume, vat missing) if the session ended now."""
        cost_n, vat_n, billed, missing = self.cost_n, self.vat_n, self.billed, self.vat_missing
        comp = self.comp
        if comp is not None:
            extra = _ceil_to(self.priced, comp.step_size) - billed
            if extra > 0:
                cost = comp.cost_n(extra)
                cost_n += cost
                billed += extra
                if comp.vat_e4 is None:
                    missing = True
                else:
                    vat_n += cost * comp.vat_e4
        return cost_n, vat_n, billed, missing


class CostBreakdown:
    """What a session costs, per OCPI CDR dimension, in u (1/10,000 of the currency unit).

    ``paid_minor`` is the amount to collect, in the currency's minor unit (paise for INR).
    ``flat_*`` is the session's start fee; the reservation's time and fee are kept apart
    (``reservation_time_*``, ``reservation_flat_*``), as OCPI reports them apart.
    ``reservation_expired`` is None when there was no reservation.
    """

    __slots__ = ("currency", "minor_digits", "energy_excl_u", "energy_vat_u", "time_excl_u",
                 "time_vat_u", "parking_excl_u", "parking_vat_u", "flat_excl_u", "flat_vat_u",
                 "reservation_time_excl_u", "reservation_time_vat_u", "reservation_flat_excl_u",
                 "reservation_flat_vat_u",
                 "total_excl_u", "total_vat_u", "total_incl_u", "paid_minor", "energy_wh",
                 "time_s", "parking_s", "reservation_s", "billed_energy_wh", "billed_time_s",
                 "billed_parking_s", "billed_reservation_s", "reservation_expired",
                 "min_price_applied", "max_price_applied", "vat_missing", "limit_applied",
                 "uncapped_minor")

    def as_dict(self):
        out = {}
        for name in CostBreakdown.__slots__:
            out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data):
        """The breakdown ``as_dict`` gave (as kept beside a receipt); KeyError if incomplete."""
        out = cls()
        for name in CostBreakdown.__slots__:
            setattr(out, name, data[name])
        return out

    def __eq__(self, other):
        return isinstance(other, CostBreakdown) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "CostBreakdown(" + self.currency + " excl " + format_fixed(self.total_excl_u, 4) \
            + " incl " + format_fixed(self.total_incl_u, 4) + ")"

    def paid_text(self):
        """The paid amount as decimal text, e.g. '123.45'."""
        return format_fixed(self.paid_minor, self.minor_digits)

    def reservation_excl_u(self):
        """The reservation's cost excl. VAT: its time and its fee."""
        return self.reservation_time_excl_u + self.reservation_flat_excl_u

    def reservation_vat_u(self):
        return self.reservation_time_vat_u + self.reservation_flat_vat_u

    def to_ocpi(self):
        """CDR totals in OCPI units (kWh, hours, Price objects).

        ``total_reservation_cost`` (optional in OCPI) is present only when a reservation cost
        something.
        """

        def price(excl_u, vat_u):
            return {"excl_vat": excl_u / U_PER_UNIT, "incl_vat": (excl_u + vat_u) / U_PER_UNIT}

        out = {
            "total_cost": {"excl_vat": self.total_excl_u / U_PER_UNIT,
                           "incl_vat": self.total_incl_u / U_PER_UNIT},
            "total_energy": self.energy_wh / 1000,
            "total_energy_cost": price(self.energy_excl_u, self.energy_vat_u),
            "total_time": (self.time_s + self.parking_s) / 3600,
            "total_time_cost": price(self.time_excl_u, self.time_vat_u),
            "total_parking_time": self.parking_s / 3600,
            "total_parking_cost": price(self.parking_excl_u, self.parking_vat_u),
            "total_fixed_cost": price(self.flat_excl_u, self.flat_vat_u),
        }
        excl = self.reservation_excl_u()
        vat = self.reservation_vat_u()
        if excl or vat:
            out["total_reservation_cost"] = price(excl, vat)
        return out


class SessionPricer:
    """Prices a session period by period; O(1) per period, breakdown at any moment.

    Both batch pricing and the live pricer feed this, so they cannot disagree.
    ``reservation_expired``: True, False, or None to infer it (module docstring, Reservations).
    """

    __slots__ = ("tariff", "utc_offset_s", "start_s", "energy_wh", "elapsed_s", "dims", "flat",
                 "last_key", "periods", "covered_s", "held_s", "run_open",
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
        # Parking after charging (module docstring): seconds of earlier runs that ended within
        # their cover, seconds of the current run held back while it fits, and whether the
        # current run may still fit.
        self.covered_s = 0
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
        other.covered_s = self.covered_s
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
        key = []
        for name in _METERED:
            comp = tariff.select(name, sod, day, weekday, energy_before, duration, period)
            dims[name].switch(comp)
            key.append(-1 if comp is None else comp.element_index)
        if period.time_s > 0:
            # Charging ends the parking run; one that still fitted stays free for good.
            if self.run_open:
                self.covered_s += self.held_s
            self.held_s = 0
            self.run_open = True
        dims[ENERGY].add(period.energy_wh)
        dims[TIME].add(period.time_s)
        parking = period.parking_s
        if parking:
            # A period holding both is taken as charging first, then parking.
            if self.run_open:
                run = self.held_s + parking
                if run <= dims[TIME].rounding_extra() - self.covered_s:
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
        vat_den = _DEN * _VAT_SCALE
        for name in _METERED:
            cost_n, vat_n, billed_volume, miss = self.dims[name].final()
            parts[name] = (_round_half_up(cost_n, _DEN), _round_half_up(vat_n, vat_den))
            billed[name] = billed_volume
            missing = missing or miss
        out.flat_excl_u, out.flat_vat_u, miss = _flat_part(self.flat)
        missing = missing or miss
        expired = self.expired()
        out.reservation_expired = expired
        res_time = self.res_time_expired if expired else self.res_time
        cost_n, vat_n, out.billed_reservation_s, miss = res_time.final()
        out.reservation_time_excl_u = _round_half_up(cost_n, _DEN)
        out.reservation_time_vat_u = _round_half_up(vat_n, vat_den)
        missing = missing or miss
        out.reservation_flat_excl_u, out.reservation_flat_vat_u, miss = _flat_part(
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
                new_incl = new_excl + _round_half_up(vat * new_excl, excl)
            else:
                new_incl = new_excl + _round_half_up(new_excl * tariff.max_vat_e4, _VAT_SCALE)
        if tariff.min_incl_u is not None and new_incl < tariff.min_incl_u:
            new_incl = tariff.min_incl_u
            out.min_price_applied = True
        if tariff.max_incl_u is not None and new_incl > tariff.max_incl_u:
            new_incl = tariff.max_incl_u
            out.max_price_applied = True
        out.total_excl_u = new_excl
        out.total_incl_u = new_incl
        out.total_vat_u = new_incl - new_excl
        out.paid_minor = _round_half_up(new_incl, 10 ** (4 - out.minor_digits))
        out.energy_wh = self.dims[ENERGY].volume
        out.time_s = self.dims[TIME].volume
        out.parking_s = self.dims[PARKING_TIME].volume
        out.billed_energy_wh = billed[ENERGY]
        out.billed_time_s = billed[TIME]
        out.billed_parking_s = billed[PARKING_TIME]
        out.vat_missing = missing
        out.limit_applied = False
        out.uncapped_minor = out.paid_minor
        return out


def capped(cost, limit_minor):
    """``cost`` with the amount to collect held to ``limit_minor`` (rounding rule 6).

    Returns ``cost`` itself when it is within the limit (or there is none). Otherwise a copy
    whose total incl. VAT is the limit, with excl. VAT and VAT split in the ratio they had, so
    the tax stated stays the tax on what is collected.
    """
    if limit_minor is None:
        return cost
    if isinstance(limit_minor, bool) or not isinstance(limit_minor, int) or limit_minor < 0:
        raise TariffError("money_limit", "must be a whole number of minor units >= 0, got "
                          + repr(limit_minor))
    if cost.paid_minor <= limit_minor:
        return cost
    out = CostBreakdown()
    for name in CostBreakdown.__slots__:
        setattr(out, name, getattr(cost, name))
    incl = limit_minor * 10 ** (4 - cost.minor_digits)
    if cost.total_incl_u > 0:
        excl = _round_half_up(cost.total_excl_u * incl, cost.total_incl_u)
    else:
        excl = incl
    out.total_incl_u = incl
    out.total_excl_u = excl
    out.total_vat_u = incl - excl
    out.paid_minor = limit_minor
    out.limit_applied = True
    out.uncapped_minor = cost.paid_minor
    return out


def _flat_part(comp):
    """(excl. VAT u, VAT u, vat missing) of a FLAT component charged once (None/False: free)."""
    if not comp:
        return 0, 0, False
    cost_n = comp.cost_n(1)
    if comp.vat_e4 is None:
        return _round_half_up(cost_n, _DEN), 0, True
    return (_round_half_up(cost_n, _DEN),
            _round_half_up(cost_n * comp.vat_e4, _DEN * _VAT_SCALE), False)


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
