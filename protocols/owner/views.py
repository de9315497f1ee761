"""The page's HTML: plain server-rendered forms, one small script for live status, no CDN.

Every value from the charger or a form is escaped here (``_e``); nothing is put into a page
unescaped except the SVG the charger drew itself. Pages carry no inline script or style, so
the Content-Security-Policy can forbid both.
"""
from __future__ import annotations

from html import escape
from time import gmtime, strftime

from agent.core.tariff import DAYS
from protocols.owner import earnings
from protocols.owner.tariff_form import PRICE_KEYS, TariffForm

NAV = (("/", "nav_status", ("owner", "technician")), ("/sessions", "nav_sessions", ("owner",)),
       ("/tariff", "nav_tariff", ("owner",)), ("/settings", "nav_settings", ("owner",)),
       ("/faults", "nav_faults", ("owner", "technician")))


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(w, *, title: str, body: str, role: str | None = None, csrf: str = "", site: str = "",
         path: str = "/") -> str:
    nav = ""
    if role is not None:
        links = "".join(f'<a href="{href}"{" class=here" if href == path else ""}>{_e(w(key))}</a>'
                        for href, key, roles in NAV if role in roles)
        nav = (f'<nav>{links}</nav><form method="post" action="/logout" class="logout">'
               f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
               f'<button type="submit">{_e(w("logout"))}</button></form>')
    other = "hi" if w.lang == "en" else "en"
    return (f'<!doctype html><html lang="{w.lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)} - {_e(site or "Urja")}</title><link rel="stylesheet" href="/static/app.css">'
            '<script src="/static/app.js" defer></script></head><body>'
            f'<header><span class="site">{_e(site or "Urja")}</span>'
            f'<a class="lang" href="/lang?to={other}&amp;next={_e(path)}">{_e(w("switch_language"))}</a></header>'
            f'{nav}<main><h1>{_e(title)}</h1>{body}</main></body></html>')


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{_e(csrf)}">'


def _note(text: str | None, kind: str = "ok") -> str:
    return f'<p class="note {kind}" role="status">{_e(text)}</p>' if text else ""


def login(w, *, error: str | None, site: str) -> str:
    body = (f'{_note(error, "bad")}<form method="post" action="/login" class="card">'
            f'<label>{_e(w("role"))}<select name="role"><option value="owner">{_e(w("role_owner"))}</option>'
            f'<option value="technician">{_e(w("role_technician"))}</option></select></label>'
            f'<label>{_e(w("password_or_code"))}<input type="password" name="secret" autocomplete="current-password" '
            'required></label>'
            f'<button type="submit">{_e(w("login"))}</button></form><p class="hint">{_e(w("login_hint"))}</p>')
    return page(w, title=w("login_title"), body=body, site=site, path="/login")


def set_password(w, *, csrf: str, error: str | None, site: str, role: str) -> str:
    body = (f'{_note(error, "bad")}<p>{_e(w("set_password_why"))}</p>'
            f'<form method="post" action="/password" class="card">{_csrf(csrf)}'
            f'<label>{_e(w("new_password"))}<input type="password" name="password" autocomplete="new-password" '
            'minlength="8" required></label>'
            f'<label>{_e(w("repeat_password"))}<input type="password" name="again" autocomplete="new-password" '
            'minlength="8" required></label>'
            f'<button type="submit">{_e(w("save"))}</button></form>')
    return page(w, title=w("set_password_title"), body=body, role=role, csrf=csrf, site=site, path="/password")


def status(w, *, connectors: list[dict], role: str, csrf: str, site: str, load: dict | None = None) -> str:
    cards = []
    if load is not None:  # the site's sanctioned load, shared with the house ([load])
        rows = "".join(f'<tr><th>{_e(w(label))}</th><td data-live="load.{key}">{_e(load[key])}</td></tr>'
                       for key, label in (("limit", "site_limit"), ("house", "house"), ("budget", "budget"),
                                          ("mode", "load_mode")))
        cards.append(f'<section class="card load" data-field="load"><h2>{_e(w("load_title"))}</h2>'
                     f'<table>{rows}</table></section>')
    for c in connectors:
        cid = _e(c["id"])
        keys = (("state", "state"), ("power", "power"), ("energy", "energy"), ("cost", "cost"), ("limit", "limit"),
                ("max_current", "max_current")) + ((("share", "share"),) if "share" in c else ())
        rows = "".join(f'<tr><th>{_e(w(label))}</th><td data-live="{cid}.{key}">{_e(c[key])}</td></tr>'
                       for key, label in keys)
        cards.append(f'<section class="card connector" data-connector="{cid}"><h2>{_e(w("connector"))} {cid}</h2>'
                     f'<table>{rows}</table></section>')
    body = "".join(cards) + f'<p class="hint" data-live="updated">{_e(w("live_hint"))}</p>'
    return page(w, title=w("status_title"), body=body, role=role, csrf=csrf, site=site, path="/")


