"""Every word of the owner's page is in the translation file, in English and in Hindi."""
from __future__ import annotations

import re
from pathlib import Path

from agent.config import AUTH_MODES
from agent.core.auth import SOURCES
from agent.core.tariff import DAYS
from agent.service import CONNECTOR_STATUSES
from protocols.owner.i18n import Words, load_strings

OWNER = Path(__file__).resolve().parent.parent / "protocols" / "owner"
DEVANAGARI = re.compile("[\u0900-\u097f]")


def test_every_english_string_has_a_hindi_one():
    strings = load_strings()
    missing = sorted(set(strings["en"]) - set(strings["hi"]))
    assert not missing, f"no Hindi for: {missing}"
    assert not sorted(set(strings["hi"]) - set(strings["en"])), "Hindi strings without an English one"
    empty = sorted(k for k, v in strings["hi"].items() if not v.strip())
    assert not empty


def test_hindi_strings_are_written_in_devanagari_and_keep_their_placeholders():
    strings = load_strings()
    for key, english in strings["en"].items():
        hindi = strings["hi"][key]
        assert set(re.findall(r"{\w+}", hindi)) == set(re.findall(r"{\w+}", english)), key
    words = [k for k, v in strings["hi"].items() if DEVANAGARI.search(v)]
    assert len(words) >= len(strings["hi"]) - 8  # a few are names alike in both (GST %, OK...)


def test_every_key_the_pages_ask_for_is_in_the_file():
    strings = load_strings()["en"]
    used = set()
    for source in OWNER.glob("*.py"):
        # "st_" + status and the like are prefixes: their keys are added below
        used |= {k for k in re.findall(r"""\bw\(["']([a-z_]+)["']""", source.read_text()) if not k.endswith("_")}
    used |= {"st_" + s for s in CONNECTOR_STATUSES} | {"src_" + s for s in SOURCES}
    used |= {"day_" + d for d in DAYS} | {"auth_" + m for m in AUTH_MODES}
    assert not sorted(used - set(strings))


def test_a_language_the_file_lacks_falls_back_to_english():
    strings = load_strings()
    assert Words(strings, "xx")("login") == strings["en"]["login"]
    assert Words(strings, "hi")("login") == strings["hi"]["login"]
