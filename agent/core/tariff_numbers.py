"""Exact decimal numbers for tariffs: fixed-point parsing, formatting, rounding, minor units.

Money is an integer in 1/10,000 of the currency unit ("u"), so every OCPI price is exact; a
running cost is a numerator over ``COST_DEN`` (the least common multiple of 1,000 Wh per kWh and
3,600 s per hour) until a breakdown rounds it (rule in ``agent.core.tariff``'s docstring).
``TariffError`` lives here because parsing a number is the first thing that can refuse a tariff,
and every other tariff module builds on this one.
"""

from agent.core.errors import AgentError

U_PER_UNIT = 10000
COST_DEN = 18000
VAT_SCALE = 1000000  # vat_e4 (percent x 10,000) / 1,000,000 = fraction

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
            raise TariffError(field, "not a decimal number: " + repr(value)) from None
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


def round_half_up(numerator, denominator):
    """Nearest integer to a non-negative fraction, halves away from zero."""
    if numerator < 0:
        return -((-numerator * 2 + denominator) // (2 * denominator))
    return (numerator * 2 + denominator) // (2 * denominator)


def ceil_to(value, step):
    if step <= 1:
        return value
    return -(-value // step) * step
