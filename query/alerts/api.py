"""The alerts JSON API (under /api/v1/alerts) and the evaluator's place in the app.

GET    /api/v1/alerts                          the tenant's pending and firing groups
GET    /api/v1/alerts/rules                    every rule with its status and groups
POST   /api/v1/alerts/rules                    create (scope alerts or admin)
GET    /api/v1/alerts/rules/{name}             one rule, its groups, history
PUT    /api/v1/alerts/rules/{name}             replace (scope alerts or admin)
DELETE /api/v1/alerts/rules/{name}             delete (scope alerts or admin)
POST   /api/v1/alerts/rules/{name}/test        send a test notification now (scope alerts or admin)
GET    /api/v1/alerts/rules/{name}/values      each group's value over the last 24 h
POST   /api/v1/alerts/preview                  run a rule once, save nothing
GET    /api/v1/alerts/silences                 active silences
POST   /api/v1/alerts/silences                 create (scope alerts or admin)
DELETE /api/v1/alerts/silences/{id}            expire (scope alerts or admin)

A bad rule is a 400 whose `errors` list each field path and reason. Channel URLs and secrets
are write-only: they are never in an answer. To keep a channel when replacing a rule, send
`{"id": "<the channel's id>"}` in place of its URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from flightlog.query.alerts import metrics as alert_metrics
from flightlog.query.alerts import silences, state
from flightlog.query.alerts.notify.dispatcher import Dispatcher
from flightlog.query.alerts.registry import (
    RuleNotFound,
    RuleReadOnly,
    RuleRegistry,
    StoredRule,
    TooManyRules,
    load_rules_file,
)
from flightlog.query.alerts.rules import RuleError, parse_rule
from flightlog.query.alerts.scheduler import EVALUATIONS_AT_ONCE, Evaluator, preview
from flightlog.query.search_api import who
from flightlog.query.slots_api import run_query
from flightlog.query.timefmt import now_ns
from flightlog.schema.app_state import EXTRAS, SETTINGS, STORE, tenant_of
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route
from flightlog.schema.settings import Settings

log = logging.getLogger("flightlog.alerts")

MANAGE_SCOPE = "alerts"  # the route table's scope for managing rules and silences (or an admin key)
VALUES_WINDOW_MS = 24 * 3600 * 1000


class AlertService:
    """The registry, the dispatcher and the evaluator of one app."""

    def __init__(self, registry: RuleRegistry, dispatcher: Dispatcher, evaluator: Evaluator) -> None:
        self.registry = registry
        self.dispatcher = dispatcher
        self.evaluator = evaluator


ALERTS = web.AppKey("alerts", AlertService)


def public_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.port}"


def check_alertmanager_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RuleError([{"field": "--alertmanager-url", "reason": f"{url!r} is not an http(s) URL"}])


def load_file_rules(settings: Settings):
    """The rules file of --rules, validated; None when there is none. Raises RuleError."""
    if not settings.rules:
        return None
    return load_rules_file(settings.rules)


def setup_alerts(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.alertmanager_url:
        check_alertmanager_url(settings.alertmanager_url)
    file_rules = load_file_rules(settings)  # a bad file stops the start, naming the field
    app.cleanup_ctx.append(_alerts_context(file_rules))
    app[EXTRAS].setdefault("metrics", []).append(lambda tenant: alert_metrics.render(app[ALERTS].evaluator, tenant))
    for method, path, handler, scope in ROUTES:
        add_route(app, method, path, handler, scope=scope)


def _alerts_context(file_rules):
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        store = app[STORE]
        registry = RuleRegistry(store, file_rules)
        dispatcher = Dispatcher()
        await dispatcher.start()

        # The evaluator's own threads: its queries neither take a tenant's query slots nor wait
        # behind them, and it runs EVALUATIONS_AT_ONCE at most.
        threads = ThreadPoolExecutor(max_workers=EVALUATIONS_AT_ONCE + 1, thread_name_prefix="alerts")
        loop = asyncio.get_running_loop()

        async def run_blocking(fn, *args):
            return await loop.run_in_executor(threads, lambda: fn(*args))

        evaluator = Evaluator(store, registry, dispatcher, run_blocking, public_url=public_url(settings),
                              alertmanager_url=settings.alertmanager_url)
        app[ALERTS] = AlertService(registry, dispatcher, evaluator)
        await evaluator.start()
        yield
        await evaluator.stop()
        await dispatcher.stop()
        threads.shutdown(wait=False, cancel_futures=True)

    return context


# --- helpers ----------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def rule_error(exc: RuleError) -> Refusal:
    return Refusal(400, str(exc), errors=exc.errors)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json(loads=orjson.loads)
    except (ValueError, orjson.JSONDecodeError):
        raise Refusal(400, "body: send a JSON object") from None


def keep_channels(data: Any, existing: StoredRule | None) -> Any:
    """Channels sent as {"id": …} (no URL) are the existing rule's channels with that id."""
    if not isinstance(data, dict) or not isinstance(data.get("channels"), list):
        return data
    known = {c.key: c for c in existing.rule.channels} if existing else {}
    channels = []
    for i, channel in enumerate(data["channels"]):
        if isinstance(channel, dict) and "url" not in channel and "id" in channel:
            found = known.get(channel["id"])
            if found is None:
                raise RuleError([{"field": f"channels.{i}.id", "reason": "no channel of this rule has this id"}])
            channels.append(found.model_dump())
        else:
            channels.append(channel)
    return {**data, "channels": channels}


