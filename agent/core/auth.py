"""Who may charge, and how much.

Four sources can let a car charge: a network contract (a Beckn order), an OCPI start command from
an eMSP, a local allow-list of tokens (RFID cards, app tokens the site owner registered) and the
site owner's free-vend mode. The session must not care which one it was, so every source yields
the same ``Authorization``: an id, the source, the token and the limits that bound the session.

Limits are all optional; ``None`` means "no limit of this kind":

* ``energy_limit_wh``: energy the car may take in this session.
* ``money_limit_paise``: money the session may cost (the cost function belongs to the tariff
  engine and is injected into the session, see ``agent.core.session``).
* ``time_limit_ms``: how long the session may run, counted from the moment power is first asked
  for.
* ``departure_ms``: the instant charging must end, on the same clock as the events' ``time_ms``
  (the runtime converts wall-clock departure times onto that clock).

Portable core: runs under MicroPython, so plain classes and ints only.
"""

from agent.core.errors import AgentError

SOURCES = ("contract", "ocpi", "allow_list", "free_vend")

_LIMIT_KEYS = ("energy_limit_wh", "money_limit_paise", "time_limit_ms", "departure_ms")


class AuthError(AgentError):
    code = "auth-error"


def _check_limit(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AuthError("authorization field %s must be an int or None, got %r" % (name, value),
                        code="auth-bad-limit", field=name)
    if value <= 0:
        raise AuthError("authorization field %s must be > 0, got %d" % (name, value),
                        code="auth-bad-limit", field=name)
    return value


def _check_text(name, value):
    if not isinstance(value, str) or not value:
        raise AuthError("authorization field %s must be a non-empty string, got %r" % (name, value),
                        code="auth-bad-field", field=name)
    return value


class Authorization:
    """One permission to charge, whatever granted it; immutable by convention."""

    __slots__ = ("auth_id", "source", "token", "energy_limit_wh", "money_limit_paise",
                 "time_limit_ms", "departure_ms")

    def __init__(self, *, auth_id, source, token=None, energy_limit_wh=None,
                 money_limit_paise=None, time_limit_ms=None, departure_ms=None):
        self.auth_id = _check_text("auth_id", auth_id)
        if source not in SOURCES:
            raise AuthError("authorization source %r unknown; allowed: %s" % (source, ", ".join(SOURCES)),
                            code="auth-bad-field", field="source", allowed=SOURCES)
        self.source = source
        self.token = None if token is None else _check_text("token", token)
        self.energy_limit_wh = _check_limit("energy_limit_wh", energy_limit_wh)
        self.money_limit_paise = _check_limit("money_limit_paise", money_limit_paise)
        self.time_limit_ms = _check_limit("time_limit_ms", time_limit_ms)
        # A departure instant may legitimately be 0 on a test clock, so only its type is checked.
        if departure_ms is not None and (isinstance(departure_ms, bool) or not isinstance(departure_ms, int)):
            raise AuthError("authorization field departure_ms must be an int or None, got %r" % (departure_ms,),
                            code="auth-bad-limit", field="departure_ms")
        self.departure_ms = departure_ms

    def limits(self):
        """The limits as a dict, for journal records and status messages."""
        return {
            "energy_limit_wh": self.energy_limit_wh,
            "money_limit_paise": self.money_limit_paise,
            "time_limit_ms": self.time_limit_ms,
            "departure_ms": self.departure_ms,
        }

    def __repr__(self):
        return "Authorization(%s, %s)" % (self.auth_id, self.source)


def _limits_from(mapping, where):
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise AuthError("%s limits must be a dict, got %r" % (where, mapping), code="auth-bad-field")
    for key in mapping:
        if key not in _LIMIT_KEYS:
            raise AuthError("%s: unknown limit %r; allowed: %s" % (where, key, ", ".join(_LIMIT_KEYS)),
                            code="auth-bad-field", field=key, allowed=_LIMIT_KEYS)
    return mapping


class Authorizer:
    """The one interface the runtime uses to turn any grant into an ``Authorization``.

    ``allow_list`` maps a local token to its limits (a dict with any of the limit keys, or None
    for no limits). ``free_vend`` is the site owner's switch; ``free_vend_limits`` bounds such
    sessions so a free socket cannot be drained forever. ``new_id`` makes authorization ids; it is
    injected so tests and journals replay deterministically.
    """

    def __init__(self, *, new_id, allow_list=None, free_vend=False, free_vend_limits=None):
        if not callable(new_id):
            raise AuthError("new_id must be callable", code="auth-bad-field", field="new_id")
        self._new_id = new_id
        self._allow = {}
        for token, limits in (allow_list or {}).items():
            _check_text("allow_list token", token)
            self._allow[token] = _limits_from(limits, "allow_list[%s]" % token)
            # Build once so a bad limit is reported when the list is loaded, not at the charger.
            Authorization(auth_id="check", source="allow_list", token=token, **self._allow[token])
        self._free_vend = bool(free_vend)
        self._free_vend_limits = _limits_from(free_vend_limits, "free_vend_limits")
        Authorization(auth_id="check", source="free_vend", **self._free_vend_limits)

    def from_contract(self, contract_id, **limits):
        """A network order (Beckn ``confirm``) already verified and paid for by the protocol layer."""
        return Authorization(auth_id=self._new_id(), source="contract",
                             token=_check_text("contract_id", contract_id),
                             **_limits_from(limits, "contract"))

    def from_ocpi(self, token_uid, **limits):
        """An OCPI START_SESSION command whose token the eMSP vouched for."""
        return Authorization(auth_id=self._new_id(), source="ocpi",
                             token=_check_text("token_uid", token_uid),
                             **_limits_from(limits, "ocpi"))

    def from_local_token(self, token):
        """A token presented at the charger; refused with a clear error when it is not listed."""
        _check_text("token", token)
        if token not in self._allow:
            raise AuthError("token %r is not on the local allow-list" % token,
                            code="auth-token-unknown", token=token)
        return Authorization(auth_id=self._new_id(), source="allow_list", token=token,
                             **self._allow[token])

    def knows_token(self, token):
        """Whether ``token`` is on the local allow-list."""
        return token in self._allow

    @property
    def free_vend(self):
        return self._free_vend

    def set_free_vend(self, enabled):
        self._free_vend = bool(enabled)

    def from_free_vend(self):
        """The grant a plugged-in car gets when the site owner lets anyone charge; None when off."""
        if not self._free_vend:
            return None
        return Authorization(auth_id=self._new_id(), source="free_vend", **self._free_vend_limits)
