"""The page's words in English and Hindi, from one translation file (``strings.toml``).

Every string a page shows comes from the file by key, so a translator edits one file and a
test checks that every English string has its Hindi one. A key missing in a language falls
back to English rather than showing the key (the test keeps that from shipping).
"""
from __future__ import annotations

import tomllib
from pathlib import Path

LANGUAGES = ("en", "hi")
STRINGS_FILE = Path(__file__).with_name("strings.toml")


def load_strings(path: Path = STRINGS_FILE) -> dict[str, dict[str, str]]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {lang: dict(data.get(lang, {})) for lang in LANGUAGES}


class Words:
    """One language's strings; ``words("key", n=3)`` formats with ``str.format``."""

    def __init__(self, strings: dict[str, dict[str, str]], lang: str):
        self.lang = lang if lang in LANGUAGES else "en"
        self._mine = strings.get(self.lang, {})
        self._en = strings["en"]

    def __call__(self, key: str, **values) -> str:
        text = self._mine.get(key) or self._en.get(key)
        if text is None:
            raise KeyError(f"no string {key!r} in {STRINGS_FILE.name}")
        return text.format(**values) if values else text

    def __contains__(self, key: str) -> bool:
        return key in self._en
