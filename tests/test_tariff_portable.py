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
    assert len(first) == 4 * (6 * 2 + 3) + 2 + 3
