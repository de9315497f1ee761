"""The owner's and the technician's pages: sessions and earnings, tariff, settings, faults.

A mixin of ``protocols.owner.app.OwnerApp`` (its state: the facade, the files, the words), kept
apart so that the access rules and the pages can be read each on their own. Whatever a page
changes goes through the facade (``set_tariff``, ``reset_fault``) or into the site's own files,
checked by the agent's own readers first.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time

from aiohttp import web

from agent import owner_access
from agent.config import AUTH_MODES
from agent.core.auth import SOURCES
from agent.core.tariff import DAYS
from agent.service import ServiceError
from drivers.configfile import ConfigError
from protocols.owner import earnings, partners, settings_form, tariff_form, views

log = logging.getLogger("urja.owner")

MAX_LISTED = 200  # rows on the page (the CSV has all)
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class PageRoutes:
    """Route handlers for the pages behind the login."""

    def add_page_routes(self, r) -> None:
        r.add_get("/sessions", self.sessions_page)
        r.add_get("/sessions.csv", self.sessions_csv)
        r.add_get("/receipts/{sid}.json", self.receipt)
        r.add_get("/tariff", self.tariff_page)
        r.add_post("/tariff", self.tariff_post)
        r.add_get("/settings", self.settings_page)
        r.add_post("/settings", self.settings_post)
        r.add_post("/technician", self.technician_password)
        r.add_post("/partners/register", self.partner_register)
        r.add_post("/partners/unregister", self.partner_unregister)
        r.add_get("/faults", self.faults_page)
        r.add_post("/faults/reset", self.fault_reset)
        r.add_post("/faults/selftest", self.selftest)

    # ------------------------------------------------------------------ sessions and earnings
    def _rows(self, filters):
        return earnings.rows(self.service.sessions(), timezone=self.service.site.place.timezone, filters=filters)

    async def sessions_page(self, request: web.Request) -> web.Response:
        s = self.session_of(request)
        w = self.words(request)
        error = None
        try:
            filters = earnings.Filters.from_query(request.query)
        except earnings.FilterError as exc:
            filters, error = earnings.Filters(), str(exc)
        items = self._rows(filters)
        shown = items[:MAX_LISTED]
        verified = {r.session_id: self._verified(w, r.session_id) for r in shown if r.status == "COMPLETED"}
        html = views.sessions(w, items=shown, filters=filters, days=earnings.totals(items, "day"),
                              months=earnings.totals(items, "month"), sources=SOURCES, csrf=s.csrf,
                              site=self.site_name(), error=error, verified=verified)
        return self.render(html, status=400 if error else 200)

    def _verified(self, w, session_id: str) -> str:
        """Whether the receipt checks as an app would check it (agency, certificate, signature, sums)."""
        from protocols.signing.errors import SignatureError
        from protocols.signing.receipt import verify_receipt

        receipt = self.service.receipt(session_id)
        key = getattr(self.identity, "agency_public_key", None)
        if receipt is None:
            return w("no_receipt")
        if key is None:
            return ""
        try:
            verify_receipt(receipt, agency_public_key=key)
        except SignatureError:
            return w("receipt_bad")
        return w("receipt_ok")

    async def sessions_csv(self, request: web.Request) -> web.Response:
        try:
            filters = earnings.Filters.from_query(request.query)
        except earnings.FilterError as exc:
            return web.Response(status=400, text=str(exc))
        stamp = time.strftime("%Y%m%d", time.gmtime(self.service.now_s()))
        return web.Response(body=earnings.to_csv(self._rows(filters)).encode("utf-8"),
                            content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="sessions-{stamp}.csv"'})

    async def receipt(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        receipt = self.service.receipt(sid) if re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", sid) else None
        if receipt is None:
            raise web.HTTPNotFound(text="no receipt for that session")
        return web.Response(body=json.dumps(receipt, indent=2, sort_keys=True).encode(), content_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="receipt-{sid}.json"'})

    # ------------------------------------------------------------------ tariff
    def _preview(self, w, tariff: dict | None, query) -> dict:
        kwh_text = str(query.get("preview_kwh", "5")).strip() or "5"
        at = str(query.get("preview_time", "19:00")).strip() or "19:00"
        day = str(query.get("preview_day", "0"))
        out = {"kwh": kwh_text, "time": at, "weekday": day if day in [str(i) for i in range(7)] else "0", "text": ""}
        matched = _TIME.match(at)
        try:
            energy_wh = round(float(kwh_text) * 1000)
        except ValueError:
            energy_wh = -1
        if tariff is None:
            return out  # the form's tariff is not valid: nothing to price yet
        if not matched or not 0 < energy_wh <= 500_000:
            out["text"] = w("preview_bad")
            return out
        power_w = max((c.max_power_w or 0) for c in self.service.connectors()) or 7400
        _, text = tariff_form.preview_paise(tariff, energy_wh=energy_wh, hour=int(matched.group(1)),
                                            minute=int(matched.group(2)), weekday=int(out["weekday"]), power_w=power_w,
                                            timezone=self.service.site.place.timezone, now_s=self.service.now_s())
        out["text"] = w("preview_text", kwh=kwh_text, time=at, day=w("day_" + DAYS[int(out["weekday"])]), rupees=text)
        return out

    def _tariff_html(self, request, *, form, existing, tariff, query, message=None, error=None, status=200):
        s = self.session_of(request)
        w = self.words(request)
        html = views.tariff(w, form=form, existing=existing, preview=self._preview(w, tariff, query), csrf=s.csrf,
                            site=self.site_name(), message=message, error=error)
        return self.render(html, status=status)

    def _tariff_document(self):
        if self.tariff_file is None:
            raise tariff_form.TariffFileError("[tariff] file is not set in the configuration")
        return tariff_form.read_document(self.tariff_file)

    async def tariff_page(self, request: web.Request) -> web.Response:
        try:
            doc = self._tariff_document()
        except tariff_form.TariffFileError as exc:
            return self._tariff_html(request, form=tariff_form.TariffForm(header={}, rows=[]), existing=0,
                                     tariff=self.service.tariff(), query=request.query, error=str(exc), status=409)
        form = tariff_form.form_from_document(doc)
        return self._tariff_html(request, form=form, existing=len(form.rows), tariff=self.service.tariff(),
                                 query=request.query)

    async def tariff_post(self, request: web.Request) -> web.Response:
        w = self.words(request)
        post = await request.post()
        try:
            doc = self._tariff_document()
        except tariff_form.TariffFileError as exc:
            return web.Response(status=409, text=str(exc))
        existing = len(doc.get("tariff", {}).get("element", []))
        if str(post.get("existing")) != str(existing):
            form = tariff_form.form_from_document(doc)
            return self._tariff_html(request, form=form, existing=existing, tariff=self.service.tariff(), query=post,
                                     error=w("tariff_changed_meanwhile"), status=409)
        form = tariff_form.form_from_post(post, existing)
        placed = tariff_form.apply_form(doc, form)
        try:
            tariff = tariff_form.check(doc, self.tariff_file)
        except ConfigError as exc:
            # the checker's own words, without the file's path (the page edits one file)
            form.errors[tariff_form.error_field(exc, placed)] = str(exc).removeprefix(f"{exc.file}: ")
            return self._tariff_html(request, form=form, existing=existing, tariff=None, query=post,
                                     error=w("tariff_not_saved"), status=400)
        if post.get("action") != "save":
            return self._tariff_html(request, form=form, existing=existing, tariff=tariff, query=post)
        saved = await asyncio.to_thread(tariff_form.save, self.tariff_file, doc)
        self.service.set_tariff(saved)
        log.info("owner's page: tariff %s saved to %s", saved.get("id"), self.tariff_file)
        fresh = tariff_form.form_from_document(self._tariff_document())
        return self._tariff_html(request, form=fresh, existing=len(fresh.rows), tariff=saved, query=post,
                                 message=w("tariff_saved"))

    # ------------------------------------------------------------------ settings
    def _certificate(self) -> dict:
        cert = getattr(self.identity, "certificate", None) or {}
        return {"subscriber_id": cert.get("subscriber_id", ""), "status": cert.get("status", ""),
                "valid_until": cert.get("valid_until", "")}

    def _settings_html(self, request, form, message=None, status=200, error=None):
        s = self.session_of(request)
        html = views.settings(self.words(request), form=form, csrf=s.csrf, site=self.site_name(), message=message,
                              certificate=self._certificate(), modes=AUTH_MODES,
                              partners=partners.listed(self.service.site), error=error)
        return self.render(html, status=status)

    async def settings_page(self, request: web.Request) -> web.Response:
        return self._settings_html(request, settings_form.read(self.config_path))

    async def settings_post(self, request: web.Request) -> web.Response:
        w = self.words(request)
        form = await asyncio.to_thread(settings_form.save, self.config_path, await request.post())
        if form.errors:
            return self._settings_html(request, form, status=400)
        log.info("owner's page: settings saved to %s", self.config_path)
        return self._settings_html(request, settings_form.read(self.config_path), message=w("settings_saved"))

    async def technician_password(self, request: web.Request) -> web.Response:
        w = self.words(request)
        password = str((await request.post()).get("password", ""))
        try:
            await asyncio.to_thread(owner_access.set_password, self.access_file, role="technician", password=password)
        except owner_access.AccessError as exc:
            return self._settings_html(request, settings_form.read(self.config_path), message=str(exc), status=400)
        self.sessions.end_role("technician")
        return self._settings_html(request, settings_form.read(self.config_path), message=w("technician_saved"))

    async def partner_register(self, request: web.Request) -> web.Response:
        w = self.words(request)
        post = await request.post()
        form = settings_form.read(self.config_path)
        try:
            label = await partners.register(self.service.site, versions_url=str(post.get("versions_url", "")).strip(),
                                            token_a=str(post.get("token_a", "")))
        except partners.PartnerError as exc:
            return self._settings_html(request, form, error=f"{w('partner_not_registered')}: {exc}", status=400)
        log.info("owner's page: OCPI %s registered", label)
        return self._settings_html(request, form, message=w("partner_registered", label=label))

    async def partner_unregister(self, request: web.Request) -> web.Response:
        w = self.words(request)
        post = await request.post()
        form = settings_form.read(self.config_path)
        try:
            label = await partners.unregister(self.service.site, int(str(post.get("party", "0"))))
        except (ValueError, partners.PartnerError) as exc:
            return self._settings_html(request, form, error=str(exc), status=400)
        log.info("owner's page: OCPI %s unregistered", label)
        return self._settings_html(request, form, message=w("partner_removed", label=label))

    # ------------------------------------------------------------------ faults and health
    def _faults_html(self, request, *, message=None, error=None, status=200, selftest=None):
        s = self.session_of(request)
        html = views.faults(self.words(request), fault=self.service.latched_fault(), health=self.service.health(),
                            role=s.role, csrf=s.csrf, site=self.site_name(), message=message, error=error,
                            selftest=selftest)
        return self.render(html, status=status)

    async def faults_page(self, request: web.Request) -> web.Response:
        return self._faults_html(request)

    async def fault_reset(self, request: web.Request) -> web.Response:
        w = self.words(request)
        try:
            await self.service.reset_fault(by="technician on the owner's page")
        except ServiceError as exc:
            return self._faults_html(request, error=f"{w('reset_refused')}: {exc}", status=409)
        return self._faults_html(request, message=w("reset_done"))

    async def selftest(self, request: web.Request) -> web.Response:
        """The technician runs the self-test; the facade decides whether it may run and runs it."""
        w = self.words(request)
        try:
            results = await self.service.run_selftest(by="technician on the owner's page")
        except ServiceError as exc:
            return self._faults_html(request, error=f"{w('selftest_refused')}: {exc}", status=409)
        good = all(r.status != "fail" for r in results)
        log.info("owner's page: self-test %s", "passed" if good else "failed")
        return self._faults_html(request, message=w("selftest_passed") if good else None,
                                 error=None if good else w("selftest_failed"), selftest=results)