def describe(service: AlertService, stored: StoredRule, groups: list[dict[str, Any]] | None = None,
             saved: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A rule as the API shows it, with its status: this node's own when it evaluates the rule,
    else what the evaluating node wrote (`saved`, from state.rule_statuses)."""
    status = service.evaluator.status.get(stored.key)
    failure = service.dispatcher.rule_errors.get(stored.key)
    live = service.evaluator.states.get(stored.key, {})
    if status is not None:
        shown = {
            "last_evaluation": _ms_text(status.last_evaluation_ms) if status.last_evaluation_ms else None,
            "last_duration_ms": round(status.last_duration_s * 1000, 3),
            "error": status.last_error,
            "evaluations": status.evaluations,
            "failures": status.failures,
            "notification_error": {"channel": failure[0], "error": failure[1], "at": _ms_text(int(failure[2] * 1000))}
            if failure else None,
        }
        firing = sum(1 for g in live.values() if g.state == state.FIRING)
        pending = sum(1 for g in live.values() if g.state == state.PENDING)
    else:
        other = (saved or {}).get(stored.rule.name)
        shown = {
            "last_evaluation": _ms_text(other["last_evaluation_ms"]) if other else None,
            "last_duration_ms": round(other["duration_ms"], 3) if other else None,
            "error": other["error"] if other else "",
            "evaluations": other["evaluations"] if other else 0,
            "failures": other["failures"] if other else 0,
            "notification_error": {"channel": other["notify_error"].split(":", 1)[0], "error": other["notify_error"],
                                   "at": None} if other and other["notify_error"] else None,
        }
        firing = other["firing"] if other else 0
        pending = other["pending"] if other else 0
    body = {**stored.rule.public(), "source": stored.source, "read_only": stored.read_only, "status": shown,
            "firing": firing, "pending": pending}
    if groups is not None:
        body["groups"] = groups
    return body


def _ms_text(ms: int) -> str:
    return silences._text(ms)


def _get(service: AlertService, tenant: str, name: str) -> StoredRule:
    try:
        return service.registry.get(tenant, name)
    except RuleNotFound as exc:
        raise Refusal(404, str(exc)) from None


# --- rules ------------------------------------------------------------------------------------


async def list_rules_handler(request: web.Request) -> web.Response:
    service, tenant = request.app[ALERTS], tenant_of(request)
    saved = await run_query(request, state.rule_statuses, request.app[STORE], tenant)
    return _json({"rules": [describe(service, r, saved=saved) for r in service.registry.of_tenant(tenant)]})


async def get_rule_handler(request: web.Request) -> web.Response:
    service, tenant, store = request.app[ALERTS], tenant_of(request), request.app[STORE]
    stored = _get(service, tenant, request.match_info["name"])

    def load():
        return (state.groups(store, tenant, stored.rule.name), state.history(store, tenant, stored.rule.name),
                state.rule_statuses(store, tenant))

    groups, history, saved = await run_query(request, load)
    return _json({**describe(service, stored, groups, saved), "history": history})


async def _save(request: web.Request, *, create: bool) -> web.Response:
    service, tenant = request.app[ALERTS], tenant_of(request)
    data = await _body(request)
    name = request.match_info.get("name")
    existing = None
    if name is not None:
        if isinstance(data, dict):
            data.setdefault("name", name)
            if data["name"] != name:
                raise Refusal(400, "name: the body's name differs from the URL's; a rule is renamed by creating "
                                    "the new one and deleting the old", errors=[{"field": "name", "reason": "differs"}])
        try:
            existing = service.registry.get(tenant, name)
        except RuleNotFound:
            existing = None
    try:
        rule = parse_rule(keep_channels(data, existing))
    except RuleError as exc:
        raise rule_error(exc) from None
    try:
        stored = await run_query(
            request, lambda: service.registry.put(tenant, rule, who(request), create=create)
        )
    except RuleReadOnly as exc:
        raise Refusal(409, str(exc)) from None
    except FileExistsError as exc:
        raise Refusal(409, str(exc)) from None
    except RuleNotFound as exc:
        raise Refusal(404, str(exc)) from None
    except TooManyRules as exc:
        raise Refusal(400, str(exc)) from None
    service.evaluator.reschedule(tenant, rule.name)
    return _json(describe(service, stored), status=201 if create else 200)


async def create_rule_handler(request: web.Request) -> web.Response:
    return await _save(request, create=True)


async def replace_rule_handler(request: web.Request) -> web.Response:
    return await _save(request, create=False)


async def delete_rule(request: web.Request) -> str:
    """Delete the rule the path names, as the request's caller; the API and the page both
    come here. Refuses 404 for a rule that is not there and 409 for one from the rules file."""
    service, tenant = request.app[ALERTS], tenant_of(request)
    name = request.match_info["name"]
    try:
        await run_query(request, service.registry.delete, tenant, name, who(request))
    except RuleNotFound as exc:
        raise Refusal(404, str(exc)) from None
    except RuleReadOnly as exc:
        raise Refusal(409, str(exc)) from None
    service.evaluator.reschedule(tenant, name)
    return name


async def delete_rule_handler(request: web.Request) -> web.Response:
    return _json({"deleted": await delete_rule(request)})


async def test_rule_handler(request: web.Request) -> web.Response:
    service, tenant = request.app[ALERTS], tenant_of(request)
    stored = _get(service, tenant, request.match_info["name"])
    results = await service.evaluator.send_test(stored)
    if not results:
        raise Refusal(400, "this rule has no channels and no --alertmanager-url is set: nothing to test")
    return _json({"results": results})


async def values_handler(request: web.Request) -> web.Response:
    service, tenant = request.app[ALERTS], tenant_of(request)
    stored = _get(service, tenant, request.match_info["name"])
    since = int(time.time() * 1000) - VALUES_WINDOW_MS
    body = await run_query(request, state.values, request.app[STORE], tenant, stored.rule.name, since)
    return _json({"since": _ms_text(since), "groups": list(body.values())})


async def preview_handler(request: web.Request) -> web.Response:
    """Runs a rule once: a read (SQL rules are audited like the console); saves nothing."""
    tenant = tenant_of(request)
    data = await _body(request)
    try:
        rule = parse_rule(data if not (isinstance(data, dict) and "name" not in data) else {"name": "preview", **data})
    except RuleError as exc:
        raise rule_error(exc) from None
    groups = await run_query(request, _preview, request.app[STORE], tenant, rule)
    return _json({"groups": groups, "would_fire": sum(1 for g in groups if g["would_fire"])})


def _preview(store, tenant, rule):
    from flightlog.query.alerts.evaluate import EvaluationError

    try:
        return preview(store, tenant, rule, now_ns())
    except EvaluationError as exc:
        raise Refusal(400, f"query: {exc}", errors=[{"field": "query", "reason": str(exc)}]) from None


async def active_handler(request: web.Request) -> web.Response:
    """Pending and firing groups from the store: every node answers the same."""
    found = await run_query(request, state.active_groups, request.app[STORE], tenant_of(request))
    return _json({"alerts": [{**{k: v for k, v in g.items() if k != "since_ms"}, "since": _ms_text(g["since_ms"])}
                             for g in found]})


# --- silences ---------------------------------------------------------------------------------


async def list_silences_handler(request: web.Request) -> web.Response:
    found = await run_query(request, silences.active, request.app[STORE], tenant_of(request))
    return _json({"silences": [s.public() for s in found]})


async def create_silence_handler(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        wanted = silences.parse_silence(data)
        silence = await run_query(
            request, silences.create, request.app[STORE], tenant_of(request), wanted, who(request)
        )
    except RuleError as exc:
        raise rule_error(exc) from None
    request.app[ALERTS].evaluator.reschedule(tenant_of(request), silence.rule)
    return _json(silence.public(), status=201)


async def delete_silence_handler(request: web.Request) -> web.Response:
    silence_id = request.match_info["id"]
    done = await run_query(request, silences.expire, request.app[STORE], tenant_of(request), silence_id)
    if not done:
        raise Refusal(404, f"no active silence {silence_id!r}")
    request.app[ALERTS].evaluator.reschedule(tenant_of(request), "")
    return _json({"expired": silence_id})


ROUTES = (
    ("GET", "/api/v1/alerts", active_handler, "read"),
    ("GET", "/api/v1/alerts/rules", list_rules_handler, "read"),
    ("POST", "/api/v1/alerts/rules", create_rule_handler, MANAGE_SCOPE),
    ("GET", "/api/v1/alerts/rules/{name}", get_rule_handler, "read"),
    ("PUT", "/api/v1/alerts/rules/{name}", replace_rule_handler, MANAGE_SCOPE),
    ("DELETE", "/api/v1/alerts/rules/{name}", delete_rule_handler, MANAGE_SCOPE),
    ("POST", "/api/v1/alerts/rules/{name}/test", test_rule_handler, MANAGE_SCOPE),
    ("GET", "/api/v1/alerts/rules/{name}/values", values_handler, "read"),
    ("POST", "/api/v1/alerts/preview", preview_handler, "read"),  # a read: saves nothing, SQL audited
    ("GET", "/api/v1/alerts/silences", list_silences_handler, "read"),
    ("POST", "/api/v1/alerts/silences", create_silence_handler, MANAGE_SCOPE),
    ("DELETE", "/api/v1/alerts/silences/{id}", delete_silence_handler, MANAGE_SCOPE),
)
