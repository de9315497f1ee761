"""Beckn 2.0 messages to and from the 1.1 documents the provider logic and the node read.

Four directions, one module: requests 2.0 -> 1.1 (the charger reads what a buyer sent) and
1.1 -> 2.0 (the reference node sends), callbacks 1.1 -> 2.0 (the charger answers) and
2.0 -> 1.1 (the node reads the answer). The context keys turn camelCase and gain
``networkId``, ``schemaContext`` and ``requestDigest``; ``message.order`` becomes
``message.contract`` (``contract``); search/rating become discover/rate.

What is refused here, before the provider logic sees anything, is what only 2.0 can get
wrong: a version other than 2.0.0, the release candidate's snake_case context or
``message.order`` (the DEG v2 examples use both), another network's ``networkId``,
``try: true`` (this charger offers no previews), and shapes the LTS schema forbids.
"""
from __future__ import annotations

import re
from typing import Any

from protocols.beckn.errors import ACTION_NOT_APPLICABLE, INVALID_REQUEST, BecknError, invalid
from protocols.beckn.tags import tag_group, tag_values
from protocols.beckn.vocabulary import TAG_LIVE, TAG_SEARCH, UPDATE_TARGET
from protocols.beckn2 import vocabulary as v
from protocols.beckn2.catalog import catalog_from_v1, catalog_to_v1
from protocols.beckn2.contract import (
    decimal_text,
    number,
    order_to_contract,
    session_attributes,
)
from protocols.beckn2.reading import PathMap, contract_to_order

CONTEXT_KEYS = {"bap_id": "bapId", "bap_uri": "bapUri", "bpp_id": "bppId", "bpp_uri": "bppUri",
                "transaction_id": "transactionId", "message_id": "messageId"}
V2_KEYS = {b: a for a, b in CONTEXT_KEYS.items()}
PLAIN_KEYS = ("domain", "location", "timestamp", "ttl", "key")
DIGEST_KEY, DIGEST_FOR = "_requestDigest", "_requestMessageId"  # carried inside the 1.1 context only
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
V1_VERSION = "1.1.0"


# The members of each request's message (``beckn.yaml``: DiscoverAction ... SupportAction).
MESSAGE_KEYS = {"discover": ("intent", "textSearch", "text_search"), "track": ("tracking",),
                "rate": ("ratingInputs",), "support": ("support",)}


def minimal_commitment(resource: str = "energy") -> dict:
    """The one commitment a contract named by id must still carry (``Contract.commitments``
    is required with at least one entry)."""
    return {"status": {"descriptor": {"code": "ACTIVE"}}, "resources": [{"id": resource, "quantity": {}}],
            "offer": {"id": resource, "resourceIds": [resource]}}


# ------------------------------------------------------------------------------ context

def context_v2(ctx: dict, *, network_id: str | None, action: str | None = None) -> dict:
    """A 1.1 context as 2.0: camelCase keys, version 2.0.0, networkId, schemaContext and, on a
    callback answering a request, that request's digest."""
    out: dict = {}
    for k, val in ctx.items():
        if k in CONTEXT_KEYS:
            out[CONTEXT_KEYS[k]] = val
        elif k in PLAIN_KEYS:
            out[k] = val
    out["action"] = action or action_v2(ctx.get("action"))
    out["version"] = v.VERSION
    if network_id:
        out["networkId"] = network_id
    out["schemaContext"] = list(v.SCHEMA_CONTEXTS)
    digest = ctx.get(DIGEST_KEY)
    if isinstance(digest, str) and ctx.get(DIGEST_FOR) == ctx.get("message_id"):
        out["requestDigest"] = {"digest": digest}
    return out


def action_v2(action: Any) -> Any:
    if not isinstance(action, str):
        return action
    if action.startswith("on_"):
        return "on_" + v.V1_TO_V2.get(action[3:], action[3:])
    return v.V1_TO_V2.get(action, action)


