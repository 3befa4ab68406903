"""Bounds on what ingest holds: request bodies in memory, lines in the WAL.

Every ingest request reserves an estimate of its decompressed body before it is read; when
the reservations would pass `ingest_max_inflight_bytes` the request is answered 429 at once,
before its body is read. A chunk the WAL has no room for is refused with 429 too (see
`deliver`). Every 429 and 503 from an ingest route carries `Retry-After`.
"""

from __future__ import annotations

from aiohttp import web
from flightlog.ingest.metrics import METRICS
from flightlog.schema.app_state import BATCHER
from flightlog.schema.refusal import Refusal, retry_after_header
from flightlog.schema.route_table import needs_of

# Bodies of unknown length (chunked) reserve this much; compressed bodies are reserved at
# this many times their wire size (log text compresses 5-15x). Both are capped at the body limit.
UNKNOWN_LENGTH_RESERVE = 16 * 1024 * 1024
COMPRESSION_ESTIMATE = 10


class InflightBudget:
    def __init__(self, max_bytes: int, max_body_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_body_bytes = max_body_bytes
        self.reserved = 0
        self.requests = 0
        self.peak = 0

    def estimate(self, request: web.Request) -> int:
        length = request.content_length
        if length is None:
            return min(self.max_body_bytes, UNKNOWN_LENGTH_RESERVE)
        encoding = request.headers.get("Content-Encoding", "identity").lower()
        factor = 1 if encoding in ("", "identity") else COMPRESSION_ESTIMATE
        return min(self.max_body_bytes, max(length * factor, 1))

    def try_reserve(self, size: int) -> bool:
        # One request is always let in, so a body near the limit can never starve.
        if self.requests and self.reserved + size > self.max_bytes:
            return False
        self.reserved += size
        self.requests += 1
        self.peak = max(self.peak, self.reserved)
        return True

    def release(self, size: int) -> None:
        self.reserved -= size
        self.requests -= 1


BUDGET = web.AppKey("ingest_inflight_budget", InflightBudget)


def is_ingest(request: web.Request) -> bool:
    """Whether the matched route declared the ingest budget (flightlog.schema.route_table)."""
    return needs_of(request).budget == "ingest"


@web.middleware
async def ingest_middleware(request: web.Request, handler):
    if not is_ingest(request):
        return await handler(request)
    metrics = request.app[METRICS]
    budget = request.app[BUDGET]
    size = budget.estimate(request)
    if not budget.try_reserve(size):
        refusal = Refusal(
            429, "too many request bodies in flight; retry after the Retry-After seconds", reason="memory"
        )
        metrics.throttle(refusal.reason)
        metrics.request(refusal.status)
        return web.json_response({"error": refusal.message}, status=refusal.status, headers=refusal.headers())
    try:
        response = await handler(request)
    finally:
        budget.release(size)
    if response.status in (429, 503) and "Retry-After" not in response.headers:
        batcher = request.app.get(BATCHER)
        response.headers.update(retry_after_header(5 if batcher is not None and batcher.store_failing else 1))
    metrics.request(response.status)
    if request.content_length:
        metrics.wire_bytes += request.content_length
    return response
