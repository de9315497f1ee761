"""Energy sits only in periods with charging time, in the live price and so in the receipt."""
from agent.core.live_pricer import LivePricer
from tests.tariff_builders import MON, comp, energy, tariff


def test_energy_read_before_the_session_knew_it_charged_counts_as_charging_time():
    live = LivePricer(tariff(energy(10), comp("PARKING_TIME", 60)), utc_offset_s=19800)
    live.reading(MON, 1000, charging=False)  # the start: contacts about to close
    live.reading(MON + 10, 1002, power_w=7000, charging=True)  # energy already flowed in those 10 s
    live.reading(MON + 70, 1100, power_w=0, charging=False)
    live.reading(MON + 130, 1100, power_w=0, charging=False)  # parked
    periods = live.periods()
    assert all(p.time_s > 0 for p in periods if p.energy_wh > 0), periods
    assert sum(p.energy_wh for p in periods) == 100
    assert sum(p.parking_s for p in periods) == 60


def test_a_register_that_rose_with_no_power_drawn_stays_parking():
    live = LivePricer(tariff(energy(10), comp("PARKING_TIME", 60)), utc_offset_s=19800)
    live.reading(MON, 1000, power_w=7000, charging=True)
    live.reading(MON + 60, 1030, power_w=0, charging=False)
    live.reading(MON + 120, 1034, power_w=0, charging=False)  # a misread while parked
    assert sum(p.parking_s for p in live.periods()) == 60