def action_v1(action: Any) -> Any:
    if not isinstance(action, str):
        return action
    if action.startswith("on_"):
        return "on_" + v.V2_TO_V1.get(action[3:], action[3:])
    return v.V2_TO_V1.get(action, action)


def context_v1(ctx: Any, *, network_id: str | None, paths: PathMap, request: bool) -> dict:
    """A 2.0 context as the 1.1 one the readers check; refuses what is 2.0-specific."""
    if not isinstance(ctx, dict):
        raise invalid("context", "must be an object")
    for k in CONTEXT_KEYS:
        if k in ctx:
            raise invalid(f"context.{k}", f"snake_case context keys are the 2.0 release candidate's; "
                                          f"Beckn 2.0.0 LTS spells it {CONTEXT_KEYS[k]}")
    version = ctx.get("version")
    if version != v.VERSION:
        raise invalid("context.version", f"core version {version!r} (allowed: {v.VERSION})")
    got_network = ctx.get("networkId")
    if got_network is not None and network_id is not None and got_network != network_id:
        raise invalid("context.networkId", f"{got_network!r} is not this charger's network (allowed: {network_id})")
    if ctx.get("try") not in (None, False):
        raise BecknError(ACTION_NOT_APPLICABLE, "this charger offers no previews (allowed: try false or absent)",
                         path="context.try", kind="refused")
    if request:
        for k in ("transactionId", "messageId"):
            if not isinstance(ctx.get(k), str) or not _UUID.match(ctx[k]):
                raise invalid(f"context.{k}", f"must be a UUID, got {ctx.get(k)!r}")
    out: dict = {}
    for k, val in ctx.items():
        if k in V2_KEYS:
            out[V2_KEYS[k]] = val
            paths.add(f"context.{V2_KEYS[k]}", f"context.{k}")
        elif k in PLAIN_KEYS:
            out[k] = val
    out["action"] = action_v1(ctx.get("action"))
    out["version"] = V1_VERSION
    paths.add("context.action", "context.action")
    return out


# ------------------------------------------------------------------------------ requests 2.0 -> 1.1

def _contract(msg: dict, key: str = "contract", base: str = "message.contract") -> dict:
    contract = msg.get(key)
    if not isinstance(contract, dict):
        raise invalid(base, "must be an object (Beckn 2.0.0 LTS: message.contract replaces message.order)")
    commitments = contract.get("commitments")
    if not isinstance(commitments, list) or not commitments:
        raise invalid(base + ".commitments", "must be a list of at least one commitment")
    return contract


def _contract_id(contract: dict, base: str, paths: PathMap, v1_path: str = "message.order_id") -> Any:
    paths.add(v1_path, base + ".id")
    if contract.get("id") is None:
        raise invalid(base + ".id", "required: the contract's id from on_confirm")
    return contract["id"]


def _discover_v1(msg: dict, paths: PathMap) -> dict:
    for k in ("spatial", "filters"):
        if k in msg:
            raise invalid(f"message.{k}", f"the release candidate's place for {k}; Beckn 2.0.0 LTS nests it in "
                                          f"message.intent.{k}")
    intent = msg.get("intent")
    if not isinstance(intent, dict):
        raise invalid("message.intent", "must be an object")
    out: dict = {}
    spatial = intent.get("spatial")
    if spatial is not None:
        if not isinstance(spatial, list):
            raise invalid("message.intent.spatial", "must be a list")
        for i, sc in enumerate(spatial):
            p = f"message.intent.spatial[{i}]"
            if not isinstance(sc, dict) or sc.get("op") != "S_DWITHIN":
                raise invalid(p + ".op", "only S_DWITHIN around a Point is read here (allowed: S_DWITHIN)")
            geo = sc.get("geometry")
            coords = geo.get("coordinates") if isinstance(geo, dict) and geo.get("type") == "Point" else None
            if not (isinstance(coords, list) and len(coords) >= 2
                    and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords[:2])):
                raise invalid(p + ".geometry", "must be a GeoJSON Point [lon, lat]")
            dist = sc.get("distanceMeters")
            if isinstance(dist, bool) or not isinstance(dist, (int, float)) or dist < 0:
                raise invalid(p + ".distanceMeters", "must be a number of metres")
            circle = {"gps": f"{coords[1]},{coords[0]}", "radius": {"unit": "m", "value": str(int(dist))}}
            out["fulfillment"] = {"stops": [{"location": {"circle": circle}}]}
            base = "message.intent.fulfillment.stops[0].location.circle"
            paths.add(base + ".gps", p + ".geometry.coordinates")
            paths.add(base + ".radius", p + ".distanceMeters")
            break
    return {"intent": out}


