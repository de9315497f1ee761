"""The owner's page as an aiohttp application: who may see what, forms that cannot be forged, live status.

Every route but the login form, the language switch and two static files needs a session
(``_guard``): a browser without one is sent to the login page, a script gets 401 and nothing
else. Every POST but the login carries the session's CSRF token; the cookie is HttpOnly and
SameSite=Strict, and a request whose ``Origin`` is another site is refused before the token is
even looked at. A login checks a scrypt hash off the event loop, so a guesser cannot stall the
charger's own work, and the throttle (``guard.LoginThrottle``) slows guessing.

The page never decides anything about charging: it reads the facade's views and calls the
facade's actions, as every binding does.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from agent import owner_access
from protocols.owner import views
from protocols.owner.guard import LoginThrottle, PageSession, Sessions, csrf_ok
from protocols.owner.i18n import LANGUAGES, Words, load_strings
from protocols.owner.routes import PageRoutes

log = logging.getLogger("urja.owner")

COOKIE = "urja_owner"
LANG_COOKIE = "urja_lang"
STATIC = {"app.css": "text/css", "app.js": "text/javascript"}
STATIC_DIR = Path(__file__).with_name("static")
PUBLIC = ("/login", "/lang", "/static/")
# route prefix -> roles allowed (first match wins; everything else: any logged-in role)
ROLE_RULES = (("/faults/reset", ("technician",)), ("/faults/selftest", ("technician",)), ("/sessions", ("owner",)), ("/receipts/", ("owner",)),
              ("/tariff", ("owner",)), ("/settings", ("owner",)), ("/technician", ("owner",)),
              ("/partners", ("owner",)))
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# where a request carries its page session (a typed key where this aiohttp has them)
SESSION_KEY = web.RequestKey("page_session", PageSession) if hasattr(web, "RequestKey") else "page_session"
SSE_HEARTBEAT_S = 15.0
SSE_MIN_GAP_S = 0.25  # a session changes every meter poll: a phone needs no more than 4 a second


class OwnerApp(PageRoutes):
    """The page's state: the facade, the files it edits, sessions, throttle and live listeners."""

    def __init__(self, *, service, config_path: Path, access_file: Path, tariff_file: Path | None,
                 identity=None, language: str = "en", secure_cookie: bool = False,
                 clock: Callable[[], float] = time.monotonic, session_ttl_s: float = 12 * 3600,
                 throttle: LoginThrottle | None = None, token: Callable[[], str] | None = None):
        self.service = service
        self.config_path = Path(config_path)
        self.access_file = Path(access_file)
        self.tariff_file = Path(tariff_file) if tariff_file else None
        self.identity = identity
        self.language = language if language in LANGUAGES else "en"
        self.secure_cookie = secure_cookie
        self.strings = load_strings()
        extra = {"token": token} if token is not None else {}
        self.sessions = Sessions(now_s=clock, ttl_s=session_ttl_s, **extra)
        self.throttle = throttle or LoginThrottle(now_s=clock)
        self._streams: set[asyncio.Event] = set()
        self._closing = False
        self._listening = False

    # ------------------------------------------------------------------ life cycle
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._guard], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/login", self.login_form)
        r.add_post("/login", self.login)
        r.add_get("/lang", self.switch_language)
        r.add_get("/static/{name}", self.static)
        r.add_post("/logout", self.logout)
        r.add_get("/password", self.password_form)
        r.add_post("/password", self.password)
        r.add_get("/", self.status_page)
        r.add_get("/api/status", self.api_status)
        r.add_get("/api/events", self.api_events)
        self.add_page_routes(r)
        return app

    def listen(self) -> None:
        if not self._listening:
            self.service.add_listener(self._on_event)
            self._listening = True

    def close(self) -> None:
        """Stop listening and let every live stream end."""
        if self._listening:
            self.service.remove_listener(self._on_event)
            self._listening = False
        self._closing = True
        for wake in list(self._streams):
            wake.set()

    def _on_event(self, kind: str, obj: Any) -> None:
        if kind in ("connector", "session", "tariff", "receipt"):
            for wake in list(self._streams):
                wake.set()

    # ------------------------------------------------------------------ helpers
    def words(self, request: web.Request) -> Words:
        lang = request.cookies.get(LANG_COOKIE, self.language)
        return Words(self.strings, lang)

    def site_name(self) -> str:
        return str(getattr(self.service.site, "name", "") or "Urja")

    def render(self, html: str, *, status: int = 200) -> web.Response:
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    @staticmethod
    def session_of(request: web.Request) -> PageSession:
        return request[SESSION_KEY]

    # ------------------------------------------------------------------ middlewares
    @web.middleware
    async def _headers(self, request: web.Request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")
        if not request.path.startswith("/static/"):
            h.setdefault("Cache-Control", "no-store")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        path = request.path
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin is not None and origin != "null" \
                and origin.split("://", 1)[-1] != request.host:
            return web.Response(status=403, text="cross-site request refused")
        if path == "/login" or path == "/lang" or path.startswith("/static/"):
            return await handler(request)
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            if path.startswith("/api/"):
                return web.Response(status=401, text="log in first")
            raise web.HTTPSeeOther("/login")
        request[SESSION_KEY] = session
        if request.method not in ("GET", "HEAD"):
            form = await request.post()
            if not csrf_ok(session, form.get("csrf")):
                return web.Response(status=403, text="form expired or forged: reload the page and try again")
        if session.must_set_password and path not in ("/password", "/logout"):
            if path.startswith("/api/"):
                return web.Response(status=403, text="set a password first")
            raise web.HTTPSeeOther("/password")
        for prefix, roles in ROLE_RULES:
            if path.startswith(prefix):
                if session.role not in roles:
                    w = self.words(request)
                    return self.render(views.forbidden(w, role=session.role, csrf=session.csrf,
                                                       site=self.site_name()), status=403)
                break
        return await handler(request)

    # ------------------------------------------------------------------ public routes
    async def login_form(self, request: web.Request) -> web.Response:
        return self.render(views.login(self.words(request), error=None, site=self.site_name()))

    async def login(self, request: web.Request) -> web.Response:
        w = self.words(request)
        client = request.remote or "?"
        wait_s = self.throttle.wait_s(client)
        if wait_s > 0:
            return self.render(views.login(w, error=w("too_many", s=math.ceil(wait_s)), site=self.site_name()),
                               status=429)
        form = await request.post()
        role = str(form.get("role", "owner"))
        secret = str(form.get("secret", ""))[:256]
        good = role in owner_access.ROLES and await asyncio.to_thread(
            owner_access.verify, self.access_file, role=role, password_or_code=secret)
        if not good:
            self.throttle.failed(client)
            log.warning("owner's page: failed login as %s from %s", role, client)
            return self.render(views.login(w, error=w("login_failed"), site=self.site_name()), status=401)
        self.throttle.succeeded(client)
        first = await asyncio.to_thread(owner_access.is_setup_code, self.access_file, role=role, secret=secret)
        session = self.sessions.create(role, must_set_password=first)
        log.info("owner's page: %s logged in from %s", role, client)
        response = web.HTTPSeeOther("/password" if first else "/")
        response.set_cookie(COOKIE, session.sid, httponly=True, samesite="Strict", secure=self.secure_cookie,
                            path="/")
        raise response

    async def switch_language(self, request: web.Request) -> web.Response:
        lang = request.query.get("to", "en")
        target = request.query.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        response = web.HTTPSeeOther(target)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, samesite="Strict", path="/", max_age=365 * 86400)
        raise response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC_DIR / name).read_bytes(), content_type=STATIC[name],
                            headers={"Cache-Control": "max-age=3600"})

    # ------------------------------------------------------------------ session routes
    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.end(self.session_of(request).sid)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def password_form(self, request: web.Request) -> web.Response:
        s = self.session_of(request)
        return self.render(views.set_password(self.words(request), csrf=s.csrf, error=None, site=self.site_name(),
                                              role=s.role))

    async def password(self, request: web.Request) -> web.Response:
        s = self.session_of(request)
        w = self.words(request)
        form = await request.post()
        password, again = str(form.get("password", "")), str(form.get("again", ""))
        error = None
        if password != again:
            error = w("passwords_differ")
        else:
            try:
                await asyncio.to_thread(owner_access.set_password, self.access_file, role=s.role, password=password)
            except owner_access.AccessError as exc:
                error = str(exc)
        if error:
            return self.render(views.set_password(w, csrf=s.csrf, error=error, site=self.site_name(), role=s.role),
                               status=400)
        s.must_set_password = False
        self.sessions.end_role(s.role, keep=s.sid)
        raise web.HTTPSeeOther("/")

    # ------------------------------------------------------------------ live status
    def status_snapshot(self, w: Words) -> list[dict]:
        from protocols.owner.earnings import kwh, rupees

        out = []
        shares = (self.service.load_status() or {}).get("shares_a")
        for c in self.service.connectors():
            session = self.service.session(c.session_id) if c.session_id else None
            live = session is not None and session.status == "ACTIVE"
            limits = (session.limits or {}) if live else {}
            if limits.get("energy_limit_wh"):
                limit = f"{kwh(int(limits['energy_limit_wh']))} kWh"
            elif limits.get("money_limit_paise"):
                limit = f"Rs {rupees(int(limits['money_limit_paise']))}"
            else:
                limit = w("no_limit") if live else "-"
            out.append({
                "id": str(c.connector_id), "status": c.status, "state": w("st_" + str(c.status)),
                "power": f"{(session.power_w or 0) / 1000:.2f} kW" if live else "0.00 kW",
                "energy": f"{kwh(int(session.energy_wh or 0))} kWh" if live else "-",
                "cost": f"Rs {rupees(session.cost.total_paise)}" if live and session.cost is not None else "-",
                "limit": limit, "max_current": f"{c.max_current_a:g} A" if c.max_current_a else "-",
                "session_id": c.session_id if live else None})
            if shares is not None:  # the site's load manager gives each connector its share
                share = shares.get(str(c.connector_id))
                out[-1]["share"] = "-" if share is None else f"{share:.1f} A"
        return out

    def load_snapshot(self) -> dict | None:
        """The site's limit and how much of it the house and the chargers take ([load]), or None."""
        status = self.service.load_status()
        if not status:
            return None

        def amps(values) -> str:
            return "/".join(f"{a:.1f}" for a in values or ()) + " A" if values else "-"

        limit = amps(status.get("site_limit_a"))
        if status.get("limit_kw"):
            limit = f"{status['limit_kw']:g} kW ({limit})"
        return {"limit": limit, "house": amps(status.get("house_a")), "budget": amps(status.get("budget_a")),
                "mode": str(status.get("mode") or "-")}

    async def status_page(self, request: web.Request) -> web.Response:
        s = self.session_of(request)
        w = self.words(request)
        return self.render(views.status(w, connectors=self.status_snapshot(w), role=s.role, csrf=s.csrf,
                                        site=self.site_name(), load=self.load_snapshot()))

    async def api_status(self, request: web.Request) -> web.Response:
        return web.json_response({"connectors": self.status_snapshot(self.words(request)),
                                  "load": self.load_snapshot()})

    async def api_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the status now, then again at each change (at most 4 a second)."""
        s = self.session_of(request)
        w = self.words(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        wake = asyncio.Event()
        self._streams.add(wake)
        try:
            while not self._closing and self.sessions.get(s.sid, touch=False) is s:
                wake.clear()
                data = json.dumps({"connectors": self.status_snapshot(w), "load": self.load_snapshot()},
                                  separators=(",", ":"))
                await response.write(f"event: status\ndata: {data}\n\n".encode())
                try:
                    async with asyncio.timeout(SSE_HEARTBEAT_S):
                        await wake.wait()
                except TimeoutError:
                    await response.write(b": still here\n\n")
                await asyncio.sleep(SSE_MIN_GAP_S)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._streams.discard(wake)
        return response