def sessions(w, *, items, filters, days, months, sources, csrf: str, site: str, error: str | None,
             verified: dict) -> str:
    opts = "".join(f'<option value="{_e(s)}"{" selected" if s == filters.source else ""}>{_e(w("src_" + s))}</option>'
                   for s in sources)
    form = (f'<form method="get" action="/sessions" class="card filters">'
            f'<label>{_e(w("day"))}<input type="date" name="day" value="{_e(filters.day)}"></label>'
            f'<label>{_e(w("month"))}<input type="month" name="month" value="{_e(filters.month)}"></label>'
            f'<label>{_e(w("source"))}<select name="source"><option value="">{_e(w("all"))}</option>{opts}</select>'
            f'</label><button type="submit">{_e(w("filter"))}</button></form>')
    q = filters.query()
    csv_link = f'<p><a class="button" href="/sessions.csv{"?" + _e(q) if q else ""}">{_e(w("export_csv"))}</a></p>'
    total_wh = sum(r.energy_wh for r in items)
    total_paise = sum(r.paise for r in items)
    summary = (f'<p class="totals">{_e(w("sessions_count", n=len(items)))} &middot; {earnings.kwh(total_wh)} kWh '
               f'&middot; Rs {earnings.rupees(total_paise)}</p>')
    plots = (earnings.bar_svg([(d, wh) for d, _, wh, _ in days], title=w("plot_energy"), unit="kWh", scale=1000)
             + earnings.bar_svg([(d, p) for d, _, _, p in days], title=w("plot_money"), unit="Rs", scale=100))

    def table(title, groups):
        body = "".join(f'<tr><td class="num">{_e(k)}</td><td class="num">{n}</td><td class="num">{earnings.kwh(wh)}</td>'
                       f'<td class="num">{earnings.rupees(p)}</td></tr>'
                       for k, n, wh, p in groups)
        return (f'<h2>{_e(title)}</h2><table class="list"><tr><th></th><th>#</th><th>kWh</th><th>Rs</th></tr>'
                f'{body}</table>')

    lines = "".join(
        f'<tr><td>{_e(r.start_local)}</td><td>{_e(w("src_" + r.source) if r.source else "")}</td>'
        f'<td class="num">{earnings.kwh(r.energy_wh)}</td><td class="num">{earnings.rupees(r.paise)}</td><td>'
        + (f'<a href="/receipts/{_e(r.session_id)}.json" download>{_e(w("receipt"))}</a> '
           f'<span class="badge">{_e(verified.get(r.session_id, ""))}</span>' if r.status == "COMPLETED" else _e(w("running")))
        + '</td></tr>' for r in items)
    listing = (f'<h2>{_e(w("nav_sessions"))}</h2><table class="list"><tr><th>{_e(w("start"))}</th><th>{_e(w("source"))}'
               f'</th><th>kWh</th><th>Rs</th><th></th></tr>{lines}</table>')
    body = (_note(error, "bad") + form + summary + csv_link + f'<div class="plots">{plots}</div>'
            + table(w("per_day"), days) + table(w("per_month"), months) + listing
            + f'<p class="hint">{_e(w("verify_hint"))}</p>')
    return page(w, title=w("sessions_title"), body=body, role="owner", csrf=csrf, site=site, path="/sessions")


def _input(w, form: TariffForm, name: str, value: str, label: str, kind: str = "text", extra: str = "") -> str:
    error = form.field_error(name)
    return (f'<label>{_e(w(label))}<input type="{kind}" name="{_e(name)}" value="{_e(value)}"{extra}'
            f'{" aria-invalid=true" if error else ""}></label>'
            + (f'<span class="error" data-field="{_e(name)}">{_e(error)}</span>' if error else ""))


def _element(w, form: TariffForm, n: int, row) -> str:
    values = row.values if row is not None else {}
    days = row.days if row is not None else []
    prefix = f"e{n}"
    parts = [_input(w, form, f"{prefix}.{key}", values.get(key, ""), key, "text", ' inputmode="decimal"')
             for key in PRICE_KEYS]
    parts += [_input(w, form, f"{prefix}.{key}", values.get(key, ""), key, "time") for key in ("start_time", "end_time")]
    boxes = "".join(f'<label class="day"><input type="checkbox" name="{prefix}.days" value="{d}"'
                    f'{" checked" if d in days else ""}>{_e(w("day_" + d))}</label>' for d in DAYS)
    parts.append(f'<fieldset class="days"><legend>{_e(w("days"))}</legend>{boxes}</fieldset>')
    if form.field_error(prefix):
        parts.append(f'<span class="error" data-field="{prefix}">{_e(form.field_error(prefix))}</span>')
    if row is not None and row.others:
        parts.append(f'<p class="hint">{_e(w("kept_conditions"))}: {_e(", ".join(row.others))}</p>')
    if row is not None:
        parts.append(f'<label class="remove"><input type="checkbox" name="{prefix}.remove">{_e(w("remove_line"))}</label>')
    title = w("price_line", n=n + 1) if row is not None else w("new_line")
    return f'<fieldset class="card element"><legend>{_e(title)}</legend>{"".join(parts)}</fieldset>'


