"""JSON API for search, export, histogram, facets, live tail and the SQL console (under /api/v1).

GET  /api/v1/search?q=&from=&to=&limit=&cursor=     newest lines first, a page at a time
GET  /api/v1/search?q=&from=&to=&format=ndjson|csv  every match, streamed (no cap)
GET  /api/v1/histogram?q=&from=&to=&buckets=60      counts per time bucket by level
GET  /api/v1/facets?q=&from=&to=&field=service&limit=10   top values with counts
GET  /api/v1/tail?q=                                Server-Sent Events, resumable
POST /api/v1/sql   {"sql": "SELECT …", "format": "json|csv|ndjson"}   governed ad-hoc SQL
GET  /api/v1/sql/audit?limit=100                    who ran what, newest first
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web
from flightlog.query import export, facets, histogram, search, sql_console, tail
from flightlog.query.lines import parse_limit
from flightlog.query.params import search_params
from flightlog.query.search import ParsedQuery, parse_or_400, resolve_window
from flightlog.query.slots import run_query
from flightlog.web.errors import ApiError
from flightlog.web.keys import SETTINGS, STORE, tenant_of


def _json(body) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def window_params(query: Mapping[str, str]) -> tuple[ParsedQuery, int | None, int]:
    parsed = parse_or_400(query.get("q", ""))
    since, until = resolve_window(parsed, query.get("from") or None, query.get("to") or None)
    return parsed, since, until


def export_format(query: Mapping[str, str]) -> str | None:
    fmt = query.get("format") or None
    if fmt in (None, "json"):
        return None
    if fmt not in export.FORMATS:
        raise ApiError(400, f"format: {fmt!r} is not one of json, {', '.join(export.FORMATS)}")
    return fmt


async def search_handler(request: web.Request) -> web.StreamResponse:
    fmt = export_format(request.query)
    if fmt is not None:
        parsed, since, until = window_params(request.query)
        store, tenant = request.app[STORE], tenant_of(request)
        _, content_type, extension = export.FORMATS[fmt]
        return await export.stream_response(
            request,
            lambda: export.export_chunks(store, tenant, parsed, fmt, since_ns=since, until_ns=until),
            content_type,
            f"flightlog-search.{extension}",
        )
    params = search_params(request.query)
    body = await run_query(
        request,
        lambda: search.search(request.app[STORE], tenant_of(request), params.parsed, **params.as_kwargs()),
    )
    return _json(body)


async def histogram_handler(request: web.Request) -> web.Response:
    parsed, since, until = window_params(request.query)
    buckets = parse_limit(request.query.get("buckets"), histogram.DEFAULT_BUCKETS, histogram.MAX_BUCKETS, "buckets")
    body = await run_query(
        request,
        lambda: histogram.histogram(
            request.app[STORE], tenant_of(request), parsed, since_ns=since, until_ns=until, buckets=buckets
        ),
    )
    return _json(body)


async def facets_handler(request: web.Request) -> web.Response:
    parsed, since, until = window_params(request.query)
    field = request.query.get("field") or "service"
    limit = parse_limit(request.query.get("limit"), facets.DEFAULT_FACET_VALUES, facets.MAX_FACET_VALUES)
    body = await run_query(
        request,
        lambda: facets.facets(
            request.app[STORE], tenant_of(request), parsed, field, since_ns=since, until_ns=until, limit=limit
        ),
    )
    return _json(body)


async def _sql_payload(request: web.Request) -> tuple[str, str]:
    try:
        payload = await request.json(loads=orjson.loads)
    except (ValueError, orjson.JSONDecodeError):
        raise ApiError(400, 'body: send JSON like {"sql": "SELECT count() FROM logs"}') from None
    if not isinstance(payload, dict) or not isinstance(payload.get("sql"), str):
        raise ApiError(400, 'sql: send JSON like {"sql": "SELECT count() FROM logs"}')
    fmt = payload.get("format") or request.query.get("format") or "json"
    if fmt not in ("json", "csv", "ndjson"):
        raise ApiError(400, f"format: {fmt!r} is not one of json, csv, ndjson")
    return payload["sql"], fmt


async def sql_handler(request: web.Request) -> web.Response:
    sql, fmt = await _sql_payload(request)
    body = await run_query(
        request,
        sql_console.run_audited,
        request.app[STORE],
        tenant_of(request),
        sql_console.who(request),
        sql,
        sql_console.memory_limit(request.app[SETTINGS]),
    )
    if fmt == "json":
        return _json(body)
    return sql_console.download(body, fmt)


async def sql_audit_handler(request: web.Request) -> web.Response:
    limit = parse_limit(request.query.get("limit"), sql_console.AUDIT_DEFAULT_LIMIT, sql_console.AUDIT_MAX_LIMIT)
    entries = await run_query(
        request, sql_console.audit_entries, request.app[STORE], tenant_of(request), limit
    )
    return _json({"entries": entries})


def setup_search_api(app: web.Application) -> None:
    app[export.EXPORT_SLOTS] = export.new_export_slots()
    app.router.add_get("/api/v1/search", search_handler)
    app.router.add_get("/api/v1/histogram", histogram_handler)
    app.router.add_get("/api/v1/facets", facets_handler)
    app.router.add_get("/api/v1/tail", tail.tail_handler)
    app.router.add_post("/api/v1/sql", sql_handler)
    app.router.add_get("/api/v1/sql/audit", sql_audit_handler)
    tail.setup_tail(app)
