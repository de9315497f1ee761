"""Signed documents (offers, quotes, receipts, agency certificates) in 2.0 ``Descriptor.docs``.

Why a ``data:`` URL: a 1.1 message carried each signed document as canonical JSON text in a
tag; 2.0 has no tags but lets any descriptor list ``Document``s (label, MIME type, URL). The
document travels inside the message as ``data:application/json;base64,...`` of the exact
text, so its detached signature still verifies byte for byte, and ``label`` keeps the 1.1
tag code (``signed-quote``, ``signed-receipt``, ``agency-certificate``, ``signed-offer``).
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from protocols.beckn.vocabulary import SIGNED_VALUE

DATA_PREFIX = "data:application/json;base64,"
MAX_DOCUMENT_BYTES = 32 * 1024


def document(label: str, text: str) -> dict:
    """A 2.0 Document carrying ``text`` (canonical JSON) exactly."""
    return {"label": label, "mimeType": "application/json", "standard": "urja:" + label,
            "url": DATA_PREFIX + base64.b64encode(text.encode("utf-8")).decode("ascii")}


def document_text(doc: Any) -> tuple[str, str] | None:
    """``(label, text)`` of a Document made by ``document``; None for any other document."""
    if not isinstance(doc, dict):
        return None
    label, url = doc.get("label"), doc.get("url")
    if not isinstance(label, str) or not isinstance(url, str) or not url.startswith(DATA_PREFIX):
        return None
    data = url[len(DATA_PREFIX):]
    if len(data) > MAX_DOCUMENT_BYTES * 4 // 3 + 4:
        return None
    try:
        return label, base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def split_tags(tags: Any) -> tuple[list, list]:
    """1.1 tag groups -> (Documents of the signed ones, the other groups unchanged)."""
    docs, rest = [], []
    for group in tags if isinstance(tags, list) else []:
        code = group.get("descriptor", {}).get("code") if isinstance(group, dict) else None
        items = group.get("list") if isinstance(group, dict) else None
        if (isinstance(code, str) and isinstance(items, list) and len(items) == 1 and isinstance(items[0], dict)
                and items[0].get("descriptor", {}).get("code") == SIGNED_VALUE
                and isinstance(items[0].get("value"), str)):
            docs.append(document(code, items[0]["value"]))
        else:
            rest.append(group)
    return docs, rest


def tags_of(docs: Any) -> list:
    """Documents -> the 1.1 tag groups carrying them (others are left out)."""
    out = []
    for d in docs if isinstance(docs, list) else []:
        got = document_text(d)
        if got is not None:
            out.append({"display": False, "descriptor": {"code": got[0]},
                        "list": [{"descriptor": {"code": SIGNED_VALUE}, "value": got[1]}]})
    return out
