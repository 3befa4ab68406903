"""One batcher for every protocol: chunks go into a batch file, the engine inserts the file.

A batch file is a run of chunks, each a header line (tenant, arrival time, defaults) followed
by its wire lines, every line tagged with the chunk's number (normalize.CHUNK_KEY). The file
is sealed when it holds `batch_max_lines` lines or its first line is `batch_max_age_ms` old,
inserted by the engine straight from disk, and deleted once the insert succeeded. A file
still on disk at start is inserted again with the same deduplication token, so it lands once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from flightlog.ingest.chunk import Chunk
from flightlog.ingest.normalize import DEFAULTABLE, select_rows_sql
from flightlog.schema.store import Store, StoreError

log = logging.getLogger("flightlog.ingest")

HEADER_PREFIX = b'{"\\u0001h":'
_HEADER_SQL = "{\"\\\\u0001h\":"
# Rows in one batch share the batch's sequence base; the low bits count rows within it.
SEQ_ROW_BITS = 20


def insert_template() -> str:
    source = f"(SELECT line FROM {{source}} WHERE NOT startsWith(line, '{_HEADER_SQL}'))"
    return "INSERT INTO logs {settings} " + select_rows_sql(source)


@dataclass
class Batch:
    number: int
    path: Path
    started: float = field(default_factory=time.monotonic)
    lines: int = 0
    tenants: list[str] = field(default_factory=list)
    observed: list[int] = field(default_factory=list)
    defaults: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in DEFAULTABLE})

    def add_chunk(self, chunk: Chunk) -> bytes:
        """Record the chunk's header values; return the bytes to append to the file."""
        self.tenants.append(chunk.tenant)
        self.observed.append(chunk.observed_ns)
        for name in DEFAULTABLE:
            self.defaults[name].append(chunk.defaults.get(name, ""))
        index = len(self.tenants)
        self.lines += chunk.count
        header = HEADER_PREFIX + b"1," + orjson.dumps(
            {"n": index, "tenant": chunk.tenant, "observed": chunk.observed_ns, "defaults": chunk.defaults}
        )[1:]
        tag = b'{"\\u0001c":%d,' % index
        body = tag + chunk.lines[1:].replace(b"\n{", b"\n" + tag)
        return header + b"\n" + body + b"\n"

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
        return f"flightlog-batch-{self.number}"

    @classmethod
    def from_file(cls, path: Path) -> Batch:
        """Rebuild a sealed batch's parameters from the headers in its file."""
        batch = cls(number=int(path.stem), path=path)
        with path.open("rb") as f:
            for line in f:
                if line.startswith(HEADER_PREFIX):
                    header = orjson.loads(line)
                    batch.tenants.append(header["tenant"])
                    batch.observed.append(header["observed"])
                    for name in DEFAULTABLE:
                        batch.defaults[name].append(header["defaults"].get(name, ""))
                else:
                    batch.lines += 1
        return batch


class Batcher:
    """Collects chunks into batch files and inserts them; `stop()` flushes what is left."""

    def __init__(self, store: Store, spool_dir: Path, max_lines: int = 100_000, max_age_ms: int = 250) -> None:
        if max_lines >= 1 << SEQ_ROW_BITS:
            raise ValueError(f"batch_max_lines must be below {1 << SEQ_ROW_BITS}")
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.max_lines = max_lines
        self.max_age = max_age_ms / 1000
        self._template = insert_template()
        self._current: Batch | None = None
        self._file = None
        self._last_number = 0
        self._sealed: asyncio.Queue[Batch] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._inserts = ThreadPoolExecutor(max_workers=2, thread_name_prefix="insert")
        self._pending = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.stats = {"lines_inserted": 0, "batches_inserted": 0, "insert_errors": 0}

    async def start(self) -> None:
        for path in sorted(self.spool_dir.glob("*.ndjson")):
            batch = Batch.from_file(path)
            self._last_number = max(self._last_number, batch.number)
            self._enqueue(batch)
        self._tasks = [
            asyncio.create_task(self._sealer(), name="batch-sealer"),
            asyncio.create_task(self._inserter(), name="batch-inserter"),
        ]

    async def append(self, chunk: Chunk) -> None:
        if chunk.count == 0:
            return
        batch = self._current or self._open_batch()
        self._file.write(batch.add_chunk(chunk))
        if batch.lines >= self.max_lines:
            self._seal()
        else:
            self._wake.set()

    async def flush(self) -> None:
        """Seal the current batch and wait until every sealed batch is in the store."""
        if self._current is not None:
            self._seal()
        await self._drained.wait()

    async def stop(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._inserts.shutdown(wait=True)

    def _open_batch(self) -> Batch:
        number = max(int(time.time() * 1000), self._last_number + 1)
        self._last_number = number
        path = self.spool_dir / f"{number:016d}.ndjson"
        self._current = Batch(number=number, path=path)
        self._file = path.open("ab")
        return self._current

    def _seal(self) -> None:
        batch, self._current = self._current, None
        self._file.close()
        self._file = None
        self._enqueue(batch)

    def _enqueue(self, batch: Batch) -> None:
        self._pending += 1
        self._drained.clear()
        self._sealed.put_nowait(batch)

    async def _sealer(self) -> None:
        while True:
            batch = self._current
            if batch is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            remaining = batch.started + self.max_age - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
            if self._current is batch:
                self._seal()

    async def _inserter(self) -> None:
        loop = asyncio.get_running_loop()
        in_flight: set[asyncio.Future] = set()
        while True:
            batch = await self._sealed.get()
            while len(in_flight) >= 2:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.ensure_future(self._insert_with_retry(loop, batch))
            in_flight.add(task)

    async def _insert_with_retry(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        delay = 0.1
        while True:
            try:
                await loop.run_in_executor(self._inserts, self._insert, batch)
                break
            except StoreError as exc:
                self.stats["insert_errors"] += 1
                log.warning("insert of %s failed, retrying in %.1fs: %s", batch.path.name, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.stats["lines_inserted"] += batch.lines
        self.stats["batches_inserted"] += 1
        self._pending -= 1
        if self._pending == 0:
            self._drained.set()

    def _insert(self, batch: Batch) -> None:
        settings = {"insert_deduplication_token": batch.token, "insert_deduplicate": 1}
        self.store.insert_lines(self._template, batch.path, batch.params(), settings)
        os.unlink(batch.path)