def _update_v1(msg: dict, paths: PathMap) -> dict:
    contract = _contract(msg)
    perf = contract.get("performance")
    paths.add("message.order.fulfillments", "message.contract.performance")
    paths.add("message.order.fulfillments[0].state.descriptor.code", "message.contract.performance[0].status.code")
    paths.add("message.order.id", "message.contract.id")
    fuls: Any = perf
    if isinstance(perf, list):
        fuls = []
        for p in perf:
            if not isinstance(p, dict):
                fuls.append(p)
                continue
            ful: dict = {"type": "CHARGING"}
            if p.get("id") is not None:
                ful["id"] = p["id"]
            status = p.get("status")
            ful["state"] = {"descriptor": {"code": status.get("code")}} if isinstance(status, dict) else status
            fuls.append(ful)
    order: dict = {"fulfillments": fuls}
    if contract.get("id") is not None:
        order = {"id": contract["id"], **order}
    return {"update_target": UPDATE_TARGET, "order": order}


def _cancel_v1(msg: dict, paths: PathMap) -> dict:
    contract = _contract(msg)
    out: dict = {"order_id": _contract_id(contract, "message.contract", paths)}
    d = contract.get("descriptor") if isinstance(contract.get("descriptor"), dict) else {}
    if d.get("code") is not None:
        out["cancellation_reason_id"] = d["code"]
        paths.add("message.cancellation_reason_id", "message.contract.descriptor.code")
    if d.get("shortDesc") is not None:
        out["descriptor"] = {"short_desc": d["shortDesc"]}
        paths.add("message.descriptor.short_desc", "message.contract.descriptor.shortDesc")
    return out


def _rate_v1(msg: dict, paths: PathMap) -> dict:
    inputs = msg.get("ratingInputs")
    paths.add("message.ratings", "message.ratingInputs")
    if not isinstance(inputs, list):
        return {"ratings": inputs}
    ratings = []
    for i, r in enumerate(inputs):
        if not isinstance(r, dict):
            ratings.append(r)
            continue
        target = r.get("target") if isinstance(r.get("target"), dict) else {}
        rng = r.get("range") if isinstance(r.get("range"), dict) else {}
        value = rng.get("ratingValue")
        out = {"id": target.get("id"), "value": str(value) if isinstance(value, int)
               and not isinstance(value, bool) else value}
        code = (target.get("descriptor") or {}).get("code") if isinstance(target.get("descriptor"), dict) else None
        if code is not None:
            out["rating_category"] = code
        ratings.append(out)
        p = f"message.ratingInputs[{i}]"
        paths.add(f"message.ratings[{i}].id", p + ".target.id")
        paths.add(f"message.ratings[{i}].value", p + ".range.ratingValue")
        paths.add(f"message.ratings[{i}].rating_category", p + ".target.descriptor.code")
    return {"ratings": ratings}


def _support_v1(msg: dict, paths: PathMap) -> dict:
    sup = msg.get("support")
    if not isinstance(sup, dict):
        raise invalid("message.support", "must be an object")
    out: dict = {}
    if sup.get("orderId") is not None:
        out["ref_id"] = sup["orderId"]
        paths.add("message.support.ref_id", "message.support.orderId")
    for ch in sup.get("channels") or []:
        if isinstance(ch, dict):
            for k1, k2 in (("phone", "telephone"), ("email", "email")):
                if ch.get(k2) is not None and k1 not in out:
                    out[k1] = ch[k2]
    return {"support": out}


