"""Tag groups, and the signed documents they carry.

Signed documents (an offer, a quote, a receipt, an agency certificate) travel as RFC 8785
canonical JSON text in the value of a tag whose group code names them, so they survive any
re-serialisation by gateways.
"""
from __future__ import annotations

from typing import Any

from protocols.beckn.vocabulary import SIGNED_VALUE
from protocols.signing.detached import canonical_bytes, load_json
from protocols.signing.errors import SignatureError


def tag_group(code: str, values: dict, *, name: str | None = None, display: bool = True) -> dict:
    """A Beckn TagGroup from ``{code: value}`` (values become strings)."""
    descriptor = {"code": code}
    if name:
        descriptor["name"] = name
    return {"display": display, "descriptor": descriptor,
            "list": [{"descriptor": {"code": k}, "value": str(v)} for k, v in values.items()]}


def signed_tag(code: str, document: dict) -> dict:
    """A tag group carrying one signed document as canonical JSON text."""
    return tag_group(code, {SIGNED_VALUE: canonical_bytes(document).decode("utf-8")}, display=False)


def tag_values(groups: Any, code: str) -> dict | None:
    """``{tag code: value}`` of the first group with ``code``; None when absent or malformed."""
    if not isinstance(groups, list):
        return None
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("descriptor"), dict) \
                and group["descriptor"].get("code") == code:
            out = {}
            for tag in group.get("list") or []:
                if isinstance(tag, dict) and isinstance(tag.get("descriptor"), dict):
                    k, v = tag["descriptor"].get("code"), tag.get("value")
                    if isinstance(k, str) and isinstance(v, str):
                        out[k] = v
            return out
    return None


def signed_documents(obj: Any, code: str, *, max_depth: int = 12) -> list[dict]:
    """Every signed document carried in a tag group ``code`` anywhere inside ``obj``.

    The documents are parsed, not verified: the caller checks them with
    ``protocols.signing.detached.verify_object`` (or ``receipt.verify_receipt``).
    """
    found: list[dict] = []
    for text in signed_document_texts(obj, code, max_depth=max_depth):
        try:
            doc = load_json(text)
        except SignatureError:
            continue
        if isinstance(doc, dict):
            found.append(doc)
    return found


def signed_document_texts(obj: Any, code: str, *, max_depth: int = 12) -> list[str]:
    """The text of every signed document in a tag group ``code`` inside ``obj``, unparsed, so a
    reader that has seen the very same text before can skip parsing and checking it again."""
    found: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > max_depth:
            return
        if isinstance(node, dict):
            tags = node.get("tags")
            values = tag_values(tags, code) if isinstance(tags, list) else None
            if values and SIGNED_VALUE in values:
                found.append(values[SIGNED_VALUE])
            for key, value in node.items():
                # text and numbers carry no tags, and a tag group holds its documents as text
                if key != "tags" and isinstance(value, (dict, list)):
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node[:256]:
                if isinstance(value, (dict, list)):
                    walk(value, depth + 1)

    walk(obj, 0)
    return found
