"""The alerts pages: /alerts (rules, state, silences), a rule's page (form, preview, groups,
history, its value over 24 h as a server-drawn SVG), and the form actions.

Plain HTML forms, no script: Preview is a second submit button of the rule form
(`formaction=/alerts/preview`); saving, deleting, testing and silencing are POSTs that need the
`alerts` (or `admin`) scope and carry the session's CSRF token. File rules are shown read-only.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from aiohttp import web
from flightlog.query.alerts import silences, state
from flightlog.query.alerts.api import ALERTS, MANAGE_SCOPE, delete_rule, describe, keep_channels
from flightlog.query.alerts.evaluate import EvaluationError
from flightlog.query.alerts.registry import RuleNotFound, RuleReadOnly, StoredRule
from flightlog.query.alerts.rules import KINDS, RuleError, parse_rule
from flightlog.query.alerts.scheduler import preview
from flightlog.query.search_api import who
from flightlog.query.slots_api import run_query
from flightlog.query.timefmt import now_ns
from flightlog.schema.app_state import STORE, tenant_of
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route
from flightlog.web.pages import _page, environment, render

CHART_W, CHART_H, CHART_PAD = 960, 140, 18
DAY_MS = 24 * 3600 * 1000
MAX_SERIES = 8

FORM_DEFAULTS = {"name": "", "kind": "search", "query": "level:>=error", "window": "5m", "condition": "count > 0",
                 "group_by": "", "for": "0s", "interval": "1m", "repeat_interval": "4h", "labels": "",
                 "annotations": "summary={{ value }} matching lines", "deploy_minutes": "10", "deploy_factor": "0"}


def rule_url(name: str) -> str:
    return "/alerts/rules/" + quote(name, safe="")


def _pairs(text: str, field: str) -> dict[str, str]:
    """`key=value` lines (labels, annotations) → a dict; a line without `=` names its field."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise RuleError([{"field": field, "reason": f"line {number}: write key=value"}])
        out[key.strip()] = value.strip()
    return out