def request_v1(action: str, doc: Any, *, network_id: str | None, bpp_id: str | None) -> tuple[str, dict, PathMap]:
    """A 2.0 request (already JSON) as ``(1.1 action, 1.1 document, paths)``; ``BecknError``
    (with the 2.0 path) for what only 2.0 can get wrong."""
    if action not in v.V2_TO_V1:
        raise BecknError(ACTION_NOT_APPLICABLE, f"action {action!r} is not served here (allowed: "
                                                f"{', '.join(v.REQUEST_ACTIONS)})", kind="unknown-action",
                         http_status=404)
    paths = PathMap()
    if not isinstance(doc, dict):
        raise BecknError(INVALID_REQUEST, "body must be a JSON object", path="$", kind="malformed")
    ctx = context_v1(doc.get("context"), network_id=network_id, paths=paths, request=True)
    if doc["context"].get("action") != action:
        raise invalid("context.action", f"{doc['context'].get('action')!r} sent to the {action!r} endpoint")
    msg = doc.get("message")
    if not isinstance(msg, dict):
        raise invalid("message", "must be an object")
    if "order" in msg:
        raise invalid("message.order", "message.order is the 2.0 release candidate's; Beckn 2.0.0 LTS sends "
                                       "message.contract")
    allowed = MESSAGE_KEYS.get(action, ("contract",))
    for k in msg:
        if k not in allowed and k != "order":
            raise invalid(f"message.{k}", f"not part of a 2.0 {action} message (allowed: {', '.join(allowed)})")
    message = _READERS[action](msg, paths, bpp_id)
    return v.V2_TO_V1[action], {"context": ctx, "message": message}, paths


def _order_v1(msg: dict, paths: PathMap, bpp_id: str | None) -> dict:
    return {"order": contract_to_order(_contract(msg), bpp_id=bpp_id, paths=paths, use_detail=False)}


def _status_v1(msg: dict, paths: PathMap, bpp_id: str | None) -> dict:
    return {"order_id": _contract_id(_contract(msg), "message.contract", paths)}


def _track_v1(msg: dict, paths: PathMap, bpp_id: str | None) -> dict:
    tracking = msg.get("tracking")
    if not isinstance(tracking, dict):
        raise invalid("message.tracking", "must be an object")
    return {"order_id": _contract_id(_contract(tracking, base="message.tracking.contract"),
                                     "message.tracking.contract", paths)}


_READERS = {
    "discover": lambda msg, paths, _: _discover_v1(msg, paths), "select": _order_v1, "init": _order_v1,
    "confirm": _order_v1, "status": _status_v1, "track": _track_v1,
    "update": lambda msg, paths, _: _update_v1(msg, paths), "cancel": lambda msg, paths, _: _cancel_v1(msg, paths),
    "rate": lambda msg, paths, _: _rate_v1(msg, paths), "support": lambda msg, paths, _: _support_v1(msg, paths),
}


# ------------------------------------------------------------------------------ callbacks 1.1 -> 2.0

def _tracking_v2(tr: dict) -> dict:
    out: dict = {"contract": {"id": tr.get("id"), "commitments": [minimal_commitment()]},
                 "status": "ACTIVE" if tr.get("status") == "active" else "INACTIVE"}
    gps = (tr.get("location") or {}).get("gps") if isinstance(tr.get("location"), dict) else None
    out["url"] = "geo:" + gps.replace(" ", "") if isinstance(gps, str) else "geo:0,0"
    attrs = session_attributes({"tags": tr.get("tags")})
    if attrs is not None:
        out["trackingAttributes"] = attrs
    return out


def _support_v2(sup: dict) -> dict:
    out: dict = {}
    if sup.get("ref_id") is not None:
        out["orderId"] = sup["ref_id"]
    channel = {k2: sup[k1] for k1, k2 in (("phone", "telephone"), ("email", "email")) if sup.get(k1)}
    if channel:
        out["channels"] = [{"@context": "https://schema.org/", "@type": "ContactPoint", **channel}]
    return out


