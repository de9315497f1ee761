"""Pricing engine for OCPI 2.2.1 tariffs: one engine for live cost, quotes, receipts and CDRs.

The same numbers must appear on the charger's display, in the signed receipt and in the CDR an
eMSP re-checks, so every price is computed here and nowhere else. The module runs unchanged on
MicroPython: plain classes, ints and dicts only.

Money
    Prices and costs are integers in 1/10,000 of the currency unit ("u"; OCPI allows four
    decimals, so every tariff price is exact in u). Within a dimension the cost is kept as an
    exact fraction (numerator over ``COST_DEN`` = 18,000, the least common multiple of 1,000 Wh per
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
    OCPI rounds the last period of every dimension up to its step, PARKING_TIME included (the
    spec's step_size examples: 6 minutes per 5 are billed as 10). The one exception is the
    spec's own example #1: the charging time that TIME's rounding adds to the bill (the cover)
    lies after the session's last charging, and parking that ends the session within it is
    already paid for. Only the run that ends the session can lie there, all or nothing: a final
    run that fits entirely within the cover costs nothing; a run that exceeds it is billed whole
    as PARKING_TIME, rounded by PARKING_TIME's own step_size, the part that fitted included; a
    run that charging follows is billed whole too (the rounding of that later charging lies
    after it, not over it).

    Why: it is the only rule that gives the total of every worked example of the spec. Step_size
    example #1 charges 10 minutes, bills them as 15 and does not bill the 2 minutes parked after
    them (0.50); the complex example charges 147 minutes, bills them as 150 and still bills all
    42 minutes parked after them, as 45 (8.75; Saturday: 114 billed as 120, then all 71 parked
    billed as 75, 12.50). Billing TIME and PARKING_TIME independently misses example #1;
    covering parking up to the cover and billing only the excess misses the complex example.
    Covering a run in the middle of a session (16:55-17:00 charging, 17:00-17:05 parked,
    17:05-17:07 charging, parking per 15 minutes) would bill its 5 minutes as nothing where
    OCPI bills them as 15.

    Known consequence, the cliff: one second of parking beyond the cover bills the whole run
    from its first second, not only that second (10 minutes charged per 15: 5 minutes parked
    are free, 5 minutes and 1 second are billed as PARKING_TIME in full).

    * The cover of a run is the billed charging time if the session ended now, less the charging
      time. It is re-evaluated at every parking period, since TIME's active component (and so
      its step_size) may change while parked.
    * A run starts when parking follows charging and ends when charging resumes (a period with
      charging time; a period holding both is taken as charging first, then parking). A tariff
      without TIME, or TIME billed per second (step_size 1), gives no cover; parking before any
      charging has none either.
    * Incrementally, the seconds of a run that still fits are held back (counted as parking time,
      not priced), so a breakdown in the middle of a run shows it free, exactly as a session
      ending there would be. The moment the run exceeds its cover, or charging resumes, the
      held-back seconds are priced with the PARKING_TIME component active at that moment (when
      charging resumes: the one of the run's last period) and the run is no longer coverable;
      the rest of it is priced as it comes. Live pricing, batch pricing and a breakdown at any
      moment therefore agree, and splitting a period where no restriction flips changes nothing.
    * Approximation: when a run crossed a parking time window (say, parking free at night and
      priced by day) before exceeding its cover, its held-back seconds are priced at the
      component of the window where the cover ran out, not at the one they fell in.
    * A run counts against the cover whether or not PARKING_TIME is priced while it lasts (the
      billed charging time spans those minutes either way).

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

Modules
    The engine is split by concern into siblings of this module; this one keeps the rules
    above and the names every caller imports:
    ``tariff_numbers`` (fixed-point decimals, rounding, minor units, ``TariffError``),
    ``tariff_calendar`` (local time without datetime), ``tariff_restrictions`` (OCPI
    restrictions), ``tariff_model`` (the validated tariff, components, periods),
    ``tariff_breakdown`` (``CostBreakdown``, ``capped``), ``tariff_pricer`` (``SessionPricer``,
    ``price_periods``) and ``live_pricer`` (``LivePricer``).
"""

from agent.core.live_pricer import LivePricer
from agent.core.tariff_breakdown import CostBreakdown, capped
from agent.core.tariff_calendar import DAYS, civil_from_days, days_from_civil, local_parts, offset_at
from agent.core.tariff_model import DIMENSIONS, ENERGY, FLAT, PARKING_TIME, TIME, Component, Period, Tariff
from agent.core.tariff_numbers import U_PER_UNIT, TariffError, format_fixed, minor_unit_digits, parse_fixed
from agent.core.tariff_pricer import SessionPricer, price_periods
from agent.core.tariff_restrictions import RESERVATION, RESERVATION_EXPIRES, Restrictions

__all__ = [
    "DAYS", "DIMENSIONS", "ENERGY", "FLAT", "PARKING_TIME", "RESERVATION", "RESERVATION_EXPIRES",
    "TIME", "U_PER_UNIT", "Component", "CostBreakdown", "LivePricer", "Period", "Restrictions",
    "SessionPricer", "Tariff", "TariffError", "capped", "civil_from_days", "days_from_civil",
    "format_fixed", "local_parts", "minor_unit_digits", "offset_at", "parse_fixed", "price_periods",
]
