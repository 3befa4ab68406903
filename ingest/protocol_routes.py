"""HTTP handlers for the protocols other shippers speak: OTLP, Loki push, Elasticsearch bulk.

Each handler is the same linear sequence: check the method, read the (decompressed, bounded)
body, parse it with its protocol module, hand the chunk to `deliver()`, and answer in the
protocol's own shape.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web
from flightlog.ingest.idempotency import idempotent
from flightlog.ingest.pipeline import LIMITS, deliver, read_body, request_defaults
from flightlog.ingest.protocols import elastic, loki, otlp
from flightlog.schema.app_state import tenant_of
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route

ES_PREFIX = "/es"


def setup_protocols(app: web.Application) -> None:
    """Register the protocol routes; the probes shippers send before data are public."""
    add_route(app, "POST", "/v1/logs", idempotent(post_otlp_logs), scope="ingest", budget="ingest")
    add_route(app, "POST", "/loki/api/v1/push", idempotent(post_loki_push), scope="ingest", budget="ingest")
    add_route(app, "GET", "/ready", loki_ready, scope="public")
    add_route(app, "GET", "/loki/api/v1/ready", loki_ready, scope="public")
    for prefix in ("", ES_PREFIX):
        for method in ("POST", "PUT"):
            add_route(app, method, prefix + "/_bulk", idempotent(post_es_bulk), scope="ingest", budget="ingest")
            add_route(app, method, prefix + "/{index}/_bulk", idempotent(post_es_bulk), scope="ingest", budget="ingest")
        add_route(app, "GET", prefix + "/_license", get_es_license, scope="public")
    add_route(app, "GET", ES_PREFIX, get_es_root, scope="public")
    add_route(app, "GET", ES_PREFIX + "/", get_es_root, scope="public")
    app.middlewares.insert(0, elastic_middleware)


# --- OTLP/HTTP --------------------------------------------------------------------------------


async def post_otlp_logs(request: web.Request) -> web.Response:
    content_type = request.content_type
    encoding = otlp.JSON if content_type == otlp.JSON else otlp.PROTOBUF
    try:
        body = await read_body(request, request.app[LIMITS])
        result = otlp.parse(body, content_type, request.app[LIMITS], tenant_of(request), request_defaults(request))
        await deliver(request.app, result.chunk, result.errors)
    except Refusal as exc:
        payload, answer_type = otlp.status_body(encoding, exc.status, exc.message)
        return web.Response(body=payload, status=exc.status, content_type=answer_type, headers=exc.headers())
    message = "; ".join(f"log record {e.line}: {e.error}" for e in result.errors[:10])
    payload, answer_type = otlp.answer(encoding, result.rejected, message)
    return web.Response(body=payload, content_type=answer_type)


# --- Loki push --------------------------------------------------------------------------------


async def post_loki_push(request: web.Request) -> web.Response:
    try:
        body = await read_body(request, request.app[LIMITS])
        if not body:
            raise Refusal(400, "empty push request")
        result = loki.parse(
            body, request.content_type, request.app[LIMITS], tenant_of(request), request_defaults(request)
        )
        await deliver(request.app, result.chunk, result.errors)
    except Refusal as exc:
        return web.Response(text=exc.message + "\n", status=exc.status, headers=exc.headers())
    if result.rejected:
        # As Loki does: the good entries are in, the answer names what was refused.
        lines = [f"entry {e.line}: {e.error}" for e in result.errors[:10]]
        return web.Response(text=f"{result.rejected} entries rejected:\n" + "\n".join(lines) + "\n", status=400)
    return web.Response(status=204)


async def loki_ready(request: web.Request) -> web.Response:
    return web.Response(text="ready\n")


# --- Elasticsearch bulk -----------------------------------------------------------------------


def _es_json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={**elastic.PRODUCT_HEADER, **(headers or {})},
    )


async def post_es_bulk(request: web.Request) -> web.Response:
    started = time.monotonic()
    limits = request.app[LIMITS]
    try:
        body = await read_body(request, limits)
        if not body.strip():
            raise Refusal(400, "request body is required")
        result = elastic.parse(
            body, limits, tenant_of(request), request_defaults(request), request.match_info.get("index", "")
        )
        await deliver(request.app, result.parsed.chunk, result.parsed.errors)
    except Refusal as exc:
        return _es_json(elastic.error_body(exc.status, exc.message), exc.status, exc.headers())
    return _es_json({"took": elastic.took_ms(started), "errors": result.errors, "items": result.items})


async def get_es_root(request: web.Request) -> web.Response:
    return _es_json(elastic.version_document())


async def get_es_license(request: web.Request) -> web.Response:
    return _es_json({"license": {"status": "active", "uid": "flightlog", "type": "basic", "mode": "basic"}})


def _is_elastic_path(path: str) -> bool:
    return (
        path.endswith("/_bulk") or path.endswith("/_license") or path == ES_PREFIX or path.startswith(ES_PREFIX + "/")
    )


@web.middleware
async def elastic_middleware(request: web.Request, handler):
    """The outermost middleware, so that every answer on an Elasticsearch route carries the
    product header (elasticsearch-py checks it), a 429 from the ingest budget or a 404 too.
    `GET /` and `HEAD /` from an Elasticsearch client get the version document; browsers
    (which ask for text/html) get the web UI as before."""
    path = request.path
    if path == "/" and request.method in ("GET", "HEAD") and "text/html" not in request.headers.get("Accept", ""):
        return await get_es_root(request)
    if not _is_elastic_path(path):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(elastic.PRODUCT_HEADER)
        raise
    if not response.prepared:
        response.headers.update(elastic.PRODUCT_HEADER)
    return response
