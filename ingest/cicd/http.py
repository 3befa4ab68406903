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
from flightlog.ingest.cicd.events import CiEvent, EventRefused, from_api, store_events
from flightlog.schema.hook_secrets import HookSecrets, hook_source
from flightlog.web.id_paths import ID_PATTERN, id_from_segment
from flightlog.web.keys import SETTINGS, STORE, tenant_of

HOOKS = web.AppKey("hook_secrets", HookSecrets)
# GitHub caps a delivery at 25 MB; GitLab's are smaller. A CI event needs far less.
MAX_HOOK_BODY_BYTES = 25 * 1024 * 1024
MAX_API_BODY_BYTES = 64 * 1024
WEBHOOK_PATHS = ("/hooks/github", "/hooks/gitlab")


def setup_cicd_ingest(app: web.Application) -> None:
    app.cleanup_ctx.append(_hooks_context)
    app.router.add_post("/hooks/github", github_hook)
    app.router.add_post("/hooks/gitlab", gitlab_hook)
    app.router.add_post(f"/api/v1/builds/{{build_id:{ID_PATTERN}}}/events", _events_handler("build"))
    app.router.add_post(f"/api/v1/deploys/{{deploy_id:{ID_PATTERN}}}/events", _events_handler("deploy"))


async def _hooks_context(app: web.Application) -> AsyncIterator[None]:
    app[HOOKS] = HookSecrets(hook_source(app[SETTINGS], app[STORE]))
    yield


async def _off_loop(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _read(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise EventRefused(413, f"the body is larger than {limit} bytes")
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):
            body = await request.read()  # bounded by the app's client_max_size as well
    except TimeoutError:
        raise EventRefused(408, "the request body did not arrive in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise EventRefused(413, f"the body is larger than {limit} bytes") from None
    if len(body) > limit:
        raise EventRefused(413, f"the body is larger than {limit} bytes")
    return body


def _json_body(body: bytes, content_type: str) -> object:
    if content_type == "application/x-www-form-urlencoded":
        # GitHub's other content type: the JSON is the `payload` form field
        form = parse_qs(body.decode("utf-8", "replace"))
        body = form.get("payload", [""])[0].encode()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventRefused(400, f"the body is not JSON: {exc}") from None


def _refusal(exc: EventRefused) -> web.Response:
    return web.json_response({"error": exc.message}, status=exc.status)


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
        pairs = await _off_loop(request.app[HOOKS].pairs, "github")
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
        await _off_loop(store_events, request.app[STORE], tenant, events)
    except EventRefused as exc:
        return _refusal(exc)
    return _stored(events)


async def gitlab_hook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        body = await _read(request, MAX_HOOK_BODY_BYTES)
        pairs = await _off_loop(request.app[HOOKS].pairs, "gitlab")
        tenant = gitlab.matching_tenant(pairs, request.headers.get(gitlab.TOKEN_HEADER))
        payload = _json_body(body, request.content_type)
        event = request.headers.get("X-Gitlab-Event", "")
        if gitlab.kind_of_event(event, payload) is None:
            return web.json_response({"ignored": f"flightlog does not read {event or 'unnamed'} events; "
                                                 f"it reads {', '.join(gitlab.EVENTS)}"}, status=202)
        events = gitlab.parse(event, payload, settings.gitlab_build_id, settings.gitlab_deploy_id,
                              request.headers.get("X-Gitlab-Event-UUID", ""))
        await _off_loop(store_events, request.app[STORE], tenant, events)
    except EventRefused as exc:
        return _refusal(exc)
    return _stored(events)


def _events_handler(kind: str):
    column = f"{kind}_id"

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await _read(request, MAX_API_BODY_BYTES)
            payload = _json_body(body, "application/json")
            key = request.headers.get("Idempotency-Key", "")
            event = from_api(kind, id_from_segment(request.match_info[column]), payload, time.time_ns(),
                             f"api:{key[:128]}" if key else None)
            await _off_loop(store_events, request.app[STORE], tenant_of(request), [event])
        except EventRefused as exc:
            return _refusal(exc)
        return _stored([event])

    return handler