def error_v2(error: dict) -> dict:
    """The 1.1 error object in the 2.0 model (``errorCode``, ``errorMessage``; ``paths`` kept)."""
    out = {"errorCode": str(error.get("code", INVALID_REQUEST)), "errorMessage": error.get("message", "")}
    if error.get("paths"):
        out["paths"] = error["paths"]
    return out


def callback_v2(doc: dict, *, network_id: str | None, bpp_id: str | None, bpp_uri: str | None) -> dict:
    """A callback the provider logic made (1.1) as the 2.0 callback sent."""
    ctx = context_v2(doc["context"], network_id=network_id)
    out: dict = {"context": ctx}
    msg = doc.get("message")
    action = doc["context"].get("action")
    if isinstance(msg, dict):
        if action == "on_search":
            message: dict = {"catalogs": [catalog_from_v1(msg.get("catalog") or {}, bpp_id=bpp_id, bpp_uri=bpp_uri)]}
        elif "order" in msg:
            message = {"contract": order_to_contract(msg["order"], bpp_id=bpp_id, detail=True)}
        elif action == "on_track":
            message = {"tracking": _tracking_v2(msg.get("tracking") or {})}
        elif action == "on_rating":
            message = {"ratings": []}
        elif action == "on_support":
            message = {"support": _support_v2(msg.get("support") or {})}
        else:
            message = dict(msg)
        out["message"] = message
    if isinstance(doc.get("error"), dict):
        out["error"] = error_v2(doc["error"])
    return out


# ------------------------------------------------------------------------------ callbacks 2.0 -> 1.1

def _tracking_v1(tr: Any) -> dict:
    if not isinstance(tr, dict):
        return {}
    contract = tr.get("contract") if isinstance(tr.get("contract"), dict) else {}
    out: dict = {"id": contract.get("id"), "status": "active" if tr.get("status") == "ACTIVE" else "inactive"}
    url = tr.get("url")
    if isinstance(url, str) and url.startswith("geo:"):
        out["location"] = {"gps": url[4:]}
    attrs = tr.get("trackingAttributes") if isinstance(tr.get("trackingAttributes"), dict) else {}
    live: dict = {}
    if attrs.get("sessionStatus") is not None:
        live["session-status"] = attrs["sessionStatus"]
    if isinstance(attrs.get("meteredEnergyKWh"), (int, float)):
        live["energy-wh"] = str(round(attrs["meteredEnergyKWh"] * 1000))
    cost = (attrs.get("totalCost") or {}).get("inclVat") if isinstance(attrs.get("totalCost"), dict) else None
    if cost is not None:
        live["cost"] = decimal_text(cost)
    if live:
        out["tags"] = [tag_group(TAG_LIVE, live, name="Live charging data")]
    return out


