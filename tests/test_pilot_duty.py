"""The IEC 61851-1 duty table, its bounds and the 51-52.5 A gap."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.pilot import current_for_duty, duty_for_current, effective_current
from drivers.pilot.duty import DutyRangeError


@pytest.mark.parametrize(
    "amps, duty",
    [(0, 100.0), (6, 10.0), (10, 100 / 6), (16, 26.666666666666668), (32, 53.333333333333336),
     (51, 85.0), (52.5, 85.0), (52.6, 85.04), (63, 89.2), (80, 96.0)],
)
def test_table_points(amps, duty):
    assert duty_for_current(amps) == pytest.approx(duty, abs=1e-9)


@pytest.mark.parametrize("amps", [0.1, 1, 5.99, 80.01, 100, -1, math.nan, math.inf])
def test_currents_without_a_duty_are_refused(amps):
    with pytest.raises(DutyRangeError, match="0 or 6 to 80 A"):
        duty_for_current(amps)


@pytest.mark.parametrize("amps", [51.0001, 51.5, 52, 52.4999, 52.5])
def test_gap_rounds_down_to_51_a(amps):
    assert duty_for_current(amps) == 85.0
    assert effective_current(amps) == 51.0
    assert current_for_duty(duty_for_current(amps)) == pytest.approx(51.0)


def test_gap_never_makes_the_car_read_more_than_offered():
    # The bug the rounding avoids: the low formula at 52 A reads back as 56.7 A.
    assert current_for_duty(52 / 0.6) > 56
    assert current_for_duty(duty_for_current(52)) <= 52


@pytest.mark.parametrize("duty, amps", [(8, 6), (9.9, 6), (10, 6), (85, 51), (85.2, 53), (96, 80), (97, 80), (100, 0)])
def test_car_side_reading(duty, amps):
    assert current_for_duty(duty) == pytest.approx(amps)


@pytest.mark.parametrize("duty", [0, 5, 7.9, 97.1, 99, 101, math.nan])
def test_duties_without_a_current_are_refused(duty):
    with pytest.raises(DutyRangeError):
        current_for_duty(duty)


currents = st.one_of(
    st.floats(min_value=6, max_value=51),
    st.floats(min_value=52.5, max_value=80, exclude_min=True),
)


@given(currents)
def test_round_trip_outside_the_gap(amps):
    expected = 51.0 if amps <= 52.5 + 1e-9 and amps > 51 else amps
    assert current_for_duty(duty_for_current(amps)) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert effective_current(amps) == pytest.approx(current_for_duty(duty_for_current(amps)), abs=1e-9)


@given(st.floats(min_value=6, max_value=80), st.floats(min_value=6, max_value=80))
def test_duty_is_monotonic_and_the_car_never_reads_more(a, b):
    lo, hi = sorted((a, b))
    assert duty_for_current(lo) <= duty_for_current(hi)
    assert current_for_duty(duty_for_current(hi)) <= hi + 1e-9
    assert 10.0 <= duty_for_current(hi) <= 96.0
