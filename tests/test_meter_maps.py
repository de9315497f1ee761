"""Register maps: every shipped model decodes known register words to known quantities,
and a broken map file is rejected with the file, the key and what is allowed."""
from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.configfile import ConfigError
from drivers.meter import MeterImplausible, list_models, load_map
from drivers.meter.modbus import check_plausible, decode_reads
from drivers.meter.plan import BusTiming, plan_for_map
from drivers.meter.regmap import decode_value, encode_value

SHIPPED = {"sdm630", "sdm120", "sdm72dm_v2", "abb_b23", "em340", "eem350_d_mcb", "iem3155"}

F230, F231, F229 = [0x4366, 0x0000], [0x4367, 0x0000], [0x4365, 0x0000]
F16, F8, F0, F50 = [0x4180, 0x0000], [0x4100, 0x0000], [0x0000, 0x0000], [0x4248, 0x0000]

# model -> ({quantity: register words as the meter sends them}, {quantity: expected canonical value})
KNOWN = {
    "sdm630": (
        {"voltage_l1": F230, "voltage_l2": F231, "voltage_l3": F229, "current_l1": F16, "current_l2": F8,
         "current_l3": F0, "power": [0x45E6, 0x0000], "frequency": F50, "energy_import": [0x449A, 0x5000]},
        {"voltage_l1": 230.0, "voltage_l2": 231.0, "voltage_l3": 229.0, "current_l1": 16.0, "current_l2": 8.0,
         "current_l3": 0.0, "power": 7360.0, "frequency": 50.0, "energy_import": 1234500.0},
    ),
    "sdm72dm_v2": (
        {"voltage_l1": F230, "voltage_l2": F231, "voltage_l3": F229, "current_l1": F16, "current_l2": F8,
         "current_l3": F0, "power": [0x45E6, 0x0000], "frequency": F50, "energy_import": [0x449A, 0x5000]},
        {"voltage_l1": 230.0, "voltage_l2": 231.0, "voltage_l3": 229.0, "current_l1": 16.0, "current_l2": 8.0,
         "current_l3": 0.0, "power": 7360.0, "frequency": 50.0, "energy_import": 1234500.0},
    ),
    "sdm120": (
        {"voltage_l1": F230, "current_l1": F16, "power": [0x4566, 0x0000], "frequency": [0x4246, 0x0000],
         "energy_import": [0x449A, 0x5000]},
        {"voltage_l1": 230.0, "current_l1": 16.0, "power": 3680.0, "frequency": 49.5, "energy_import": 1234500.0},
    ),
    "abb_b23": (
        {"voltage_l1": [0x0000, 0x08FD], "voltage_l2": [0x0000, 0x08FD], "voltage_l3": [0x0000, 0x08FD],
         "current_l1": [0x0000, 0x0642], "current_l2": [0x0000, 0x0000], "current_l3": [0x0000, 0x0000],
         "power": [0x0000B, 0x3B00], "frequency": [0x138A],
         "energy_import": [0x0000, 0x0000, 0x075B, 0xCD15]},
        {"voltage_l1": 230.1, "voltage_l2": 230.1, "voltage_l3": 230.1, "current_l1": 16.02, "current_l2": 0.0,
         "current_l3": 0.0, "power": 7360.0, "frequency": 50.02, "energy_import": 1234567890.0},
    ),
    "em340": (
        {"voltage_l1": [0x08FD, 0x0000], "voltage_l2": [0x08FD, 0x0000], "voltage_l3": [0x08FD, 0x0000],
         "current_l1": [0x3E94, 0x0000], "current_l2": [0x0000, 0x0000], "current_l3": [0x0000, 0x0000],
         "power": [0x1F80, 0x0001], "frequency": [0x01F4], "energy_import": [0x3039, 0x0000]},
        {"voltage_l1": 230.1, "voltage_l2": 230.1, "voltage_l3": 230.1, "current_l1": 16.02, "current_l2": 0.0,
         "current_l3": 0.0, "power": 7360.0, "frequency": 50.0, "energy_import": 1234500.0},
    ),
    "eem350_d_mcb": (
        {"voltage_l1": [0x08FD, 0x0000], "voltage_l2": [0x08FD, 0x0000], "voltage_l3": [0x08FD, 0x0000],
         "current_l1": [0x3E94, 0x0000], "current_l2": [0x0000, 0x0000], "current_l3": [0x0000, 0x0000],
         "power": [0x1F80, 0x0001], "energy_import": [0x3039, 0x0000]},
        {"voltage_l1": 230.1, "voltage_l2": 230.1, "voltage_l3": 230.1, "current_l1": 16.02, "current_l2": 0.0,
         "current_l3": 0.0, "power": 7360.0, "energy_import": 1234500.0},
    ),
    "iem3155": (
        {"voltage_l1": F230, "voltage_l2": F231, "voltage_l3": F229, "current_l1": F16, "current_l2": F8,
         "current_l3": F0, "power": [0x40F0, 0x0000], "frequency": F50,
         "energy_import": [0x0000, 0x0000, 0x0012, 0xD687]},
        {"voltage_l1": 230.0, "voltage_l2": 231.0, "voltage_l3": 229.0, "current_l1": 16.0, "current_l2": 8.0,
         "current_l3": 0.0, "power": 7500.0, "frequency": 50.0, "energy_import": 1234567.0},
    ),
}


