"""The portable scenarios run under CPython here; the MicroPython run compares against this."""
import importlib.util
from pathlib import Path

SCENARIOS = Path(__file__).parent / "portable" / "tariff_scenarios.py"


def load():
    spec = importlib.util.spec_from_file_location("tariff_scenarios", SCENARIOS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scenarios_run_and_are_stable():
    module = load()
    first = module.run()
    assert first == sorted(first)
    assert first == module.run()
    text = "\n".join(first)
    # 10 kWh flat at 18/kWh + 18 % = 212.40, whatever the hour
    assert "quote flat +0h: excl=1800000 vat=324000 incl=2124000 paid=21240" in text
    assert "error bad price: elements[0].price_components[0].price" in text
    assert "error bad day: elements[0].restrictions.day_of_week[0]" in text
    # 10 min charged, billed as 15 min x 6/h = 1.50, VAT 20 %; parked 4 + 1 min: within the 5
    # rounded-up minutes, free; parked 4 + 7 min: beyond them, so all 11 are billed, per 5 min
    # -> 15 min x 12/h = 3.00
    assert "periods cover fits: excl=15000 vat=3000 incl=18000 paid=180" in text
    assert "periods cover exceeds: excl=45000 vat=9000 incl=54000 paid=540" in text
    # reserved 1000 s, billed per 10 min = 1200 s. Used: 20 min x 60/h = 20 (+18 % = 3.60),
    # start fee 10 (1.80), 5 kWh x 18 = 90 (16.20) -> 120 / 141.60. Expired: fee 50 (9.00)
    # + 20 min x 90/h = 30 (5.40) and no session -> 80 / 94.40
    assert "reservation used: excl=1200000 vat=216000 incl=1416000 paid=14160" in text
    assert "r=200000/36000 rf=0/0 rs=1200 expired=False" in text
    assert "reservation expired: excl=800000 vat=144000 incl=944000 paid=9440" in text
    assert "r=300000/54000 rf=500000/90000 rs=1200 expired=True" in text
    assert len(first) == 4 * (6 * 2 + 3) + 4 + 3 + 2
