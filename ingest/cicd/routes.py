"""HTTP handlers for CI/CD events: GitHub and GitLab webhooks, and the generic events API.

    POST /hooks/github                      signed with X-Hub-Signature-256 (a tenant's secret)
    POST /hooks/gitlab                      X-Gitlab-Token (a tenant's token)
    POST /api/v1/builds/{build_id}/events   an ingest key, like /api/v1/logs
    POST /api/v1/deploys/{deploy_id}/events

Webhooks carry no API key: the secret that verifies a delivery names its tenant, so the
auth middleware lets /hooks/* through and these handlers refuse anything unverified (401,
nothing stored). Events are written straight to build_events (a few per build, not a stream
of lines), and acknowledged once the insert returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from flightlog.ingest.cicd import github, gitlab
from flightlog.ingest.cicd.events import CiEvent, from_api, store_events
from flightlog.ingest.pipeline import LIMITS, read_body
from flightlog.schema.app_state import SETTINGS, STORE, tenant_of
from flightlog.schema.executor import run_in_store_thread
from flightlog.schema.hook_secrets import HookSecrets, hook_source
from flightlog.schema.id_paths import ID_PATTERN, id_from_segment
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route

HOOKS = web.AppKey("hook_secrets", HookSecrets)
# GitHub caps a delivery at 25 MB; GitLab's are smaller. A CI event needs far less.
MAX_HOOK_BODY_BYTES = 25 * 1024 * 1024
MAX_API_BODY_BYTES = 64 * 1024
WEBHOOK_PATHS = ("/hooks/github", "/hooks/gitlab")


def setup_cicd_ingest(app: web.Application) -> None:
    app.cleanup_ctx.append(_hooks_context)
    # webhooks carry no API key: the secret that verifies a delivery names its tenant
    add_route(app, "POST", "/hooks/github", github_hook, scope="public")
    add_route(app, "POST", "/hooks/gitlab", gitlab_hook, scope="public")
    add_route(app, "POST", f"/api/v1/builds/{{build_id:{ID_PATTERN}}}/events", _events_handler("build"),
              scope="ingest", budget="ingest")
    add_route(app, "POST", f"/api/v1/deploys/{{deploy_id:{ID_PATTERN}}}/events", _events_handler("deploy"),
              scope="ingest", budget="ingest")


async def _hooks_context(app: web.Application) -> AsyncIterator[None]:
    app[HOOKS] = HookSecrets(hook_source(app[SETTINGS], app[STORE]))
    yield


async def _read(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(413, f"the body is larger than {limit} bytes")
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):
            body = await request.read()  # bounded by the app's client_max_size as well
    except TimeoutError:
        raise Refusal(408, "the request body did not arrive in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, f"the body is larger than {limit} bytes") from None
    if len(body) > limit:
        raise Refusal(413, f"the body is larger than {limit} bytes")
    return body


def _json_body(body: bytes, content_type: str) -> object:
    if content_type == "application/x-www-form-urlencoded":
        # GitHub's other content type: the JSON is the `payload` form field
        form = parse_qs(body.decode("utf-8", "replace"))
        body = form.get("payload", [""])[0].encode()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"the body is not JSON: {exc}") from None


def _refusal(exc: Refusal) -> web.Response:
    return web.json_response({"error": exc.message}, status=exc.status, headers=exc.headers())


def _stored(events: list[CiEvent]) -> web.Response:
    return web.json_response({
        "stored": len(events),
        "builds": sorted({e.id for e in events if e.kind == "build"}),
        "deploys": sorted({e.id for e in events if e.kind == "deploy"}),
    })


async def github_hook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        body = await _read(request, MAX_HOOK_BODY_BYTES)
        pairs = await run_in_store_thread(request.app[HOOKS].pairs, "github")
        tenant = github.matching_tenant(pairs, body, request.headers.get(github.SIGNATURE_HEADER))
        event = request.headers.get("X-GitHub-Event", "")
        payload = _json_body(body, request.content_type)
        if event == "ping":
            zen = payload.get("zen", "") if isinstance(payload, dict) else ""
            return web.json_response({"ok": True, "tenant": tenant, "zen": zen})
        if event not in github.EVENTS:
            return web.json_response({"ignored": f"flightlog does not read {event or 'unnamed'} events; "
                                                 f"it reads {', '.join(github.EVENTS)}"}, status=202)
        events = github.parse(event, payload, settings.github_build_id, settings.github_deploy_id,
                              request.headers.get("X-GitHub-Delivery", ""))
        await run_in_store_thread(store_events, request.app[STORE], tenant, events)
    except Refusal as exc:
        return _refusal(exc)
    return _stored(events)


async def gitlab_hook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        body = await _read(request, MAX_HOOK_BODY_BYTES)
        pairs = await run_in_store_thread(request.app[HOOKS].pairs, "gitlab")
        tenant = gitlab.matching_tenant(pairs, request.headers.get(gitlab.TOKEN_HEADER))
        payload = _json_body(body, request.content_type)
        event = request.headers.get("X-Gitlab-Event", "")
        if gitlab.kind_of_event(event, payload) is None:
            return web.json_response({"ignored": f"flightlog does not read {event or 'unnamed'} events; "
                                                 f"it reads {', '.join(gitlab.EVENTS)}"}, status=202)
        events = gitlab.parse(event, payload, settings.gitlab_build_id, settings.gitlab_deploy_id,
                              request.headers.get("X-Gitlab-Event-UUID", ""))
        await run_in_store_thread(store_events, request.app[STORE], tenant, events)
    except Refusal as exc:
        return _refusal(exc)
    return _stored(events)


def _events_handler(kind: str):
    column = f"{kind}_id"

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await read_body(request, request.app[LIMITS])  # gzip'd bodies too, like /api/v1/logs
            if len(body) > MAX_API_BODY_BYTES:
                raise Refusal(413, f"an event is at most {MAX_API_BODY_BYTES} bytes")
            payload = _json_body(body, "application/json")
            key = request.headers.get("Idempotency-Key", "")
            event = from_api(kind, id_from_segment(request.match_info[column]), payload, time.time_ns(),
                             f"api:{key[:128]}" if key else None)
            await run_in_store_thread(store_events, request.app[STORE], tenant_of(request), [event])
        except Refusal as exc:
            return _refusal(exc)
        return _stored([event])

    return handler
