"""Bounds on what ingest holds: request bodies in memory, lines in the WAL.

Memory is charged for the bytes a request actually holds, as they arrive (`receive_body`),
not for what its headers announce: a client declaring a 64 MB body and trickling it in a
byte at a time holds a few bytes, and honest requests beside it go through (the body time
limit cuts it off). A compressed body is charged its expected inflated size before it is
inflated, and its real size after. When a request's next bytes would take the total past
`ingest_max_inflight_bytes` it is answered 429 (so is a request arriving while the budget is
already full, before its body is read). A chunk the WAL has no room for is refused with 429
too (see `deliver`). Every 429 and 503 from an ingest route carries `Retry-After`.
"""

from __future__ import annotations

from aiohttp import web
from flightlog.ingest.metrics import METRICS, TENANT, IngestMetrics
from flightlog.schema.app_state import BATCHER, tenant_of
from flightlog.schema.refusal import Refusal, retry_after_header
from flightlog.schema.route_table import needs_of

# Compressed bodies are expected to inflate to this many times their wire size (log text
# compresses 5-15x), capped at the body limit, until they are inflated.
COMPRESSION_ESTIMATE = 10
READ_SIZE = 256 * 1024
IN_FLIGHT_MESSAGE = "too many request bodies in flight; retry after the Retry-After seconds"


class InflightBudget:
    """The bytes every ingest request in flight holds, against one bound."""

    def __init__(self, max_bytes: int, max_body_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_body_bytes = max_body_bytes
        self.reserved = 0
        self.requests = 0
        self.peak = 0

    @property
    def full(self) -> bool:
        return self.reserved >= self.max_bytes

    def open(self) -> Held:
        self.requests += 1
        return Held(self)


class Held:
    """What one request holds of the budget; it only grows while the budget has room."""

    def __init__(self, budget: InflightBudget) -> None:
        self.budget = budget
        self.size = 0
        self.received = 0

    def resize(self, size: int) -> bool:
        """Hold `size` bytes from now on; False (and nothing changes) when that does not fit.
        A request alone in the budget may always grow, so a body near the limit never starves."""
        budget = self.budget
        others = budget.reserved - self.size
        if size > self.size and others and others + size > budget.max_bytes:
            return False
        budget.reserved = others + size
        budget.peak = max(budget.peak, budget.reserved)
        self.size = size
        return True

    def grow(self, extra: int, metrics: IngestMetrics | None = None) -> None:
        if not self.resize(self.size + extra):
            if metrics is not None:
                metrics.throttle("memory")
            raise Refusal(429, IN_FLIGHT_MESSAGE, reason="memory", retry_after=1)

    def close(self) -> None:
        self.resize(0)
        self.budget.requests -= 1


BUDGET = web.AppKey("ingest_inflight_budget", InflightBudget)
# web.RequestKey is aiohttp 3.14+; pyproject allows 3.13, where a string key does the same.
HELD = web.RequestKey("ingest_held_bytes", Held) if hasattr(web, "RequestKey") else "ingest_held_bytes"


async def receive_body(request: web.Request, max_bytes: int) -> bytes:
    """The raw body, charged to the request's share of the budget as it arrives; 413 past
    `max_bytes`, 429 when the budget has no room for the next bytes."""
    held: Held | None = request.get(HELD)
    metrics = request.app.get(METRICS)
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise Refusal(413, f"body is {declared} bytes; the limit is {max_bytes}; send smaller batches")
    parts: list[bytes] = []
    received = 0
    while True:
        part = await request.content.read(READ_SIZE)
        if not part:
            break
        received += len(part)
        if received > max_bytes:
            raise Refusal(413, f"body is larger than {max_bytes} bytes; send smaller batches")
        if held is not None:
            held.received = received
            held.grow(len(part), metrics)
        parts.append(part)
    return b"".join(parts)


def charge_inflated(request: web.Request, wire: int, limit: int) -> None:
    """Before a compressed body of `wire` bytes is inflated: charge what it may become."""
    held: Held | None = request.get(HELD)
    if held is not None:
        held.grow(min(limit, wire * COMPRESSION_ESTIMATE) - wire, request.app.get(METRICS))


def settle_inflated(request: web.Request, inflated: int) -> None:
    """After inflating: the request holds the inflated body (the wire bytes are dropped)."""
    held: Held | None = request.get(HELD)
    if held is None:
        return
    if inflated <= held.size:
        held.resize(inflated)
    else:
        held.grow(inflated - held.size, request.app.get(METRICS))


def is_ingest(request: web.Request) -> bool:
    """Whether the matched route declared the ingest budget (flightlog.schema.route_table)."""
    return needs_of(request).budget == "ingest"


@web.middleware
async def ingest_middleware(request: web.Request, handler):
    if not is_ingest(request):
        return await handler(request)
    token = TENANT.set(tenant_of(request))  # the metrics count this request for its tenant
    try:
        return await _within_budget(request, handler)
    finally:
        TENANT.reset(token)


async def _within_budget(request: web.Request, handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    budget = request.app[BUDGET]
    if budget.full:
        refusal = Refusal(429, IN_FLIGHT_MESSAGE, reason="memory")
        metrics.throttle(refusal.reason)
        metrics.request(refusal.status)
        return web.json_response({"error": refusal.message}, status=refusal.status, headers=refusal.headers())
    held = budget.open()
    request[HELD] = held
    try:
        response = await handler(request)
    finally:
        held.close()
    if response.status in (429, 503) and "Retry-After" not in response.headers:
        batcher = request.app.get(BATCHER)
        response.headers.update(retry_after_header(5 if batcher is not None and batcher.store_failing else 1))
    metrics.request(response.status)
    metrics.received(held.received)
    return response