def test_every_shipped_model_is_listed_and_loads():
    assert set(list_models()) == SHIPPED
    for model in SHIPPED:
        regmap = load_map(model)
        assert regmap.sources, model
        assert regmap.phases in (1, 3)


def test_iem3155_map_names_more_than_one_public_source():
    assert len(load_map("iem3155").sources) >= 2


@pytest.mark.parametrize("model", sorted(KNOWN))
def test_known_register_words_decode_to_known_quantities(model):
    """Words placed at the map's addresses, fetched through the poll plan, decode as expected."""
    regmap = load_map(model)
    words, expected = KNOWN[model]
    image: dict[tuple[int, int], int] = {}
    for name, ws in words.items():
        reg = regmap.quantities[name]
        for i, w in enumerate(ws):
            image[(reg.function, reg.address + i)] = w
    plan = plan_for_map(regmap, timing=BusTiming())
    fetched = [(r, [image.get((r.function, a), 0) for a in range(r.address, r.address + r.count)]) for r in plan.reads]
    values = decode_reads(regmap, fetched)
    assert set(values) == set(expected)
    for name, value in expected.items():
        assert values[name][0] == pytest.approx(value, rel=1e-6, abs=1e-6), name
        assert values[name][1] is False
    check_plausible(regmap, values)


def test_abb_negative_power_and_sentinels():
    regmap = load_map("abb_b23")
    assert decode_value(regmap.quantities["power"], [0xFFFF, 0x3CB0])[0] == pytest.approx(-500.0)
    value, sentinel = decode_value(regmap.quantities["voltage_l1"], [0xFFFF, 0xFFFF])
    assert sentinel and math.isnan(value)
    with pytest.raises(MeterImplausible) as info:
        check_plausible(regmap, {"voltage_l1": (value, sentinel)})
    assert info.value.details["reason"] == "sentinel"


def test_float_nan_and_out_of_range_are_implausible():
    regmap = load_map("iem3155")
    nan_words = [0xFFC0, 0x0000]  # what the iEM3155 sends for "not applicable"
    with pytest.raises(MeterImplausible) as info:
        check_plausible(regmap, {"frequency": decode_value(regmap.quantities["frequency"], nan_words)})
    assert info.value.code == "meter-implausible" and info.value.details["quantity"] == "frequency"
    for name, value in {"voltage_l1": 301.0, "current_l1": 64.0, "frequency": 44.0}.items():
        with pytest.raises(MeterImplausible):
            check_plausible(regmap, {name: (value, False)})


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(sorted(SHIPPED)), volts=st.floats(0, 300), amps=st.floats(0, 60),
       watts=st.floats(-20000, 20000), wh=st.integers(0, 10**9))
