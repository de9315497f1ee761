"""A validated OCPI 2.2.1 tariff, its price components and the charging periods it prices.

Validation happens once, when the tariff is read, and names the field at fault, so a tariff
that loads can always be priced; selection of the active component per dimension lives here
because it depends only on the tariff's elements and their restrictions.
"""

from agent.core.tariff_numbers import COST_DEN, TariffError, minor_unit_digits, parse_fixed
from agent.core.tariff_restrictions import RESERVATION, RESERVATION_EXPIRES, Restrictions

ENERGY = "ENERGY"
TIME = "TIME"
PARKING_TIME = "PARKING_TIME"
FLAT = "FLAT"
DIMENSIONS = (ENERGY, FLAT, PARKING_TIME, TIME)
METERED = (ENERGY, TIME, PARKING_TIME)
RESERVATION_DIMENSIONS = (FLAT, TIME)
_EXPIRED_ORDER = (RESERVATION_EXPIRES, RESERVATION)
_USED_ORDER = (RESERVATION,)


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
        """Exact cost of ``volume`` (Wh, s, or sessions) as a numerator over COST_DEN."""
        if self.dimension == ENERGY:
            return self.price_u * volume * 18
        if self.dimension == FLAT:
            return self.price_u * volume * COST_DEN
        return self.price_u * volume * 5


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


# A price above a million currency units per unit is a typo (a charge would cost more than the
# site), and beyond about 9e11 units a JSON number can no longer carry 4 exact decimals, so
# signed offers and receipts could not state it: refused where the tariff is read.
MAX_PRICE_UNITS = 1000000


def _bounded_price(value, field):
    price_u = parse_fixed(value, 4, field)
    if price_u > MAX_PRICE_UNITS * 10000:
        raise TariffError(field, "too large: " + repr(value), "0 to " + str(MAX_PRICE_UNITS))
    return price_u


class Tariff:
    """A validated OCPI 2.2.1 Tariff, ready to price periods."""

    def __init__(self, data):  # noqa: C901
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
                        if comp.get("type") not in RESERVATION_DIMENSIONS:
                            raise TariffError(
                                field + ".price_components[" + str(j) + "].type",
                                "a reservation element prices " + repr(comp.get("type")),
                                ", ".join(RESERVATION_DIMENSIONS))
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
        price_u = _bounded_price(comp["price"], field + ".price")
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
        excl = _bounded_price(value["excl_vat"], key + ".excl_vat")
        incl = value.get("incl_vat")
        incl = _bounded_price(incl, key + ".incl_vat") if incl is not None else None
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
