"""HTTP ingest: the handlers are thin; protocols parse, the batcher batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence

import orjson
from aiohttp import web
from flightlog.ingest.backpressure import (
    BUDGET,
    InflightBudget,
    Throttled,
    charge_inflated,
    ingest_middleware,
    receive_body,
    settle_inflated,
)
from flightlog.ingest.batcher import Batcher, WalFull
from flightlog.ingest.chunk import Chunk, LineError
from flightlog.ingest.decompress import inflate
from flightlog.ingest.idempotency import IDEMPOTENCY, IdempotencyKeys, idempotent, key_for_chunk, mark_stored
from flightlog.ingest.limits import MAX_ERRORS_LISTED, IngestError, Limits
from flightlog.ingest.metrics import METRICS, setup_metrics
from flightlog.ingest.protocols import jsonlines, text
from flightlog.ingest.ratelimit import charge_lines
from flightlog.web.keys import BATCHER, SETTINGS, STORE, tenant_of

LIMITS = web.AppKey("ingest_limits", Limits)

# Query parameter / header names a request can give defaults with.
DEFAULT_SOURCES = {
    "service": "X-Flightlog-Service",
    "host": "X-Flightlog-Host",
    "build_id": "X-Flightlog-Build-Id",
    "deploy_id": "X-Flightlog-Deploy-Id",
}


def setup_ingest(app: web.Application) -> None:
    app[LIMITS] = Limits.from_settings(app[SETTINGS])
    setup_metrics(app)
    app[BUDGET] = InflightBudget(app[SETTINGS].ingest_max_inflight_bytes, app[SETTINGS].max_body_bytes)
    app.middlewares.append(ingest_middleware)
    app.cleanup_ctx.append(batcher_context)
    app[IDEMPOTENCY] = IdempotencyKeys()
    app.router.add_post("/api/v1/logs", idempotent(post_logs))
    from flightlog.ingest.protocol_routes import setup_protocols  # it imports this module

    setup_protocols(app)


async def batcher_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    batcher = Batcher(
        app[STORE],
        settings.data_dir / "wal",
        max_lines=settings.batch_max_lines,
        max_age_ms=settings.batch_max_age_ms,
        fsync=settings.wal_fsync,
        max_bytes=settings.wal_max_bytes,
        inserts_in_flight=settings.inserts_in_flight,
        metrics=app[METRICS],
    )
    app[METRICS].batcher = batcher
    await batcher.start()
    for tenant, key, lines in batcher.replayed_keys:
        app[IDEMPOTENCY].remember_stored(tenant, key, lines)
    app[BATCHER] = batcher
    yield
    await batcher.stop()


def request_defaults(request: web.Request) -> dict[str, str]:
    """Fields a line lacks, from `?service=` … or `X-Flightlog-Service` … (the parameter wins)."""
    defaults = {}
    for field, header in DEFAULT_SOURCES.items():
        value = request.query.get(field) or request.headers.get(header)
        if value:
            defaults[field] = value
    return defaults


async def read_body(request: web.Request, limits: Limits) -> bytes:
    """The body, decompressed by us within `max_body_bytes` (see flightlog.ingest.decompress)."""
    try:
        # aiohttp has no time limit on a body; a client trickling one in is cut off here
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):
            raw = await receive_body(request, limits.max_body_bytes)
    except TimeoutError:
        raise IngestError(408, "the request body did not arrive in time; send it faster or in smaller batches") from None
    except IngestError:
        raise
    except Exception as exc:  # the client went away or sent a broken chunked body
        raise IngestError(400, f"body could not be read: {_first_line(exc)}") from None
    encoding = request.headers.get("Content-Encoding", "")
    if not encoding:
        return raw
    charge_inflated(request, len(raw), limits.max_body_bytes)
    body = await inflate(raw, encoding, limits.max_body_bytes)
    settle_inflated(request, len(body))
    return body


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


async def post_logs(request: web.Request) -> web.Response:
    limits = request.app[LIMITS]
    try:
        body = await read_body(request, limits)
        if not body.strip():
            raise IngestError(400, "empty body: send NDJSON (one JSON object a line) or a JSON array")
        content_type = request.content_type
        if content_type == "text/plain":
            level = request.query.get("level") or request.headers.get("X-Flightlog-Level", "")
            result = text.parse(body, limits, tenant_of(request), request_defaults(request), level)
        else:
            result = jsonlines.parse(body, content_type, limits, tenant_of(request), request_defaults(request))
        await deliver(request.app, result.chunk, result.errors)
    except IngestError as exc:
        return web.json_response({"error": exc.message}, status=exc.status, headers=retry_headers(exc))
    return ingest_answer(result.accepted, result.rejected, [e.as_json() for e in result.errors])


async def deliver(app: web.Application, chunk: Chunk, errors: Sequence[LineError] = ()) -> None:
    """Hand a parsed chunk to the batcher; returns once its lines are durable in the WAL.
    Every protocol handler acknowledges only after this returns; it raises IngestError
    (429 with `retry_after`, 503 when the WAL cannot write) when the pipeline cannot take
    more. `errors`, the lines the parser refused, are counted in the metrics."""
    metrics = app[METRICS]
    if errors:
        metrics.rejected(errors)
    if not chunk.count:
        return
    charge_lines(chunk.count)  # the sending key's lines/s limit (flightlog.ingest.ratelimit)
    batcher = app[BATCHER]
    chunk.idempotency_key = key_for_chunk()
    try:
        await batcher.append(chunk)
    except WalFull:
        metrics.throttle("wal_full")
        retry = 5 if batcher.store_failing else 1
        raise Throttled("the write-ahead log is full: the store is behind; retry later", retry) from None
    except OSError as exc:
        raise Throttled(f"the write-ahead log cannot write: {exc.strerror or exc}", 5, status=503) from None
    mark_stored()
    metrics.accepted(chunk.count, len(chunk.lines))


def retry_headers(exc: IngestError) -> dict[str, str]:
    """`Retry-After` for a refusal the client should retry: the wait a Throttled error
    carries, else a second for any other 429 or 503."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None and exc.status in (429, 503):
        retry_after = 1
    return {"Retry-After": str(int(retry_after + 0.999))} if retry_after is not None else {}


def ingest_answer(accepted: int, rejected: int, errors: list[Mapping[str, object]]) -> web.Response:
    status = 400 if accepted == 0 and rejected > 0 else 200
    body = {"accepted": accepted, "rejected": rejected, "errors": errors[:MAX_ERRORS_LISTED]}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
