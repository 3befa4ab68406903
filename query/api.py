"""The query JSON API under /api/v1: thin aiohttp handlers over query/ (the pages call the same)."""

from __future__ import annotations

import orjson
from aiohttp import web
from flightlog.query import build_records, context, hosts, kinds, trails
from flightlog.query.params import list_params, recent_limit, trail_params
from flightlog.query.search_api import setup_search_api
from flightlog.query.slots_api import run_query
from flightlog.schema.app_state import SETTINGS, STORE, tenant_of
from flightlog.schema.id_paths import ID_PATTERN, id_from_segment
from flightlog.schema.route_table import add_route


def _json(body) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _recent_handler(kind: str):
    async def handler(request: web.Request) -> web.Response:
        limit = recent_limit(request.query)
        filters = {**list_params(request.query).as_kwargs(), **build_records.record_filters(request.query)}
        body = await run_query(
            request,
            lambda: build_records.listing(request.app[STORE], tenant_of(request), kind, limit, **filters),
        )
        return _json({kinds.KINDS[kind].name + "s": body["items"], "next_cursor": body["next_cursor"]})

    return handler


def _summary_handler(kind: str):
    column = kinds.KINDS[kind].column

    async def handler(request: web.Request) -> web.Response:
        gone_after = request.app[SETTINGS].host_gone_after_s
        body = await run_query(
            request,
            lambda: build_records.summary(
                request.app[STORE], tenant_of(request), kind, id_from_segment(request.match_info[column]), gone_after
            ),
        )
        return _json(body)

    return handler


def _trail_handler(kind: str):
    column = kinds.KINDS[kind].column

    async def handler(request: web.Request) -> web.Response:
        params = trail_params(request.query)
        if not params.expand:
            kwargs = params.as_kwargs()
            del kwargs["expand"], kwargs["expand_cap"]
            raw = await run_query(
                request,
                lambda: trails.trail_json(
                    request.app[STORE], tenant_of(request), kind, id_from_segment(request.match_info[column]), **kwargs
                ),
            )
            return web.Response(body=raw, content_type="application/json")
        body = await run_query(
            request,
            lambda: trails.trail(
                request.app[STORE], tenant_of(request), kind, id_from_segment(request.match_info[column]), **params.as_kwargs()
            ),
        )
        return _json(body)

    return handler


async def context_handler(request: web.Request) -> web.Response:
    ref = request.query.get("ref")
    before = context.parse_count(request.query.get("before"), "before")
    after = context.parse_count(request.query.get("after"), "after")
    body = await run_query(
        request, context.context, request.app[STORE], tenant_of(request), ref, before, after
    )
    return _json(body)


async def hosts_handler(request: web.Request) -> web.Response:
    services, gone = hosts.parse_filters(request.query)
    body = await run_query(
        request,
        lambda: hosts.hosts(
            request.app[STORE], tenant_of(request), request.app[SETTINGS].host_gone_after_s,
            services=services, gone=gone,
        ),
    )
    return _json(body)


async def quarantine_handler(request: web.Request) -> web.Response:
    from flightlog.query import quarantine

    limit = quarantine.parse_limit(request.query.get("limit"))
    body = await run_query(
        request, lambda: quarantine.quarantined(request.app[STORE], tenant_of(request), limit)
    )
    return _json(body)


def setup_query_api(app: web.Application) -> None:
    for kind in kinds.KINDS.values():
        base = f"/api/v1/{kind.name}s"
        add_route(app, "GET", base, _recent_handler(kind.name), scope="read")
        add_route(app, "GET", f"{base}/{{{kind.column}:{ID_PATTERN}}}", _summary_handler(kind.name), scope="read")
        add_route(app, "GET", f"{base}/{{{kind.column}:{ID_PATTERN}}}/trail", _trail_handler(kind.name), scope="read")
    add_route(app, "GET", "/api/v1/context", context_handler, scope="read")
    add_route(app, "GET", "/api/v1/hosts", hosts_handler, scope="read")
    add_route(app, "GET", "/api/v1/quarantine", quarantine_handler, scope="read")
    setup_search_api(app)  # search, export, histogram, facets, tail, SQL console
