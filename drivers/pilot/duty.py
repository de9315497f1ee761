"""Control-pilot PWM duty cycle <-> offered current, by the table of IEC 61851-1 (Annex A).

Pure arithmetic with no imports, so the same file runs on MicroPython controllers.

The standard has two bands:

* 6 A to 51 A: ``duty % = current / 0.6`` (6 A is 10 %, 51 A is 85 %);
* above 51 A up to 80 A: ``duty % = current / 2.5 + 64`` (80 A is 96 %).

The bands do not meet: the high band only reaches 85 % at 52.5 A, and 85 % itself belongs to
the low band (a car reads it as 51 A). So no duty cycle tells a car any current above 51 A up
to and including 52.5 A. Either formula is wrong there: the low one gives more than 85 %, which
the car reads through the high formula as *more* than offered (52 A -> 86.7 % -> 56.7 A); the
high one gives less than 85 %, which the car reads through the low formula as a different
figure (52 A -> 84.8 % -> 50.9 A). Urja rounds every request in that gap *down to 51 A*
(85 %) rather than refusing it, because load management computes arbitrary figures and a car
drawing slightly less than allowed is always safe. ``effective_current(a)`` tells callers
the current the car will actually read.

Currents between 0 and 6 A and above 80 A have no duty cycle and are refused; 0 A means
"no PWM": the pilot is held at a steady +12 V (reported here as 100 %).
"""

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0
LOW_BAND_MAX_A = 51.0
HIGH_BAND_MIN_A = 52.5
NO_PWM_DUTY = 100.0


class DutyRangeError(ValueError):
    """A current or duty cycle outside what the pilot can express."""

    code = "pilot-current-out-of-range"


def duty_for_current(current_a: float) -> float:
    """Duty cycle (percent) that offers ``current_a``; 0 A gives 100 % (steady +12 V)."""
    if current_a != current_a or current_a < 0:
        raise DutyRangeError("offered current must be 0 or 6 to 80 A, got %r" % (current_a,))
    if current_a == 0:
        return NO_PWM_DUTY
    if current_a < MIN_CURRENT_A or current_a > MAX_CURRENT_A:
        raise DutyRangeError("offered current must be 0 or 6 to 80 A, got %r" % (current_a,))
    if current_a <= LOW_BAND_MAX_A:
        return current_a * 5.0 / 3.0
    duty = current_a * 0.4 + 64.0
    # The gap rounds down (module docstring); comparing the duty rather than the current also
    # catches 52.5 A plus a rounding error, which still lands on 85 %.
    return duty if duty > 85.0 else 85.0


def current_for_duty(duty_pct: float) -> float:
    """Current (A) a car reads from ``duty_pct``, the inverse of ``duty_for_current``.

    Follows the car's side of the table: 8-10 % still means 6 A and 96-97 % still means
    80 A (the tolerance the standard gives for PWM generators). Anything else with no
    current meaning (digital-communication 5 %, < 8 %, > 97 % other than 100 %) is refused.
    """
    if duty_pct != duty_pct:
        raise DutyRangeError("duty cycle must be a number, got nan")
    if duty_pct == NO_PWM_DUTY:
        return 0.0
    if 8.0 <= duty_pct < 10.0:
        return MIN_CURRENT_A
    if 10.0 <= duty_pct <= 85.0:
        return duty_pct * 0.6
    if 85.0 < duty_pct <= 96.0:
        return (duty_pct - 64.0) * 2.5
    if 96.0 < duty_pct <= 97.0:
        return MAX_CURRENT_A
    raise DutyRangeError("duty cycle %r%% does not encode a current (allowed: 8-97 or 100)" % (duty_pct,))


def effective_current(current_a: float) -> float:
    """The current a car will read once ``current_a`` is offered (the gap rounds down)."""
    duty = duty_for_current(current_a)
    if current_a > LOW_BAND_MAX_A and duty == 85.0:
        return LOW_BAND_MAX_A
    return float(current_a)
