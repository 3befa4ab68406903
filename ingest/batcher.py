"""One batcher for every protocol: chunks go into a WAL segment, the engine inserts the segment.

A segment (flightlog.ingest.wal) is a run of chunks, each a header line (tenant, arrival
time, defaults) followed by its wire lines, every line tagged with the chunk's number
(insert_sql.CHUNK_KEY). `append` returns once the chunk is durable (group commit), so a 2xx
after it is a promise. The segment is sealed when it holds `batch_max_lines` lines or its
first line is `batch_max_age_ms` old, inserted by the engine straight from disk under the
segment's id as deduplication token, and deleted once the insert succeeded (the checkpoint).
A segment still on disk at start is inserted again with the same token, so it lands once.
When the store fails, segments wait on disk and the insert is retried with backoff; when
the WAL holds `wal_max_bytes`, `append` raises WalFull and the client hears 429.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from flightlog.ingest.chunk import Chunk
from flightlog.ingest.insert_sql import (
    DEFAULTABLE,
    FLAT_READ_SETTINGS,
    HEADER_KEY,
    flat_source_structure,
    select_rows_sql,
)
from flightlog.ingest.wal import Segment, Wal, WalFull, segment_kind, segment_number
from flightlog.schema.publish import PENDING_TABLE, Publisher
from flightlog.schema.store import Store, StoreError

__all__ = ["Batch", "Batcher", "WalFull", "insert_template"]

log = logging.getLogger("flightlog.ingest")

HEADER_PREFIX = b'{"\\u0001h":'
TAG_PREFIX = b'{"\\u0001c":'
_TAG = re.compile(rb'\{"\\u0001c":(\d+),')
_HEADER_SQL = "{\"\\\\u0001h\":"
# Rows in one batch share the batch's sequence base; the low bits count rows within it.
SEQ_ROW_BITS = 20
# Settings every batch insert runs with. The token makes a replayed batch a no-op, in the
# logs table and in every materialized view fed from it; one insert thread keeps the blocks
# of a batch (and so the per-block ids derived from the token) the same on every replay.
INSERT_SETTINGS = {
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "max_insert_threads": 1,
}
# Engine errors that say "this data cannot be stored", not "the store is not there": parse,
# type, range and overflow errors. A batch refused with one of them is bisected and the lines
# that still fail alone are quarantined (every other error is an outage: retried as a whole).
CONTENT_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    25,   # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    33,   # CANNOT_READ_ALL_DATA
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    407,  # DECIMAL_OVERFLOW ("Convert overflow")
})
QUARANTINE_REASON_CHARS = 300
RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 10.0
STOP_TIMEOUT = 60.0


FLAT_KIND = "f"  # segments of simple lines, read by the engine's JSON reader


def insert_template(flat: bool = False) -> str:
    # Into logs_pending: the lines reach `logs` (become searchable) once their trail and
    # summaries hold them (flightlog.schema.publish).
    if flat:
        source = f"(SELECT * FROM {{source}} WHERE `{HEADER_KEY}` IS NULL)"
        return f"INSERT INTO {PENDING_TABLE} {{settings}} " + select_rows_sql(source, flat=True)
    source = f"(SELECT line FROM {{source}} WHERE NOT startsWith(line, '{_HEADER_SQL}'))"
    return f"INSERT INTO {PENDING_TABLE} {{settings}} " + select_rows_sql(source)


@dataclass(eq=False)
class Batch:
    number: int
    path: Path
    segment: Segment | None = None
    flat: bool = False
    started: float = field(default_factory=time.monotonic)
    lines: int = 0
    tenants: list[str] = field(default_factory=list)
    observed: list[int] = field(default_factory=list)
    defaults: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in DEFAULTABLE})
    keys: list[tuple[str, str, int]] = field(default_factory=list)  # (tenant, idempotency key, lines)

    def add_chunk(self, chunk: Chunk) -> bytes:
        """Record the chunk's header values; return the bytes to append to the file.

        The header carries the chunk's own number `n` (the index its lines are tagged with),
        its line count `c` and its idempotency key `k`: a replay maps lines to headers by that
        number and drops a chunk whose lines are not all there (flightlog.ingest.wal)."""
        self.tenants.append(chunk.tenant)
        self.observed.append(chunk.observed_ns)
        for name in DEFAULTABLE:
            self.defaults[name].append(chunk.defaults.get(name, ""))
        index = len(self.tenants)
        self.lines += chunk.count
        meta = {"n": index, "tenant": chunk.tenant, "observed": chunk.observed_ns, "defaults": chunk.defaults,
                "c": chunk.count}
        if chunk.idempotency_key:
            meta["k"] = chunk.idempotency_key
        header = HEADER_PREFIX + b"1," + orjson.dumps(meta)[1:]
        tag = b'{"\\u0001c":%d,' % index
        body = tag + chunk.lines[1:].replace(b"\n{", b"\n" + tag)
        return header + b"\n" + body + b"\n"

    def undo_chunk(self, chunk: Chunk) -> None:
        """Forget the last chunk added (its bytes never reached the file)."""
        self.tenants.pop()
        self.observed.pop()
        for name in DEFAULTABLE:
            self.defaults[name].pop()
        self.lines -= chunk.count

    def params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "d_tenant": self.tenants,
            "d_observed": self.observed,
            "seq_base": self.number << SEQ_ROW_BITS,
        }
        for name, values in self.defaults.items():
            params[f"d_{name}"] = values
        return params

    @property
    def token(self) -> str:
        return f"flightlog-{self.path.name.rsplit('.', 1)[0]}"

    @classmethod
    def from_file(cls, path: Path) -> Batch:
        """Rebuild a sealed batch's parameters from the headers in its file.

        Lines are mapped to their header by the chunk number both carry, never by position.
        A chunk whose header is missing, or whose lines are not all there (a write torn by
        a full disk or a crash), was never acknowledged: the file is rewritten without it."""
        batch = cls(number=segment_number(path), path=path, flat=segment_kind(path) == FLAT_KIND)
        headers: dict[int, dict] = {}
        counts: Counter[int] = Counter()
        whole = True
        with path.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    whole = False  # a torn last line
                elif line.startswith(HEADER_PREFIX):
                    header = orjson.loads(line)
                    headers[header["n"]] = header
                elif (match := _TAG.match(line)) is not None:
                    counts[int(match.group(1))] += 1
                elif line.strip():
                    whole = False  # a line without its tag: a fragment
        complete = {n for n, h in headers.items() if counts[n] == h.get("c", counts[n]) and counts[n] > 0}
        if not whole or complete != set(headers) or set(counts) - complete:
            log.warning("%s holds a torn or orphaned chunk; keeping only its whole chunks", path.name)
            _keep_chunks(path, complete)
        for n in range(1, max(complete, default=0) + 1):
            header = headers.get(n) if n in complete else None
            batch.tenants.append(header["tenant"] if header else "")
            batch.observed.append(header["observed"] if header else 0)
            for name in DEFAULTABLE:
                batch.defaults[name].append(header["defaults"].get(name, "") if header else "")
            if header and header.get("k"):
                batch.keys.append((header["tenant"], header["k"], header.get("c", counts[n])))
        batch.lines = sum(counts[n] for n in complete)
        return batch


def _keep_chunks(path: Path, keep: set[int]) -> None:
    """Rewrite a segment with only the whole lines of the chunks in `keep` (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    with path.open("rb") as src, tmp.open("wb") as dst:
        for line in src:
            if not line.endswith(b"\n"):
                continue
            if line.startswith(HEADER_PREFIX):
                if orjson.loads(line)["n"] in keep:
                    dst.write(line)
            elif (match := _TAG.match(line)) is not None and int(match.group(1)) in keep:
                dst.write(line)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)