def form_to_rule(form: Any, existing: StoredRule | None) -> dict[str, Any]:
    """The rule form's fields → the API's rule object (validated by the same model)."""
    def get(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    data: dict[str, Any] = {
        "name": get("name").strip() or "preview",
        "kind": get("kind") or "search",
        "query": get("query"),
        "window": get("window").strip(),
        "condition": get("condition").strip() or ("count > 0" if get("kind") != "sql" else "value > 0"),
        "group_by": [g.strip() for g in get("group_by").split(",") if g.strip()],
        "for": get("for").strip() or "0s",
        "interval": get("interval").strip() or "1m",
        "repeat_interval": get("repeat_interval").strip() or "4h",
        "labels": _pairs(get("labels"), "labels"),
        "annotations": _pairs(get("annotations"), "annotations"),
        "enabled": get("enabled") != "off",
    }
    if data["kind"] == "deploy":
        data["deploy_minutes"] = get("deploy_minutes") or "10"
        data["deploy_factor"] = get("deploy_factor") or "0"
    channels: list[dict[str, Any]] = [{"id": c} for c in form.getall("keep_channel", []) if isinstance(c, str)]
    if get("channel_url").strip():
        channels.append({"type": get("channel_type") or "slack", "url": get("channel_url").strip(),
                         "secret": get("channel_secret")})
    data["channels"] = channels
    return keep_channels(data, existing)


def rule_form(rule_data: dict[str, Any] | None) -> dict[str, str]:
    """A rule (API form) → the form's text fields."""
    if rule_data is None:
        return dict(FORM_DEFAULTS)
    return {
        "name": rule_data["name"], "kind": rule_data["kind"], "query": rule_data["query"],
        "window": rule_data["window"], "condition": rule_data["condition"],
        "group_by": ", ".join(rule_data["group_by"]), "for": rule_data["for"], "interval": rule_data["interval"],
        "repeat_interval": rule_data["repeat_interval"],
        "labels": "\n".join(f"{k}={v}" for k, v in rule_data["labels"].items()),
        "annotations": "\n".join(f"{k}={v}" for k, v in rule_data["annotations"].items()),
        "deploy_minutes": str(rule_data.get("deploy_minutes", 10)), "deploy_factor": str(rule_data.get("deploy_factor", 0)),
    }


def value_chart(series: dict[str, Any], since_ms: int, now_ms: int, threshold: float | None) -> dict[str, Any]:
    """Each group's value over the window as SVG polylines (at most MAX_SERIES groups)."""
    groups = list(series.values())[:MAX_SERIES]
    peak = max([p[1] for g in groups for p in g["points"]] + [threshold or 0.0, 1.0])
    span = max(now_ms - since_ms, 1)

    def x(t: int) -> float:
        return round((t - since_ms) / span * CHART_W, 1)

    def y(v: float) -> float:
        return round(CHART_H - v / peak * (CHART_H - 4), 1)

    lines = []
    for i, group in enumerate(groups):
        label = ", ".join(f"{k}={v}" for k, v in group["labels"].items()) or "(all)"
        points = " ".join(f"{x(t)},{y(v)}" for t, v in group["points"])
        last = group["points"][-1] if group["points"] else (now_ms, 0.0)
        # a dot at the latest value: a group seen once is a single point, which a line cannot show
        lines.append({"points": points, "label": label, "series": i % 8, "last": number(last[1]),
                      "dot": {"x": x(last[0]), "y": y(last[1])}})
    ticks = []
    for hours in range(0, 25, 4):
        t = since_ms + hours * 3600 * 1000
        ticks.append({"x": x(t), "label": time.strftime("%H:%M", time.gmtime(t / 1000))})
    return {"lines": lines, "w": CHART_W, "h": CHART_H, "pad": CHART_PAD, "peak": peak, "ticks": ticks,
            "threshold_y": y(threshold) if threshold is not None else None, "threshold": threshold}


def number(value: float) -> str:
    """A value as people read it: 23, not 23.0; 0.125, not 0.12500000001."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.4g}"


def _can_manage(request: web.Request) -> bool:
    key = request.get("key")
    return key is None or key.allows("alerts")


@_page
async def alerts_page(request: web.Request) -> web.Response:
    service, tenant = request.app[ALERTS], tenant_of(request)
    store = request.app[STORE]
    active, saved = await run_query(
        request, lambda: (silences.active(store, tenant), state.rule_statuses(store, tenant))
    )
    rules = [describe(service, r, saved=saved) for r in service.registry.of_tenant(tenant)]
    return render(request, "alerts.html", title="Alerts", rules=rules, silences=[s.public() for s in active],
                  rule_url=rule_url, can_manage=_can_manage(request))


async def _rule_page(request: web.Request, stored: StoredRule | None, *, form: dict[str, str] | None = None,
                     errors: list[dict[str, str]] | None = None, previewed: list[dict[str, Any]] | None = None,
                     notice: str = "", test_results: list[dict[str, Any]] | None = None, status: int = 200,
                     channels: list[dict[str, Any]] | None = None) -> web.Response:
    service, tenant, store = request.app[ALERTS], tenant_of(request), request.app[STORE]
    saved = await run_query(request, state.rule_statuses, store, tenant) if stored else {}
    body = describe(service, stored, saved=saved) if stored is not None else None
    groups: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    chart = None
    if stored is not None:
        now_ms = int(time.time() * 1000)
        since = now_ms - DAY_MS

        def load():
            return (state.groups(store, tenant, stored.rule.name), state.history(store, tenant, stored.rule.name),
                    state.values(store, tenant, stored.rule.name, since, MAX_SERIES))

        groups, history, series = await run_query(request, load)
        condition = stored.rule.parsed_condition() if stored.rule.kind in ("search", "sql") else None
        chart = value_chart(series, since, now_ms, condition.threshold if condition else None)
    return render(
        request, "alert_rule.html", status=status,
        title=f"Alert {stored.rule.name}" if stored else "New alert rule",
        rule=body, form=form or rule_form(body), errors=errors or [], previewed=previewed, kinds=KINDS,
        groups=groups, history=history, chart=chart, notice=notice, test_results=test_results,
        channels=channels if channels is not None else (body["channels"] if body else []),
        rule_url=rule_url, can_manage=_can_manage(request),
    )


def _stored(request: web.Request, name: str) -> StoredRule:
    try:
        return request.app[ALERTS].registry.get(tenant_of(request), name)
    except RuleNotFound as exc:
        raise Refusal(404, str(exc)) from None


@_page
async def new_rule_page(request: web.Request) -> web.Response:
    return await _rule_page(request, None)


@_page
async def rule_page(request: web.Request) -> web.Response:
    return await _rule_page(request, _stored(request, request.match_info["name"]))


def _form_text(form: Any) -> dict[str, str]:
    return {k: (form.get(k) if isinstance(form.get(k), str) else "") for k in FORM_DEFAULTS}


def _existing(request: web.Request, form: Any) -> StoredRule | None:
    original = form.get("original")
    if isinstance(original, str) and original:
        return _stored(request, original)
    return None


@_page
async def preview_action(request: web.Request) -> web.Response:
    form = await request.post()
    existing = _existing(request, form)
    errors: list[dict[str, str]] = []
    previewed = None
    try:
        rule = parse_rule(form_to_rule(form, existing))
        previewed = await run_query(request, preview, request.app[STORE], tenant_of(request), rule,
                                              now_ns())
    except RuleError as exc:
        errors = exc.errors
    except EvaluationError as exc:
        errors = [{"field": "query", "reason": str(exc)}]
    return await _rule_page(request, existing, form=_form_text(form), errors=errors, previewed=previewed,
                            status=400 if errors else 200)


@_page
async def save_action(request: web.Request) -> web.Response:
    form = await request.post()
    existing = _existing(request, form)
    service, tenant = request.app[ALERTS], tenant_of(request)
    try:
        rule = parse_rule(form_to_rule(form, existing))
        if existing is not None and rule.name != existing.rule.name:
            raise RuleError([{"field": "name", "reason": "a rule keeps its name; create a new rule instead"}])
        stored = await run_query(
            request, lambda: service.registry.put(tenant, rule, who(request), create=existing is None)
        )
    except RuleError as exc:
        return await _rule_page(request, existing, form=_form_text(form), errors=exc.errors, status=400)
    except (RuleReadOnly, FileExistsError) as exc:
        return await _rule_page(request, existing, form=_form_text(form), status=409,
                                errors=[{"field": "name", "reason": str(exc)}])
    service.evaluator.reschedule(tenant, stored.rule.name)
    raise web.HTTPSeeOther(rule_url(stored.rule.name))


@_page
async def delete_action(request: web.Request) -> web.Response:
    await delete_rule(request)
    raise web.HTTPSeeOther("/alerts")


@_page
async def test_action(request: web.Request) -> web.Response:
    stored = _stored(request, request.match_info["name"])
    results = await request.app[ALERTS].evaluator.send_test(stored)
    notice = "" if results else "This rule has no channels and no Alertmanager is set: nothing to test."
    return await _rule_page(request, stored, test_results=results, notice=notice)


@_page
async def silence_action(request: web.Request) -> web.Response:
    form = await request.post()
    stored = _stored(request, request.match_info["name"])
    matchers = {}
    for pair in form.getall("match", []):  # `label=value` of the group being silenced
        name, _, value = str(pair).partition("=")
        matchers[name] = value
    data = {"rule": stored.rule.name, "matchers": matchers, "for": str(form.get("for") or "1h"),
            "comment": str(form.get("comment") or "")}
    try:
        wanted = silences.parse_silence(data)
        await run_query(request, silences.create, request.app[STORE], tenant_of(request), wanted,
                                  who(request))
    except RuleError as exc:
        return await _rule_page(request, stored, errors=exc.errors, status=400)
    request.app[ALERTS].evaluator.reschedule(tenant_of(request), stored.rule.name)
    return await _rule_page(request, stored, notice=f"Silenced for {data['for']}.")


@_page
async def expire_silence_action(request: web.Request) -> web.Response:
    await run_query(request, silences.expire, request.app[STORE], tenant_of(request),
                              request.match_info["id"])
    request.app[ALERTS].evaluator.reschedule(tenant_of(request), "")
    raise web.HTTPSeeOther("/alerts")


def setup_alert_pages(app: web.Application) -> None:
    environment().filters["number"] = number
    for method, path, handler, scope in (
        ("GET", "/alerts", alerts_page, "read"),
        ("GET", "/alerts/new", new_rule_page, "read"),
        ("POST", "/alerts/preview", preview_action, "read"),
        ("POST", "/alerts/rules", save_action, MANAGE_SCOPE),
        ("GET", "/alerts/rules/{name}", rule_page, "read"),
        ("POST", "/alerts/rules/{name}/delete", delete_action, MANAGE_SCOPE),
        ("POST", "/alerts/rules/{name}/test", test_action, MANAGE_SCOPE),
        ("POST", "/alerts/rules/{name}/silence", silence_action, MANAGE_SCOPE),
        ("POST", "/alerts/silences/{id}/expire", expire_silence_action, MANAGE_SCOPE),
    ):
        add_route(app, method, path, handler, scope=scope)
