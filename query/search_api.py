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

import asyncio
import csv
import io
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from aiohttp import web
from flightlog.query import export, facets, histogram, search, sql_console, tail_api
from flightlog.query.lines import parse_limit
from flightlog.query.params import search_params
from flightlog.query.search import ParsedQuery, parse_or_400, resolve_window
from flightlog.query.slots import QuerySlots
from flightlog.query.slots_api import acquire_slot, caller_key, release_from_thread, run_query
from flightlog.schema.app_state import SETTINGS, STORE, tenant_of
from flightlog.schema.engine_errors import log_engine_error, public_reason
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route
from flightlog.schema.store import StoreError


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
        raise Refusal(400, f"format: {fmt!r} is not one of json, {', '.join(export.FORMATS)}")
    return fmt


async def search_handler(request: web.Request) -> web.StreamResponse:
    fmt = export_format(request.query)
    if fmt is not None:
        parsed, since, until = window_params(request.query)
        store, tenant = request.app[STORE], tenant_of(request)
        _, content_type, extension = export.FORMATS[fmt]
        return await stream_response(
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
        raise Refusal(400, 'body: send JSON like {"sql": "SELECT count() FROM logs"}') from None
    if not isinstance(payload, dict) or not isinstance(payload.get("sql"), str):
        raise Refusal(400, 'sql: send JSON like {"sql": "SELECT count() FROM logs"}')
    fmt = payload.get("format") or request.query.get("format") or "json"
    if fmt not in ("json", "csv", "ndjson"):
        raise Refusal(400, f"format: {fmt!r} is not one of json, csv, ndjson")
    return payload["sql"], fmt


async def sql_handler(request: web.Request) -> web.Response:
    sql, fmt = await _sql_payload(request)
    body = await run_query(
        request,
        sql_console.run_audited,
        request.app[STORE],
        tenant_of(request),
        who(request),
        sql,
        sql_console.memory_limit(request.app[SETTINGS]),
    )
    if fmt == "json":
        return _json(body)
    return download(body, fmt)


async def sql_audit_handler(request: web.Request) -> web.Response:
    limit = parse_limit(request.query.get("limit"), sql_console.AUDIT_DEFAULT_LIMIT, sql_console.AUDIT_MAX_LIMIT)
    entries = await run_query(
        request, sql_console.audit_entries, request.app[STORE], tenant_of(request), limit
    )
    return _json({"entries": entries})


def setup_search_api(app: web.Application) -> None:
    app[EXPORT_SLOTS] = new_export_slots()
    add_route(app, "GET", "/api/v1/search", search_handler, scope="read")
    add_route(app, "GET", "/api/v1/histogram", histogram_handler, scope="read")
    add_route(app, "GET", "/api/v1/facets", facets_handler, scope="read")
    add_route(app, "GET", "/api/v1/tail", tail_api.tail_handler, scope="read")
    add_route(app, "POST", "/api/v1/sql", sql_handler, scope="read")
    add_route(app, "GET", "/api/v1/sql/audit", sql_audit_handler, scope="read")
    tail_api.setup_tail(app)


EXPORT_SLOTS = web.AppKey("export_slots", QuerySlots)


async def stream_response(
    request: web.Request, make_chunks: Callable[[], Iterator[bytes]], content_type: str, filename: str
) -> web.StreamResponse:
    """Run `make_chunks` in its own thread and stream what it yields, at most a few blocks ahead."""
    release_export = await _export_slots(request.app).acquire(tenant_of(request), caller_key(request))
    try:
        release_slot = await acquire_slot(request)
    except BaseException:
        release_export()
        raise
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    window = threading.Semaphore(export.BLOCKS_IN_FLIGHT)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            chunks = make_chunks()
            try:
                for chunk in chunks:
                    while not window.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            finally:
                close = getattr(chunks, "close", None)
                if close:
                    close()
        except Exception as exc:  # handed to the handler, which decides what the client sees
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, end)
            release_from_thread(loop, release_slot)
            release_from_thread(loop, release_export)

    try:
        threading.Thread(target=produce, name="export", daemon=True).start()
    except BaseException:
        release_slot()
        release_export()
        raise
    try:
        first = await queue.get()
        if isinstance(first, Refusal):
            raise first
        if isinstance(first, StoreError):
            log_engine_error("export", first)
            raise Refusal(400, f"export: the query failed: {public_reason(first)}")
        if isinstance(first, Exception):
            raise first
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        item = first
        while item is not end:
            if isinstance(item, Exception):
                # Headers are gone; ending without the last chunk tells the client it is cut
                # (the error, which may quote rows, goes to the server log only).
                raise ConnectionAbortedError(f"export failed midway: {item}")
            window.release()
            await response.write(item)
            item = await queue.get()
        await response.write_eof()
        return response
    finally:
        stop.set()


def new_export_slots() -> QuerySlots:
    # no wait: an export is long, so a queue behind one would be long too
    return QuerySlots(export.MAX_CONCURRENT_EXPORTS, max(1, export.MAX_CONCURRENT_EXPORTS // 2), export.MAX_CONCURRENT_EXPORTS, 0, "exports")


def _export_slots(app: web.Application) -> QuerySlots:
    return app.get(EXPORT_SLOTS) or new_export_slots()  # an app without the search API: no sharing


def who(request: web.Request) -> str:
    """The caller as the audit names it: the API key (name and id), else the open server's peer."""
    key = request.get("key")
    if key is not None:
        return f"key {getattr(key, 'name', '')} ({getattr(key, 'id', '')})".strip()
    return f"open ({request.remote or 'unknown'})"


def download(body: dict[str, Any], fmt: str) -> web.Response:
    """A console answer as a CSV or NDJSON file (the rows it holds; `truncated` in a header)."""
    headers = {"X-Flightlog-Truncated": "true" if body["truncated"] else "false", "Cache-Control": "no-store"}
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(body["columns"])
        for row in body["rows"]:
            writer.writerow([_csv_cell(v) for v in row])
        data, content_type = out.getvalue().encode(), "text/csv; charset=utf-8"
    else:
        columns = body["columns"]
        data = b"".join(orjson.dumps(dict(zip(columns, row))) + b"\n" for row in body["rows"])
        content_type = "application/x-ndjson"
    headers["Content-Disposition"] = f'attachment; filename="flightlog-sql.{fmt}"'
    return web.Response(body=data, headers=headers, content_type=content_type.split(";")[0], charset="utf-8")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value
