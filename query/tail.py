"""Live tail: lines matching a query as Server-Sent Events, a moment after they arrive.

One poller per process (per app) asks the store, every POLL_SECONDS, for each tenant that has
listeners: "lines that arrived (observed_ts) since I last looked, matching any listener's
query". Every listener's query is one condition in that single statement, and the answer says
which listeners each line is for (`[c0, c1, …]`), so the engine does all the matching and N
listeners cost one query per tick. Reading the store rather than hooking the batcher means
tail works the same in `serve` and on a query node in front of separate ingest nodes.

A line is visible in the store a little after its arrival time (the batch's age plus the
insert). Each poll therefore looks back LAG_SECONDS before the previous poll and drops lines
it already delivered (their refs are remembered for that long). A line that becomes visible
more than LAG_SECONDS after it arrived — the store was down and the WAL replays it — is not
tailed; search finds it. When more than MAX_LINES_PER_POLL lines match in one tick, the oldest
are sent and the rest skipped, and listeners get a `skipped` notice: a tail is for watching.

Events: `id: <observed_ns>-<ts_ns>-<seq>`, `data: <the line as JSON>`. A client that reconnects
with `Last-Event-ID` (or `?last_event_id=`) first gets what matched since that id (at most
RESUME_MAX_LINES, arriving at most RESUME_MAX_SECONDS ago), then the live lines. A comment line
goes out every HEARTBEAT_SECONDS when nothing else does, so no proxy sees a silent connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from flightlog.query.lines import LINE_COLUMNS, shape_line
from flightlog.query.search import ParsedQuery, parse_or_400
from flightlog.query.slots import run_query
from flightlog.schema.store import Store, StoreError
from flightlog.web.errors import ApiError
from flightlog.web.keys import EXTRAS, STORE, tenant_of
from flightlog.web.server import run_in_store_thread

log = logging.getLogger("flightlog.query.tail")

POLL_SECONDS = 0.25
LAG_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0
MAX_LINES_PER_POLL = 2000
QUEUE_EVENTS = 10_000
RESUME_MAX_LINES = 10_000
RESUME_MAX_SECONDS = 3600
RETRY_MS = 2000
HUB_KEY = "tail_hub"
_NS = 1_000_000_000
_EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})-(\d{1,20})$")
_END = None


def event_id(observed_ns: int, ts_ns: int, seq: int) -> str:
    return f"{observed_ns}-{ts_ns}-{seq}"


def parse_event_id(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    match = _EVENT_ID.match(text.strip())
    if not match:
        raise ApiError(400, "Last-Event-ID: not an id this server sent; reconnect without it")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


@dataclass(eq=False)
class Subscriber:
    tenant: str
    parsed: ParsedQuery
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_EVENTS))
    dropped: int = 0

    def offer(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1


@dataclass
class _TenantState:
    since_ns: int  # the previous poll's start (wall clock); the next poll looks back LAG from it
    seen: dict[tuple[int, int], int] = field(default_factory=dict)  # (ts_ns, seq) → observed_ns


class TailHub:
    """The per-process poller and its listeners."""

    def __init__(self, store: Store, app: web.Application | None = None) -> None:
        self.store = store
        self.app = app
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.tenants: dict[str, _TenantState] = {}
        self._task: asyncio.Task | None = None
        self._closed = False
        self.polls = 0

    def subscribe(self, tenant: str, parsed: ParsedQuery) -> Subscriber:
        if self._closed:
            raise ApiError(503, "tail: the server is shutting down")
        sub = Subscriber(tenant, parsed)
        self.subscribers.setdefault(tenant, set()).add(sub)
        if tenant not in self.tenants:
            self.tenants[tenant] = _TenantState(since_ns=time.time_ns())
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tail-poller")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.tenant)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.tenant]
                self.tenants.pop(sub.tenant, None)

    async def close(self) -> None:
        self._closed = True
        for subs in list(self.subscribers.values()):
            for sub in subs:
                sub.offer(_END)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self.subscribers:
            started = time.monotonic()
            for tenant in list(self.subscribers):
                try:
                    await self._poll_tenant(tenant)
                except StoreError as exc:
                    log.warning("tail: polling the store failed: %s", exc)
                    await asyncio.sleep(1.0)
            self.polls += 1
            await asyncio.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - started)))

    async def _poll_tenant(self, tenant: str) -> None:
        subs = list(self.subscribers.get(tenant, ()))
        state = self.tenants.get(tenant)
        if not subs or state is None:
            return
        # one condition per distinct query; listeners with the same query share it
        queries: dict[str, ParsedQuery] = {}
        for sub in subs:
            queries.setdefault(sub.parsed.text, sub.parsed)
        texts = list(queries)
        poll_start = time.time_ns()
        lo = state.since_ns - int(LAG_SECONDS * _NS)
        run = self._runner()
        rows = await run(poll_rows, self.store, tenant, [queries[t] for t in texts], lo, MAX_LINES_PER_POLL + 1)
        skipped = len(rows) > MAX_LINES_PER_POLL
        rows = rows[:MAX_LINES_PER_POLL]
        by_text: dict[str, list[Subscriber]] = {}
        for sub in subs:
            by_text.setdefault(sub.parsed.text, []).append(sub)
        for row in rows:
            observed_ns, flags, line_row = row[0], row[1], row[2:]
            ref = (int(line_row[0]), int(line_row[1]))
            if ref in state.seen:
                continue
            state.seen[ref] = observed_ns
            event = (event_id(observed_ns, ref[0], ref[1]), shape_line(line_row))
            for text, flag in zip(texts, flags):
                if flag:
                    for sub in by_text[text]:
                        sub.offer(event)
        if skipped:
            for sub in subs:
                sub.offer(("notice", {"skipped": True, "message": "lines arrived faster than a tail can show"}))
        state.since_ns = poll_start if not skipped else time.time_ns()
        horizon = lo
        state.seen = {ref: obs for ref, obs in state.seen.items() if obs > horizon}

    def _runner(self):
        if self.app is not None:
            app = self.app

            async def run(fn, *args):
                return await run_in_store_thread(app, fn, *args)

            return run

        async def run_default(fn, *args):
            return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args))

        return run_default


def poll_rows(store: Store, tenant: str, queries: list[ParsedQuery], lo_ns: int, limit: int) -> list[list[Any]]:
    """[observed_ns, [flag per query], *LINE_COLUMNS] for lines that arrived after lo_ns and
    match any of the queries, in order of arrival."""
    params: dict[str, Any] = {"tenant": tenant, "lo": lo_ns, "limit": limit}
    conditions = [q.where(params, prefix=f"s{i}_") for i, q in enumerate(queries)]
    result = store.query(
        f"SELECT toUnixTimestamp64Nano(observed_ts) AS obs_ns, [{', '.join(conditions)}] AS m, {LINE_COLUMNS} "
        "FROM logs WHERE tenant = {tenant:String} AND observed_ts > fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
        f"AND ({' OR '.join(conditions)}) ORDER BY observed_ts, ts, seq LIMIT {{limit:UInt32}}",
        params,
    )
    return result.rows


def resume_rows(
    store: Store, tenant: str, parsed: ParsedQuery, after: tuple[int, int, int], now_ns: int
) -> list[list[Any]]:
    """What matched after the event id `after`, oldest first, as poll_rows shapes it."""
    observed, ts_ns, seq = after
    params: dict[str, Any] = {
        "tenant": tenant,
        "obs": max(observed, now_ns - RESUME_MAX_SECONDS * _NS),
        "ts": ts_ns,
        "seq": seq,
        "limit": RESUME_MAX_LINES,
    }
    condition = parsed.where(params, prefix="r_")
    result = store.query(
        f"SELECT toUnixTimestamp64Nano(observed_ts) AS obs_ns, [{condition}] AS m, {LINE_COLUMNS} FROM logs "
        "WHERE tenant = {tenant:String} AND observed_ts >= fromUnixTimestamp64Nano({obs:Int64}, 'UTC') "
        "AND (toUnixTimestamp64Nano(observed_ts), toUnixTimestamp64Nano(ts), seq) > ({obs:Int64}, {ts:Int64}, {seq:UInt64}) "
        f"AND {condition} ORDER BY observed_ts, ts, seq LIMIT {{limit:UInt32}}",
        params,
    )
    return result.rows


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
    finally:
        hub.unsubscribe(sub)


def setup_tail(app: web.Application) -> None:
    async def close_hub(app: web.Application) -> None:
        hub = app[EXTRAS].get(HUB_KEY)
        if hub is not None:
            await hub.close()

    app.on_shutdown.append(close_hub)
