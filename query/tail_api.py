"""GET /api/v1/tail: the live tail (flightlog.query.tail) as a Server-Sent Events stream.

One TailHub per app, kept in its extras; the hub is closed when the app shuts down, which ends
every open stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web
from flightlog.query.lines import shape_line
from flightlog.query.search import parse_or_400
from flightlog.query.slots_api import run_query
from flightlog.query.tail import _END, RESUME_MAX_LINES, TailHub, event_id, parse_event_id, resume_rows
from flightlog.schema.app_state import EXTRAS, STORE, tenant_of

log = logging.getLogger("flightlog.query.tail")

HEARTBEAT_SECONDS = 5.0
RETRY_MS = 2000
HUB_KEY = "tail_hub"


def _sse(event_id_: str | None, data: Any, event: str | None = None) -> bytes:
    out = b""
    if event:
        out += b"event: " + event.encode() + b"\n"
    if event_id_:
        out += b"id: " + event_id_.encode() + b"\n"
    return out + b"data: " + orjson.dumps(data) + b"\n\n"


def hub_of(app: web.Application) -> TailHub:
    extras = app[EXTRAS]
    hub = extras.get(HUB_KEY)
    if hub is None:
        hub = extras[HUB_KEY] = TailHub(app[STORE], app)
    return hub


async def tail_handler(request: web.Request) -> web.StreamResponse:
    parsed = parse_or_400(request.query.get("q", ""))
    resume = parse_event_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    tenant = tenant_of(request)
    hub = hub_of(request.app)
    sub = hub.subscribe(tenant, parsed)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: pass events through as they come
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n: flightlog tail\n\n".encode())
        sent: set[tuple[int, int]] = set()
        if resume is not None:
            rows = await run_query(
                request, resume_rows, request.app[STORE], tenant, parsed, resume, time.time_ns()
            )
            for row in rows:
                ref = (int(row[2]), int(row[3]))
                sent.add(ref)
                await response.write(_sse(event_id(int(row[0]), *ref), shape_line(row[2:])))
            if len(rows) >= RESUME_MAX_LINES:
                await response.write(_sse(None, {"skipped": True, "message": "more matched while away"}, "notice"))
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if item is _END:
                break
            if sub.dropped:
                await response.write(
                    _sse(None, {"dropped": sub.dropped, "message": "this client fell behind"}, "notice")
                )
                sub.dropped = 0
            eid, payload = item
            if eid == "notice":
                await response.write(_sse(None, payload, "notice"))
                continue
            if resume is not None:
                # after a resume, the live feed's look-back can repeat what came before the id
                obs, ts_ns, seq = (int(part) for part in eid.split("-"))
                if (obs, ts_ns, seq) <= resume or (ts_ns, seq) in sent:
                    continue
            await response.write(_sse(eid, payload))
        return response
    except ConnectionResetError:
        # The client went away (closed the tab, reconnects later with Last-Event-ID): the
        # normal end of a tail, not an error worth a traceback.
        log.debug("tail: client %s disconnected", request.remote)
        return response
    finally:
        hub.unsubscribe(sub)


def setup_tail(app: web.Application) -> None:
    async def close_hub(app: web.Application) -> None:
        hub = app[EXTRAS].get(HUB_KEY)
        if hub is not None:
            await hub.close()

    app.on_shutdown.append(close_hub)