def test_encode_is_the_inverse_of_decode(model, volts, amps, watts, wh):
    """The simulator speaks through encode_value; it must say what the driver will hear."""
    regmap = load_map(model)
    for name, value in {"voltage_l1": volts, "current_l1": amps, "power": watts, "energy_import": float(wh)}.items():
        reg = regmap.quantities[name]
        decoded, sentinel = decode_value(reg, encode_value(reg, value))
        step = abs(reg.scale) * reg.to_canonical
        tolerance = step / 2 + 1e-9 if reg.type != "float32" else abs(value) * 1e-6 + 1e-6
        assert not sentinel
        assert decoded == pytest.approx(value, abs=tolerance), (name, reg.type)


# ---------------------------------------------------------------- validation of map files

GOOD = """
[meter]
name = "Test meter"
maker = "Acme"
phases = 1
sources = ["Acme manual rev 1"]

[quantities.energy_import]
function = 4
address = 0
type = "uint32"
unit = "Wh"

[quantities.power]
function = 4
address = 2
type = "float32"
unit = "W"

[quantities.voltage_l1]
function = 4
address = 4
type = "float32"
unit = "V"

[quantities.current_l1]
function = 4
address = 6
type = "float32"
unit = "A"
"""


def _write(tmp_path, text):
    path = tmp_path / "acme.toml"
    path.write_text(text)
    return path


def test_a_new_model_is_a_file_not_code(tmp_path):
    regmap = load_map(_write(tmp_path, GOOD))
    assert regmap.model == "acme" and regmap.maker == "Acme"
    assert "frequency" not in regmap.quantities
    assert regmap.max_registers_per_read == 125
    assert decode_value(regmap.quantities["energy_import"], [0x0001, 0x0000])[0] == 65536.0


@pytest.mark.parametrize(
    "change, key, allowed",
    [
        (('type = "float32"\nunit = "V"', 'type = "float33"\nunit = "V"'), "quantities.voltage_l1.type", "float32"),
        (('unit = "W"', 'unit = "MW"'), "quantities.power.unit", "kW"),
        (("function = 4\naddress = 6", "function = 5\naddress = 6"), "quantities.current_l1.function", "3 to 4"),
        (('unit = "A"', 'unit = "A"\nwordorder = "big"'), "quantities.current_l1.wordorder", "word_order"),
        (("phases = 1", "phases = 2"), "meter.phases", "1, 3"),
        (('sources = ["Acme manual rev 1"]', "sources = []"), "meter.sources", None),
    ],
)
def test_bad_map_names_file_key_and_allowed_values(tmp_path, change, key, allowed):
    old, new = change
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_map(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    if allowed:
        assert allowed in (info.value.allowed or "")


def test_missing_quantity_and_unknown_model_are_reported(tmp_path):
    text = GOOD.replace('[quantities.current_l1]\nfunction = 4\naddress = 6\ntype = "float32"\nunit = "A"\n', "")
    with pytest.raises(ConfigError) as info:
        load_map(_write(tmp_path, text))
    assert info.value.key == "quantities.current_l1"
    with pytest.raises(ConfigError) as info:
        load_map("sdm999")
    assert "sdm630" in info.value.allowed


def test_value_inside_an_unreadable_range_is_rejected(tmp_path):
    text = GOOD + "\n[[unreadable]]\nfunction = 4\nfirst = 3\nlast = 4\n"
    with pytest.raises(ConfigError) as info:
        load_map(_write(tmp_path, text))
    assert "unreadable" in str(info.value)


def test_energy_words_match_ieee754_reference():
    """Guard for the literal words above: they are what struct packs, not what encode_value says."""
    assert struct.pack(">f", 1234.5) == bytes.fromhex("449A5000")
    assert struct.pack(">f", 7360.0) == bytes.fromhex("45E60000")
