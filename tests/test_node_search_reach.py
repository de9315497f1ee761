"""How far a node may search: the charger's rule, one function, and a cover that stays small.

A node asks only what a charger answers (``search_reaches``), ``urja discover`` refuses a wider
circle in one line naming the reach there, and a wide search never builds the precision-5
cover it will not use: the cells computed are counted, not the time taken.
"""
from __future__ import annotations

import pytest

from protocols.mqtt import geohash
from protocols.mqtt.topics import (
    MAX_SEARCH_CELLS,
    SEARCH_PRECISIONS,
    TopicError,
    Topics,
    search_cells,
    search_reach_km,
    search_reaches,
)
from tools.cli import build_parser

BLR = (12.9352, 77.6245)
PLACES = [BLR, (0.0, 0.0), (-33.9, 18.4), (64.1, -21.9), (89.5, 10.0), (-89.9, -170.0), (12.0, 179.99)]


@pytest.fixture
def cells_computed(monkeypatch):
    """Counts every cell whose distance to the centre is computed."""
    count = [0]
    distance = geohash._distance_to_cell_km

    def counting(lat, lon, cell_bounds):
        count[0] += 1
        return distance(lat, lon, cell_bounds)
    monkeypatch.setattr(geohash, "_distance_to_cell_km", counting)
    return count


def test_a_900_km_search_computes_a_few_dozen_cells_not_its_precision_5_cover(cells_computed):
    topics = Topics().search_cover(*BLR, 900)
    assert 1 <= len(topics) <= MAX_SEARCH_CELLS
    assert all(t.count("/") == 2 + min(SEARCH_PRECISIONS) for t in topics)
    # precision 2 whole (about 6 x 4 candidate cells), precision 3 until its 17th cell; the
    # precision-5 cover of this circle has some 110,000 cells and is never started
    assert cells_computed[0] <= 4 * (MAX_SEARCH_CELLS + 1)


def test_a_search_no_node_may_publish_stops_counting_at_the_first_cell_over_the_budget(cells_computed):
    with pytest.raises(TopicError, match="reaches at most 1,?399 km"):
        Topics().search_cover(*BLR, 1999)
    # the refusal (precision 2 up to its 17th cell) and the dozen coarse covers that find the reach
    assert cells_computed[0] <= 13 * 4 * (MAX_SEARCH_CELLS + 1)


def _finest_fitting_cover(lat, lon, radius_km):
    """The rule as first written: every precision's whole cover, the finest that fits."""
    best = None
    for p in SEARCH_PRECISIONS:
        cells = geohash.cover(lat, lon, radius_km, p)
        if len(cells) <= MAX_SEARCH_CELLS:
            best = cells
    return best


# the whole covers of a cap around a pole span every longitude: small ones only, to stay quick
@pytest.mark.parametrize("lat, lon, radius_km",
                         [(lat, lon, r) for lat, lon in PLACES if abs(lat) < 89 for r in (0, 0.5, 3, 20, 60, 150, 250)]
                         + [(lat, lon, r) for lat, lon in PLACES if abs(lat) >= 89 for r in (0, 0.5, 3)])
def test_the_bounded_cover_chooses_the_cells_the_whole_covers_choose(lat, lon, radius_km):
    whole = _finest_fitting_cover(lat, lon, radius_km)
    assert search_reaches(lat, lon, radius_km) == (whole is not None)
    if whole is None:
        with pytest.raises(TopicError):
            search_cells(lat, lon, radius_km)
    else:
        assert search_cells(lat, lon, radius_km) == whole


@pytest.mark.parametrize("radius_km", [600, 900, 1200, 1500, 1999])
@pytest.mark.parametrize("lat, lon", PLACES)
def test_the_node_publishes_exactly_the_searches_the_charger_answers(lat, lon, radius_km):
    whole = geohash.cover(lat, lon, radius_km, min(SEARCH_PRECISIONS))
    assert search_reaches(lat, lon, radius_km) == (len(whole) <= MAX_SEARCH_CELLS)
    if search_reaches(lat, lon, radius_km):
        assert len(search_cells(lat, lon, radius_km)) <= MAX_SEARCH_CELLS
    else:
        with pytest.raises(TopicError, match="needs more than 16 geohash cells at precision 2"):
            search_cells(lat, lon, radius_km)


@pytest.mark.parametrize("lat, lon", PLACES)
def test_the_reach_is_the_widest_whole_km_the_rule_allows(lat, lon):
    reach_km = search_reach_km(lat, lon)
    assert search_reaches(lat, lon, reach_km)
    assert reach_km == geohash.MAX_RADIUS_KM or not search_reaches(lat, lon, reach_km + 1)


def test_the_reach_is_about_1000_km_between_60_south_and_60_north():
    assert search_reach_km(*BLR) == 1399
    for lat in range(-60, 61, 15):
        for lon in (-179.5, -45.0, 0.0, 77.6, 135.0):
            assert search_reach_km(lat, lon) >= 1000


def test_a_bad_centre_or_radius_is_refused_as_such_not_as_out_of_reach():
    with pytest.raises(TopicError, match="latitude"):
        search_cells(91.0, 0.0, 5)
    with pytest.raises(TopicError, match="radius"):
        search_cells(*BLR, -1)
    assert not search_reaches(*BLR, -1) and not search_reaches(91.0, 0.0, 5)


def _discover_args(radius_km: str):
    return build_parser().parse_args(["discover", "--near", "12.9716,77.5946", "--radius-km", radius_km,
                                      "--broker", "mqtt://127.0.0.1:1", "--agency-key", "x"])


def test_discover_refuses_a_radius_beyond_the_reach_in_one_line_naming_the_flag_and_the_reach(capsys):
    args = _discover_args("1500")
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err == ("urja discover: --radius-km 1500 is beyond a search's reach from 12.9716,77.5946: "
                   "at most 1,401 km there (16 geohash cells of precision 2)\n")
    args = _discover_args("0")
    assert args.func(args) == 2
    assert capsys.readouterr().err == "urja discover: --radius-km 0 must be more than 0\n"


def test_discover_lets_a_900_km_search_through_to_the_node(capsys):
    # past the radius check the agency key is read next, and this one is refused
    args = _discover_args("900")
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "--radius-km" not in err and "agency key" in err
