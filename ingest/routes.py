"""HTTP ingest: the handlers are thin; protocols parse, the pipeline delivers, the batcher batches."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web
from flightlog.ingest.backpressure import BUDGET, InflightBudget, ingest_middleware
from flightlog.ingest.idempotency import IDEMPOTENCY, IdempotencyKeys, idempotent
from flightlog.ingest.limits import MAX_ERRORS_LISTED, Limits
from flightlog.ingest.metrics import setup_metrics
from flightlog.ingest.pipeline import LIMITS, batcher_context, deliver, read_body, request_defaults
from flightlog.ingest.protocol_routes import setup_protocols
from flightlog.ingest.protocols import jsonlines, text
from flightlog.ingest.syslog_server import syslog_context
from flightlog.schema.app_state import SETTINGS, tenant_of
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route


def setup_ingest(app: web.Application) -> None:
    """The ingest service: its routes, its pipeline (batcher, WAL, budget) and the syslog listeners."""
    app[LIMITS] = Limits.from_settings(app[SETTINGS])
    setup_metrics(app)
    app[BUDGET] = InflightBudget(app[SETTINGS].ingest_max_inflight_bytes, app[SETTINGS].max_body_bytes)
    app.middlewares.append(ingest_middleware)
    app.cleanup_ctx.append(batcher_context)
    app[IDEMPOTENCY] = IdempotencyKeys()
    add_route(app, "POST", "/api/v1/logs", idempotent(post_logs), scope="ingest", budget="ingest")
    setup_protocols(app)
    app.cleanup_ctx.append(syslog_context)


async def post_logs(request: web.Request) -> web.Response:
    limits = request.app[LIMITS]
    try:
        body = await read_body(request, limits)
        if not body.strip():
            raise Refusal(400, "empty body: send NDJSON (one JSON object a line) or a JSON array")
        content_type = request.content_type
        if content_type == "text/plain":
            level = request.query.get("level") or request.headers.get("X-Flightlog-Level", "")
            result = text.parse(body, limits, tenant_of(request), request_defaults(request), level)
        else:
            result = jsonlines.parse(body, content_type, limits, tenant_of(request), request_defaults(request))
        await deliver(request.app, result.chunk, result.errors)
    except Refusal as exc:
        return web.json_response({"error": exc.message}, status=exc.status, headers=exc.headers())
    return ingest_answer(result.accepted, result.rejected, [e.as_json() for e in result.errors])


def ingest_answer(accepted: int, rejected: int, errors: list[Mapping[str, object]]) -> web.Response:
    status = 400 if accepted == 0 and rejected > 0 else 200
    body = {"accepted": accepted, "rejected": rejected, "errors": errors[:MAX_ERRORS_LISTED]}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
