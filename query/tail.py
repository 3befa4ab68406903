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
The HTTP side (the SSE stream, the hub per app) is flightlog.query.tail_api.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from flightlog.query.lines import LINE_COLUMNS, shape_line
from flightlog.query.search import ParsedQuery
from flightlog.schema.executor import run_in_store_thread
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store, StoreError

log = logging.getLogger("flightlog.query.tail")

POLL_SECONDS = 0.25
LAG_SECONDS = 5.0
MAX_LINES_PER_POLL = 2000
QUEUE_EVENTS = 10_000
RESUME_MAX_LINES = 10_000
RESUME_MAX_SECONDS = 3600
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
        raise Refusal(400, "Last-Event-ID: not an id this server sent; reconnect without it")
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

    def __init__(self, store: Store, app: Any = None) -> None:
        self.store = store
        self.app = app
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.tenants: dict[str, _TenantState] = {}
        self._task: asyncio.Task | None = None
        self._closed = False

    def subscribe(self, tenant: str, parsed: ParsedQuery) -> Subscriber:
        if self._closed:
            raise Refusal(503, "tail: the server is shutting down")
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
            return run_in_store_thread

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