def is_content_error(exc: StoreError) -> bool:
    """The engine refused the data itself (see CONTENT_ERROR_CODES), not an outage."""
    return exc.code in CONTENT_ERROR_CODES


class Batcher:
    """Collects chunks into WAL segments and inserts them; `stop()` flushes what is left."""

    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        max_lines: int = 400_000,
        max_age_ms: int = 250,
        fsync: str = "always",
        max_bytes: int = 1 << 30,
        inserts_in_flight: int = 1,
        metrics=None,
    ) -> None:
        if max_lines >= 1 << SEQ_ROW_BITS:
            raise ValueError(f"batch_max_lines must be below {1 << SEQ_ROW_BITS}")
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.wal = Wal(self.spool_dir, fsync=fsync, max_bytes=max_bytes)
        self.max_lines = max_lines
        self.max_age = max_age_ms / 1000
        self.inserts_in_flight = inserts_in_flight
        self.metrics = metrics
        self._templates = {False: insert_template(), True: insert_template(flat=True)}
        self._flat_structure = flat_source_structure()
        self._current: dict[bool, Batch] = {}  # one open batch per kind (flat or not)
        self._sealed: asyncio.Queue[Batch] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._inserts = ThreadPoolExecutor(max_workers=inserts_in_flight, thread_name_prefix="insert")
        self._publisher = Publisher(store)
        self._pending = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.store_failing = False
        self._stopping = False
        self._in_flight: set[asyncio.Future] = set()
        self._slot_free = asyncio.Event()
        self.stats = {"lines_inserted": 0, "batches_inserted": 0, "insert_errors": 0, "lines_quarantined": 0}
        self.replayed_keys: list[tuple[str, str, int]] = []  # idempotency keys found in the WAL at start

    async def start(self) -> None:
        replayed = self.wal.recover()
        self.wal.start()
        for path in replayed:
            batch = Batch.from_file(path)
            self.replayed_keys.extend(batch.keys)
            segment = Segment(number=batch.number, path=path, size=path.stat().st_size, new=False)
            segment.closed.set()
            batch.segment = segment
            log.info("replaying %s (%d lines) from the WAL", path.name, batch.lines)
            self._enqueue(batch)
        self._tasks = [
            asyncio.create_task(self._sealer(), name="batch-sealer"),
            asyncio.create_task(self._inserter(), name="batch-inserter"),
        ]

    async def append(self, chunk: Chunk) -> None:
        """Write the chunk to the WAL and return once it is durable. Raises WalFull."""
        if chunk.count == 0:
            return
        batch = self._current.get(chunk.simple) or self._open_batch(chunk.simple)
        data = batch.add_chunk(chunk)
        if not self.wal.has_room(len(data)):
            batch.undo_chunk(chunk)
            raise WalFull(f"the write-ahead log holds {self.wal.bytes} bytes, its limit")
        try:
            self.wal.write(batch.segment, data)
        except OSError:
            # Nothing of the chunk stays: the WAL cut its bytes off again (or, if it could
            # not, the segment is sealed here and a replay drops the torn chunk); the header
            # list forgets it too, so the next chunk's number matches its header.
            batch.undo_chunk(chunk)
            if batch.segment.torn:
                self._seal(batch)
            raise
        if batch.lines >= self.max_lines:
            self._seal(batch)
        else:
            self._wake.set()
        await self.wal.durable()

    async def flush(self) -> None:
        """Seal the current batch and wait until every sealed batch is in the store."""
        for batch in list(self._current.values()):
            self._seal(batch)
        await self._drained.wait()

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Flush, then stop. If the store fails (or takes longer than `timeout`), what is not
        in yet stays in the WAL and is replayed at the next start."""
        self._stopping = True
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.warning("stopping with %d batches still in the WAL; they are replayed at the next start",
                        self._pending)
        for task in [*self._tasks, *self._in_flight]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._in_flight, return_exceptions=True)
        await self.wal.stop()
        self._inserts.shutdown(wait=True)

    @property
    def pending_batches(self) -> int:
        return self._pending

    def _open_batch(self, flat: bool) -> Batch:
        segment = self.wal.open_segment(FLAT_KIND if flat else "")
        batch = Batch(number=segment.number, path=segment.path, segment=segment, flat=flat)
        self._current[flat] = batch
        return batch

    def _seal(self, batch: Batch) -> None:
        del self._current[batch.flat]
        if batch.lines == 0:  # opened, then every chunk was refused: nothing to insert
            self.wal.seal(batch.segment)
            self._pending += 1
            self._drained.clear()
            asyncio.ensure_future(self._discard_empty(batch))
            return
        self.wal.seal(batch.segment)
        self._enqueue(batch)

    async def _discard_empty(self, batch: Batch) -> None:
        await batch.segment.closed.wait()
        self.wal.checkpoint(batch.segment)
        self._done()

    def _enqueue(self, batch: Batch) -> None:
        self._pending += 1
        self._drained.clear()
        self._sealed.put_nowait(batch)

    def _busy(self) -> int:
        return len(self._in_flight) + self._sealed.qsize()

    def _done(self) -> None:
        self._slot_free.set()
        self._pending -= 1
        if self._pending == 0:
            self._drained.set()

    async def _sealer(self) -> None:
        while True:
            if not self._current:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = min(self._current.values(), key=lambda b: b.started)
            remaining = batch.started + self.max_age - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
            # While every insert slot is busy, a batch past its age keeps growing (up to
            # max_lines) instead of queueing: fewer, larger inserts when the store is the
            # bottleneck, and the line waits no longer than it would in the queue.
            while self._current.get(batch.flat) is batch and self._busy() >= self.inserts_in_flight:
                self._slot_free.clear()
                await self._slot_free.wait()
            if self._current.get(batch.flat) is batch:
                self._seal(batch)

    async def _inserter(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._sealed.get()
            while len(self._in_flight) >= self.inserts_in_flight:
                self._slot_free.clear()
                await self._slot_free.wait()
            task = asyncio.ensure_future(self._insert_with_retry(loop, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._insert_finished)

    def _insert_finished(self, task: asyncio.Future) -> None:
        self._in_flight.discard(task)
        self._slot_free.set()

    async def _insert_with_retry(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        await batch.segment.closed.wait()
        if batch.segment.torn:  # a write failed and could not be cut off: keep the whole chunks
            segment, batch = batch.segment, Batch.from_file(batch.path)
            segment.size = batch.path.stat().st_size if batch.path.exists() else 0
            batch.segment = segment
        delay = RETRY_FIRST_DELAY
        bisect = False
        while True:
            started = time.monotonic()
            try:
                if bisect:
                    quarantined = await loop.run_in_executor(self._inserts, self._insert_bisecting, batch)
                    self._quarantined(batch, quarantined)
                else:
                    await loop.run_in_executor(self._inserts, self._insert, batch)
                break
            except StoreError as exc:
                if is_content_error(exc) and not bisect:
                    # The data, not the store: split the batch to find the lines it refuses.
                    log.warning("the store refused %s for its content; bisecting it: %s",
                                batch.path.name, str(exc)[:200])
                    bisect = True
                    continue
                bisect = False
                self.stats["insert_errors"] += 1
                self.store_failing = True
                if self.metrics is not None:
                    self.metrics.insert_failed()
                if self._stopping:
                    log.warning("insert of %s failed while stopping; it stays in the WAL for the next start: %s",
                                batch.path.name, exc)
                    self._done()
                    return
                log.warning("insert of %s failed, retrying in %.1fs: %s", batch.path.name, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
        self.store_failing = False
        if self.metrics is not None:
            self.metrics.batch_inserted(batch.lines, time.monotonic() - started)
        self.wal.checkpoint(batch.segment)
        self.stats["lines_inserted"] += batch.lines
        self.stats["batches_inserted"] += 1
        self._done()

    def _quarantined(self, batch: Batch, count: int) -> None:
        if count:
            self.stats["lines_quarantined"] += count
            if self.metrics is not None:
                self.metrics.lines_quarantined += count
            log.warning("%d lines of %s quarantined; the rest of the batch is stored", count, batch.path.name)

    def _insert_bisecting(self, batch: Batch) -> int:
        """Insert the batch in halves, down to single lines; a line the store refuses alone
        goes to the `quarantine` table. Every part has its own token derived from the batch's,
        so a replay after a crash mid-way splits the same way and stores each part once.
        Raises StoreError on an outage (the caller retries the whole batch later)."""
        headers: list[bytes] = []
        body: list[bytes] = []
        with batch.path.open("rb") as f:
            for line in f:
                (headers if line.startswith(HEADER_PREFIX) else body).append(line)
        refused: list[tuple[int, StoreError]] = []
        ranges = [(0, len(body))]
        while ranges:
            lo, hi = ranges.pop()
            try:
                self._insert_part(batch, headers, body, lo, hi)
            except StoreError as exc:
                if not is_content_error(exc):
                    raise
                if hi - lo == 1:
                    refused.append((lo, exc))
                else:
                    mid = (lo + hi) // 2
                    ranges += [(mid, hi), (lo, mid)]
        if refused:
            rows = []
            for line_no, exc in refused:
                line = body[line_no]
                match = _TAG.match(line)
                n = int(match.group(1)) if match else 0
                tenant = batch.tenants[n - 1] if 0 < n <= len(batch.tenants) else ""
                raw = b"{" + line[match.end():] if match else line
                reason = " ".join(str(exc).split())[:QUARANTINE_REASON_CHARS]
                rows.append({"tenant": tenant, "segment": batch.token, "line_no": line_no,
                             "raw": raw.rstrip(b"\n").decode("utf-8", "replace"), "reason": reason})
            self.store.insert_rows("quarantine", rows)
        return len(refused)

    def _insert_part(self, batch: Batch, headers: list[bytes], body: list[bytes], lo: int, hi: int) -> None:
        part = batch.path.with_name(f"{batch.path.name}.{lo}-{hi}.tmp")
        try:
            with part.open("wb") as f:
                f.writelines(headers)
                f.writelines(body[lo:hi])
            params = {**batch.params(), "seq_base": (batch.number << SEQ_ROW_BITS) + lo}
            self._run_insert(batch, part, params, f"{batch.token}-{lo}-{hi}")
        finally:
            part.unlink(missing_ok=True)

    def _insert(self, batch: Batch) -> None:
        self._run_insert(batch, batch.path, batch.params(), batch.token)

    def _run_insert(self, batch: Batch, path: Path, params: dict[str, object], token: str) -> None:
        settings = {**INSERT_SETTINGS, "insert_deduplication_token": token}
        # Tenants and defaults come from clients: they travel as query parameters, never as
        # SQL text (the embedded store binds them on a connection of the calling thread).
        sql = self._templates[batch.flat]
        if batch.flat:
            self._publisher.insert(lambda: self.store.insert_lines(
                sql, path, params, {**settings, **FLAT_READ_SETTINGS},
                fmt="JSONEachRow", structure=self._flat_structure))
        else:
            self._publisher.insert(lambda: self.store.insert_lines(sql, path, params, settings))