def tariff(w, *, form: TariffForm, existing: int, preview: dict, csrf: str, site: str, message: str | None,
           error: str | None) -> str:
    head = "".join(_input(w, form, key, form.header.get(key, ""), key) for key in ("id", "gst_percent", "min_price"))
    elements = "".join(_element(w, form, n, row) for n, row in enumerate(form.rows[:existing]))
    elements += _element(w, form, existing, None)
    days = "".join(f'<option value="{i}"{" selected" if str(i) == preview["weekday"] else ""}>{_e(w("day_" + d))}</option>'
                   for i, d in enumerate(DAYS))
    pv = (f'<fieldset class="card preview"><legend>{_e(w("preview"))}</legend>'
          f'<label>kWh<input type="text" name="preview_kwh" inputmode="decimal" value="{_e(preview["kwh"])}"></label>'
          f'<label>{_e(w("start_time"))}<input type="time" name="preview_time" value="{_e(preview["time"])}"></label>'
          f'<label>{_e(w("day"))}<select name="preview_day">{days}</select></label>'
          f'<p class="price" data-field="preview">{_e(preview["text"])}</p>'
          f'<button type="submit" name="action" value="preview">{_e(w("show_price"))}</button></fieldset>')
    body = (_note(message) + _note(error, "bad") + f'<form method="post" action="/tariff">{_csrf(csrf)}'
            f'<input type="hidden" name="existing" value="{existing}"><fieldset class="card">{head}</fieldset>'
            f'{elements}{pv}<button type="submit" name="action" value="save" class="primary">{_e(w("save_tariff"))}'
            f'</button></form><p class="hint">{_e(w("tariff_hint"))}</p>')
    return page(w, title=w("tariff_title"), body=body, role="owner", csrf=csrf, site=site, path="/tariff")


def _partners(w, partners, csrf: str) -> str:
    rows = "".join(f'<tr><td>{_e(p.label)}<br><span class="hint">{_e(p.versions_url)}</span></td><td>{_e(p.state)}</td>'
                   f'<td><form method="post" action="/partners/unregister">{_csrf(csrf)}'
                   f'<input type="hidden" name="party" value="{p.pk}"><button type="submit">{_e(w("remove_partner"))}'
                   '</button></form></td></tr>' for p in partners)
    listing = f'<table class="list" data-field="partners">{rows}</table>' if partners else \
        f'<p class="hint" data-field="partners">{_e(w("partners_none"))}</p>'
    return (f'<section class="card"><h2>{_e(w("partners"))}</h2>{listing}'
            f'<form method="post" action="/partners/register">{_csrf(csrf)}'
            f'<label>{_e(w("versions_url"))}<input type="url" name="versions_url" required></label>'
            f'<label>{_e(w("token_a"))}<input type="text" name="token_a" autocomplete="off" required></label>'
            f'<button type="submit">{_e(w("register_partner"))}</button></form></section>')


def _network_switch(w, form) -> str:
    """``[network] enabled`` as a checkbox, where the site has a network to switch."""
    if not form.values.get("network_table"):
        return f'<p class="hint" data-field="network_enabled">{_e(w("network_none"))}</p>'
    checked = " checked" if form.values.get("network_enabled") == "on" else ""
    error = form.errors.get("network_enabled")
    return ('<input type="hidden" name="network_shown" value="1">'
            f'<label class="day"><input type="checkbox" name="network_enabled" value="on"{checked}>'
            f'{_e(w("network_enabled"))}</label>'
            + (f'<span class="error" data-field="network_enabled">{_e(error)}</span>' if error else ""))


