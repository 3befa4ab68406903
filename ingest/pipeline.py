"""The ingest pipeline every transport shares: limits, defaults, body reading, `deliver`.

HTTP handlers (flightlog.ingest.routes, flightlog.ingest.protocol_routes) and the syslog
listeners (flightlog.ingest.syslog_server) all hand parsed chunks to `deliver`, which returns
once the lines are durable in the WAL, or raises a Refusal when the pipeline cannot take more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from flightlog.ingest.backpressure import charge_inflated, receive_body, settle_inflated
from flightlog.ingest.batcher import Batcher, WalFull
from flightlog.ingest.chunk import Chunk, LineError
from flightlog.ingest.decompress import inflate
from flightlog.ingest.idempotency import IDEMPOTENCY, key_for_chunk, mark_stored
from flightlog.ingest.limits import Limits
from flightlog.ingest.metrics import METRICS
from flightlog.ingest.ratelimit import charge_lines
from flightlog.schema.app_state import BATCHER, SETTINGS, STORE
from flightlog.schema.refusal import Refusal

LIMITS = web.AppKey("ingest_limits", Limits)

# Query parameter / header names a request can give defaults with.
DEFAULT_SOURCES = {
    "service": "X-Flightlog-Service",
    "host": "X-Flightlog-Host",
    "build_id": "X-Flightlog-Build-Id",
    "deploy_id": "X-Flightlog-Deploy-Id",
}


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
        raise Refusal(408, "the request body did not arrive in time; send it faster or in smaller batches") from None
    except Refusal:
        raise
    except Exception as exc:  # the client went away or sent a broken chunked body
        raise Refusal(400, f"body could not be read: {_first_line(exc)}") from None
    encoding = request.headers.get("Content-Encoding", "")
    if not encoding:
        return raw
    charge_inflated(request, len(raw), limits.max_body_bytes)
    body = await inflate(raw, encoding, limits.max_body_bytes)
    settle_inflated(request, len(body))
    return body


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


async def deliver(app: web.Application, chunk: Chunk, errors: Sequence[LineError] = ()) -> None:
    """Hand a parsed chunk to the batcher; returns once its lines are durable in the WAL.
    Every protocol handler acknowledges only after this returns; it raises Refusal
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
        retry = 5 if batcher.store_failing else 1
        refusal = Refusal(
            429, "the write-ahead log is full: the store is behind; retry later", reason="wal_full", retry_after=retry
        )
        metrics.throttle(refusal.reason)
        raise refusal from None
    except OSError as exc:
        raise Refusal(
            503, f"the write-ahead log cannot write: {exc.strerror or exc}", reason="wal_write_failed", retry_after=5
        ) from None
    mark_stored()
    metrics.accepted(chunk.count, len(chunk.lines))