def callback_v1(doc: Any, *, bpp_id: str | None = None) -> dict:
    """A 2.0 callback as the 1.1 one the reference node reads (the charger's detail first)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("context"), dict):
        raise invalid("context", "must be an object")
    paths = PathMap()
    ctx = context_v1(doc["context"], network_id=None, paths=paths, request=False)
    out: dict = {"context": ctx}
    msg = doc.get("message")
    action = ctx.get("action")
    if isinstance(msg, dict):
        if action == "on_search":
            cats = msg.get("catalogs")
            out["message"] = {"catalog": catalog_to_v1(cats[0]) if isinstance(cats, list) and cats else {}}
        elif "contract" in msg:
            out["message"] = {"order": contract_to_order(msg["contract"], bpp_id=bpp_id, paths=paths,
                                                         use_detail=True)}
        elif action == "on_track":
            out["message"] = {"tracking": _tracking_v1(msg.get("tracking"))}
        elif action == "on_rating":
            out["message"] = {"feedback_form": {"required": False}}
        elif action == "on_support":
            sup = msg.get("support") if isinstance(msg.get("support"), dict) else {}
            s1: dict = {"ref_id": sup.get("orderId")} if sup.get("orderId") else {}
            for ch in sup.get("channels") or []:
                if isinstance(ch, dict):
                    s1.update({k1: ch[k2] for k1, k2 in (("phone", "telephone"), ("email", "email")) if ch.get(k2)})
            out["message"] = {"support": s1}
        else:
            out["message"] = dict(msg)
    err = doc.get("error")
    if isinstance(err, dict):
        out["error"] = {"code": err.get("errorCode"), "message": err.get("errorMessage")}
        if err.get("paths"):
            out["error"]["paths"] = err["paths"]
    return out


# ------------------------------------------------------------------------------ requests 1.1 -> 2.0

def _search_v2(msg: dict) -> tuple[dict, dict]:
    intent = msg.get("intent") or {}
    out: dict = {}
    ful = intent.get("fulfillment") or {}
    for stop in ful.get("stops") or []:
        circle = (stop.get("location") or {}).get("circle")
        if isinstance(circle, dict):
            lat, lon = (float(x) for x in circle["gps"].split(","))
            r = circle["radius"]
            metres = float(r["value"]) * (1000 if r.get("unit") == "km" else 1)
            out["spatial"] = [{"op": "S_DWITHIN", "targets": "$['provider']['availableAt'][*]['geo']",
                               "geometry": {"type": "Point", "coordinates": [lon, lat]},
                               "distanceMeters": number(decimal_text(metres))}]
    wants = tag_values(ful.get("tags"), TAG_SEARCH) or {}
    if wants.get("connector-type") in v.CONNECTOR_TYPES:
        out["filters"] = {"type": "jsonpath", "expression": "$[?(@.resourceAttributes.connectorType == '"
                                                             f"{v.CONNECTOR_TYPES[wants['connector-type']]}')]"}
    return {"intent": out}, intent


def request_v2(doc: dict, *, network_id: str | None) -> dict:
    """A request the reference node built (1.1) as the 2.0 request it sends."""
    ctx = doc["context"]
    action = ctx["action"]
    msg = doc.get("message") or {}
    bpp_id = ctx.get("bpp_id")
    if action == "search":
        message, _ = _search_v2(msg)
    elif action in ("select", "init", "confirm"):
        message = {"contract": order_to_contract(msg["order"], bpp_id=bpp_id, detail=False)}
    elif action in ("status", "track"):
        contract = {"id": msg.get("order_id"), "commitments": [minimal_commitment()]}
        message = {"contract": contract} if action == "status" else \
            {"tracking": {"contract": contract, "url": ctx.get("bap_uri"), "status": "ACTIVE"}}
    elif action == "update":
        order = msg.get("order") or {}
        perf = [{**({"id": f["id"]} if f.get("id") is not None else {}),
                 "status": {"code": f.get("state", {}).get("descriptor", {}).get("code")}}
                for f in order.get("fulfillments") or []]
        message = {"contract": {"id": order.get("id"), "commitments": [minimal_commitment()], "performance": perf}}
    elif action == "cancel":
        contract = {"id": msg.get("order_id"), "commitments": [minimal_commitment()]}
        d = {}
        if msg.get("cancellation_reason_id") is not None:
            d["code"] = msg["cancellation_reason_id"]
        if (msg.get("descriptor") or {}).get("short_desc"):
            d["shortDesc"] = msg["descriptor"]["short_desc"]
        if d:
            contract["descriptor"] = d
        message = {"contract": contract}
    elif action == "rating":
        message = {"ratingInputs": [
            {"target": {"id": r.get("id"), **({"descriptor": {"code": r["rating_category"]}}
                                              if r.get("rating_category") else {})},
             "range": {"ratingValue": int(r["value"]), "bestRating": 5, "worstRating": 1}}
            for r in msg.get("ratings") or []]}
    else:
        sup = msg.get("support") or {}
        message = {"support": _support_v2(sup)}
    return {"context": context_v2(ctx, network_id=network_id), "message": message}