def settings(w, *, form, csrf: str, site: str, message: str | None, certificate: dict, modes, partners=(),
             error: str | None = None) -> str:
    def field(name, label, kind="text", extra=""):
        error = form.errors.get(name)
        return (f'<label>{_e(w(label))}<input type="{kind}" name="{name}" value="{_e(form.values.get(name, ""))}"{extra}>'
                f'</label>' + (f'<span class="error" data-field="{name}">{_e(error)}</span>' if error else ""))

    modes_html = "".join(f'<option value="{m}"{" selected" if form.values.get("auth") == m else ""}>{_e(w("auth_" + m))}'
                         '</option>' for m in modes)
    tokens_error = form.errors.get("allow_tokens") or form.errors.get("auth")
    body = (_note(message) + _note(error, "bad") + f'<form method="post" action="/settings" class="card">{_csrf(csrf)}'
            + field("name", "site_name") + field("address", "address") + field("city", "city")
            + field("opening_hours", "opening_hours") + f'<p class="hint">{_e(w("opening_hours_hint"))}</p>'
            + field("upi_vpa", "upi_vpa", extra=' inputmode="email"')
            + field("max_current_a", "max_current", extra=' inputmode="decimal"')
            + f'<label>{_e(w("auth"))}<select name="auth">{modes_html}</select></label>'
            + f'<label>{_e(w("allow_tokens"))}<textarea name="allow_tokens" rows="3">{_e(form.values.get("allow_tokens"))}'
            '</textarea></label>'
            + (f'<span class="error" data-field="allow_tokens">{_e(tokens_error)}</span>' if tokens_error else "")
            + _network_switch(w, form)
            + f'<button type="submit" class="primary">{_e(w("save_settings"))}</button></form>'
            f'<p class="hint">{_e(w("settings_hint"))}</p>'
            f'<section class="card"><h2>{_e(w("certificate"))}</h2><table>'
            + "".join(f'<tr><th>{_e(w(k))}</th><td>{_e(certificate.get(k))}</td></tr>'
                      for k in ("subscriber_id", "status", "valid_until"))
            + '</table></section>' + _partners(w, partners, csrf)
            + f'<form method="post" action="/technician" class="card">{_csrf(csrf)}'
            f'<h2>{_e(w("technician_password"))}</h2><label>{_e(w("new_password"))}<input type="password" '
            f'name="password" autocomplete="new-password" minlength="8" required></label>'
            f'<button type="submit">{_e(w("save"))}</button></form>')
    return page(w, title=w("settings_title"), body=body, role="owner", csrf=csrf, site=site, path="/settings")


def _selftest(w, *, role: str, csrf: str, results) -> str:
    """The technician's button, and the last run's checks (each connector's, in order)."""
    if role != "technician":
        return ""
    rows = "".join(f'<tr data-check="{_e(r.connector_id)}.{_e(r.name)}"><th>{_e(r.connector_id)}: {_e(r.name)}</th>'
                   f'<td class="{"ok" if r.status == "pass" else ("bad" if r.status == "fail" else "unknown")}">'
                   f'{_e(w("st_" + r.status))}</td><td>{_e(r.detail)}</td></tr>' for r in results or ())
    table = f'<table class="list" data-field="selftest">{rows}</table>' if rows else ""
    return (f'<section class="card"><h2>{_e(w("selftest"))}</h2>{table}'
            f'<form method="post" action="/faults/selftest">{_csrf(csrf)}<button type="submit">'
            f'{_e(w("selftest_run"))}</button></form><p class="hint">{_e(w("selftest_hint"))}</p></section>')


def faults(w, *, fault, health, role: str, csrf: str, site: str, message: str | None, error: str | None,
           selftest=None) -> str:
    if fault is None:
        now = f'<p class="note ok" data-field="fault">{_e(w("no_fault"))}</p>'
    else:
        when = strftime("%Y-%m-%d %H:%M UTC", gmtime(fault.latched_s)) if fault.latched_s else "-"
        now = (f'<section class="card fault" data-field="fault"><h2>{_e(w("latched_fault"))}: {_e(fault.code)}</h2>'
               f'<p>{_e(fault.detail)}</p><p>{_e(w("since"))} {_e(when)}</p>')
        if role == "technician":
            now += (f'<form method="post" action="/faults/reset">{_csrf(csrf)}<button type="submit" class="primary">'
                    f'{_e(w("reset_fault"))}</button></form><p class="hint">{_e(w("reset_hint"))}</p>')
        else:
            now += f'<p class="hint">{_e(w("reset_needs_technician"))}</p>'
        now += "</section>"
    rows = "".join(f'<tr><th>{_e(w("part_" + h.part) if ("part_" + h.part) in w else h.part)}</th>'
                   f'<td class="{"ok" if h.ok else ("bad" if h.ok is False else "unknown")}">'
                   f'{_e(w("ok") if h.ok else (w("not_ok") if h.ok is False else "-"))}</td><td>{_e(h.detail)}</td></tr>'
                   for h in health)
    body = (_note(message) + _note(error, "bad") + now + f'<section class="card"><h2>{_e(w("health"))}</h2>'
            f'<table class="list">{rows}</table></section>' + _selftest(w, role=role, csrf=csrf, results=selftest))
    return page(w, title=w("faults_title"), body=body, role=role, csrf=csrf, site=site, path="/faults")


def forbidden(w, *, role: str, csrf: str, site: str) -> str:
    return page(w, title=w("forbidden"), body=f'<p>{_e(w("forbidden_why"))}</p>', role=role, csrf=csrf, site=site)
