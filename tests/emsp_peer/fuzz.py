"""Hypothesis strategies built from the OCPI OpenAPI schemas: valid bodies, and bodies broken on purpose.

Why not a general OpenAPI fuzzer: the OCPI files are split over many documents joined by relative
``$ref``s, and what matters here is narrower: for each request body the charger accepts, generate
objects that conform (the charger must answer without a 5xx and with a conformant reply) and
objects that break exactly one rule (the charger must answer 2001 or another 2xxx and change
nothing). The generator follows the same registry the validator uses, so what counts as valid
is decided by the official files alone.
"""
from __future__ import annotations

from hypothesis import strategies as st

from tests.emsp_peer.schemas import OcpiSpec

_MAX_DEPTH = 6
_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)


def _datetimes():
    return st.builds(lambda y, mo, d, h, mi, s, z: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{z}",
                     st.integers(2020, 2030), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
                     st.integers(0, 59), st.integers(0, 59), st.sampled_from(["Z", ""]))


def _urls():
    return st.builds(lambda host, path: f"http://{host}.invalid/{path}",
                     st.text(alphabet="abcdefghij", min_size=1, max_size=8),
                     st.text(alphabet="abcdefghij/", max_size=10))


class SchemaStrategies:
    """Strategies for the schemas of one ``OcpiSpec``; ``overrides`` pins chosen properties by name."""

    def __init__(self, spec: OcpiSpec):
        self.spec = spec

    def _resolve(self, schema: dict, resolver):
        while "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            schema, resolver = resolved.contents, resolved.resolver
        return schema, resolver

    def valid(self, ref: str, *, overrides: dict | None = None):
        resolver = self.spec.registry.resolver()
        schema, resolver = self._resolve({"$ref": ref}, resolver)
        return self._build(schema, resolver, 0, overrides or {})

    def _build(self, schema, resolver, depth, overrides):
        schema, resolver = self._resolve(schema, resolver)
        if "allOf" in schema:
            parts = [self._build(s, resolver, depth, overrides) for s in schema["allOf"]]
            return st.tuples(*parts).map(_merge)
        if "enum" in schema:
            return st.sampled_from(list(schema["enum"]))
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self._object(schema, resolver, depth, overrides)
        if kind == "array":
            if depth >= _MAX_DEPTH:
                return st.just([])
            items = self._build(schema.get("items", {}), resolver, depth + 1, overrides)
            return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 2), 2))
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "date-time":
                return _datetimes()
            if fmt == "uri":
                return _urls()
            if "pattern" in schema:
                low, high = schema.get("minLength", 0), schema.get("maxLength", 1 << 20)
                return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: low <= len(v) <= high)
            low, high = schema.get("minLength", 1), schema.get("maxLength", 12)
            return st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                           min_size=low, max_size=max(low, min(high, 12)))
        if kind == "integer":
            return st.integers(schema.get("minimum", 0), schema.get("maximum", 10_000))
        if kind == "number":
            return st.floats(min_value=schema.get("minimum", 0), max_value=10_000, allow_nan=False,
                             allow_infinity=False).map(lambda x: round(x, 4))
        if kind == "boolean":
            return st.booleans()
        return st.none() | st.integers(0, 9) | _TEXT

    def _object(self, schema, resolver, depth, overrides):
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {}
        optional = {}
        for name, sub in props.items():
            if name in overrides:
                strategy = st.just(overrides[name])
            elif depth >= _MAX_DEPTH and name not in required:
                continue
            else:
                strategy = self._build(sub, resolver, depth + 1, {})
            (fixed if name in required or name in overrides else optional)[name] = strategy
        return st.fixed_dictionaries(fixed, optional=optional)

    def broken(self, ref: str, *, overrides: dict | None = None):
        """A valid object with exactly one rule broken; each example carries what was broken."""
        resolver = self.spec.registry.resolver()
        schema, resolver = self._resolve({"$ref": ref}, resolver)
        required = list(schema.get("required", []))
        props = schema.get("properties", {})
        base = self.valid(ref, overrides=overrides)

        def drop(obj, name):
            out = dict(obj)
            out.pop(name, None)
            return out, f"required {name} missing"

        def retype(obj, name, value):
            out = dict(obj)
            out[name] = value
            return out, f"{name} of the wrong type or out of range"

        choices = []
        if required:
            choices.append(st.tuples(base, st.sampled_from(required)).map(lambda t: drop(*t)))
        wrong_values = st.sampled_from([12345, True, [], {"x": 1}, "x" * 400, None])
        fields = [n for n in props if n not in (overrides or {})] or list(props)
        if fields:
            # An explicit null in an optional field reads as the field left out (the charger
            # accepts what many parties send); in a required field it is broken like any other.
            choices.append(st.tuples(base, st.sampled_from(fields), wrong_values)
                           .filter(lambda t: t[2] is not None or t[1] in required)
                           .filter(lambda t: self.spec.errors(ref, retype(*t)[0]))
                           .map(lambda t: retype(*t)))
        return st.one_of(choices)


def _merge(parts):
    out = {}
    for part in parts:
        if isinstance(part, dict):
            out.update(part)
    return out
