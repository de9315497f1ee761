"""What a session costs, per OCPI CDR dimension, and the money limit's cap on what is collected.

The breakdown is the one place figures are rounded (rounding rule in ``agent.core.tariff``'s
docstring), so the display, the signed receipt and the CDR all show the same numbers.
"""

from agent.core.tariff_numbers import COST_DEN, U_PER_UNIT, VAT_SCALE, TariffError, format_fixed, round_half_up

# Names an earlier release kept beside its receipts, read back under today's names.
_EARLIER_NAMES = {"total_paise": "paid_minor", "uncapped_paise": "uncapped_minor"}


class CostBreakdown:
    """What a session costs, per OCPI CDR dimension, in u (1/10,000 of the currency unit).

    ``total_paise`` is the amount to collect, in the currency's minor unit (paise for INR).
    ``flat_*`` is the session's start fee; the reservation's time and fee are kept apart
    (``reservation_time_*``, ``reservation_flat_*``), as OCPI reports them apart.
    ``reservation_expired`` is None when there was no reservation.
    """

    __slots__ = ("currency", "minor_digits", "energy_excl_u", "energy_vat_u", "time_excl_u",
                 "time_vat_u", "parking_excl_u", "parking_vat_u", "flat_excl_u", "flat_vat_u",
                 "reservation_time_excl_u", "reservation_time_vat_u", "reservation_flat_excl_u",
                 "reservation_flat_vat_u",
                 "total_excl_u", "total_vat_u", "total_incl_u", "total_paise", "energy_wh",
                 "time_s", "parking_s", "reservation_s", "billed_energy_wh", "billed_time_s",
                 "billed_parking_s", "billed_reservation_s", "reservation_expired",
                 "min_price_applied", "max_price_applied", "vat_missing", "limit_applied",
                 "uncapped_paise")

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
            setattr(out, name, data[name] if name in data else data[_EARLIER_NAMES.get(name, name)])
        return out

    def __eq__(self, other):
        return isinstance(other, CostBreakdown) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "CostBreakdown(" + self.currency + " excl " + format_fixed(self.total_excl_u, 4) \
            + " incl " + format_fixed(self.total_incl_u, 4) + ")"

    def paid_text(self):
        """The paid amount as decimal text, e.g. '123.45'."""
        return format_fixed(self.total_paise, self.minor_digits)

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


def capped(cost, limit_paise):
    """``cost`` with the amount to collect held to ``limit_paise`` (rounding rule 6).

    Returns ``cost`` itself when it is within the limit (or there is none). Otherwise a copy
    whose total incl. VAT is the limit, with excl. VAT and VAT split in the ratio they had, so
    the tax stated stays the tax on what is collected.
    """
    if limit_paise is None:
        return cost
    if isinstance(limit_paise, bool) or not isinstance(limit_paise, int) or limit_paise < 0:
        raise TariffError("money_limit", "must be a whole number of minor units >= 0, got "
                          + repr(limit_paise))
    if cost.total_paise <= limit_paise:
        return cost
    out = CostBreakdown()
    for name in CostBreakdown.__slots__:
        setattr(out, name, getattr(cost, name))
    incl = limit_paise * 10 ** (4 - cost.minor_digits)
    if cost.total_incl_u > 0:
        excl = round_half_up(cost.total_excl_u * incl, cost.total_incl_u)
    else:
        excl = incl
    out.total_incl_u = incl
    out.total_excl_u = excl
    out.total_vat_u = incl - excl
    out.total_paise = limit_paise
    out.limit_applied = True
    out.uncapped_paise = cost.total_paise
    return out


def flat_part(comp):
    """(excl. VAT u, VAT u, vat missing) of a FLAT component charged once (None/False: free)."""
    if not comp:
        return 0, 0, False
    cost_n = comp.cost_n(1)
    if comp.vat_e4 is None:
        return round_half_up(cost_n, COST_DEN), 0, True
    return (round_half_up(cost_n, COST_DEN),
            round_half_up(cost_n * comp.vat_e4, COST_DEN * VAT_SCALE), False)
