"""The write-ahead log: segment files under data_dir/wal, fsync'd with group commit.

A segment is the batch file the engine inserts from (flightlog.ingest.batcher): lines are
appended to the open segment on the event loop (a copy into the page cache), and a writer
then waits for the next sync round. One task runs the rounds: it takes every segment written
since the last round, fdatasyncs them in a thread, and wakes every writer that was waiting,
so concurrent requests share one fsync (group commit). A sealed segment is closed by the
round after it was sealed; the batcher inserts it then and deletes it once the store has it
(the checkpoint). Whatever is still on disk at start is replayed.

fsync modes: `always` (a 2xx waits for its round), `interval` (rounds every
WAL_SYNC_INTERVAL seconds; a 2xx does not wait: a machine crash may lose that much), `off`
(never fsync: a process crash loses nothing, a machine crash may lose what the OS held).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

FSYNC_MODES = ("always", "interval", "off")
WAL_SYNC_INTERVAL = 1.0
SEGMENT_SUFFIX = ".ndjson"


class WalFull(Exception):
    """The WAL holds its maximum; the caller answers 429 and the client retries later."""


@dataclass(eq=False)
class Segment:
    number: int
    path: Path
    fd: int = -1
    size: int = 0
    dirty: bool = False
    sealed: bool = False
    new: bool = True  # its directory entry is not yet synced
    torn: bool = False  # a failed write could not be cut off: write no more to it
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def segment_number(path: Path) -> int:
    return int(path.name.split("-", 1)[0].split(".", 1)[0])


def segment_kind(path: Path) -> str:
    parts = path.name[: -len(SEGMENT_SUFFIX)].split("-")
    return parts[2] if len(parts) > 2 else ""


class Wal:
    def __init__(self, directory: Path, fsync: str = "always", max_bytes: int = 1 << 30) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"wal fsync mode must be one of {', '.join(FSYNC_MODES)}, not {fsync!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.bytes = 0  # on disk, not yet checkpointed
        self.segments = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self._last_number = 0
        self._open: list[Segment] = []  # segments whose fd is open (current and sealed-not-closed)
        self._round: asyncio.Future | None = None  # completes when the next round has synced
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-sync")
        self._task: asyncio.Task | None = None
        self._failure: OSError | None = None
        self.write_error: OSError | None = None  # the last write failed (disk full…); cleared by the next success
        self.write_failures = 0

    # -- start and stop ---------------------------------------------------------------------

    def recover(self) -> list[Path]:
        """Segments left by an earlier run, oldest first; a torn last line is cut off."""
        found = sorted(self.directory.glob("*" + SEGMENT_SUFFIX), key=lambda p: (segment_number(p), p.name))
        for path in found:
            self._last_number = max(self._last_number, segment_number(path))
            _cut_torn_tail(path)
            self.bytes += path.stat().st_size
            self.segments += 1
        for stray in self.directory.glob("*.tmp"):
            stray.unlink(missing_ok=True)
        return found

    def start(self) -> None:
        self._task = asyncio.create_task(self._syncer(), name="wal-sync")

    async def stop(self) -> None:
        for segment in list(self._open):
            segment.sealed = True
        await self.sync()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._thread.shutdown(wait=True)

    # -- writing ----------------------------------------------------------------------------

    def open_segment(self, kind: str = "") -> Segment:
        """A new segment; `kind` (a few letters) ends its name, so a replay knows how to read it."""
        number = max(time.time_ns() // 1_000_000, self._last_number + 1)
        self._last_number = number
        # The random part keeps ids unique across restarts even if the clock steps back.
        tail = f"-{kind}" if kind else ""
        path = self.directory / f"{number:016d}-{secrets.token_hex(4)}{tail}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        segment = Segment(number=number, path=path, fd=fd)
        self._open.append(segment)
        self.segments += 1
        return segment

    def has_room(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes or self.bytes == 0

    def write(self, segment: Segment, data: bytes) -> None:
        """Append to an open segment (not yet durable: await `sync()` for that).

        All or nothing: when the write fails part-way (disk full), what it wrote is cut off
        again, so the segment holds only whole chunks and nothing of a request that is
        answered with an error. If even that fails, the segment is marked torn: the caller
        must seal it and write to a new one (a replay drops a chunk whose lines are cut)."""
        if self._failure is not None:
            raise self._failure
        view = memoryview(data)
        try:
            while view:
                written = os.write(segment.fd, view)
                view = view[written:]
        except OSError as exc:
            self.write_error = exc
            self.write_failures += 1
            try:
                os.ftruncate(segment.fd, segment.size)
            except OSError:
                segment.torn = True
            raise
        self.write_error = None
        segment.size += len(data)
        segment.dirty = True
        self.bytes += len(data)

    def writable(self) -> bool:
        """False while the WAL cannot take a write: after a failed write until a probe
        (or a real write) succeeds again, or for good after a failed fsync."""
        if self._failure is not None:
            return False
        if self.write_error is None:
            return True
        return self._probe()

    def _probe(self, size: int = 64 << 10) -> bool:
        """Try a write of `size` bytes in the WAL directory; clears `write_error` if it works."""
        path = self.directory / f"probe-{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(b"\0" * size)
                while view:  # a nearly full disk takes part of a write before it refuses
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
                path.unlink(missing_ok=True)
        except OSError as exc:
            self.write_error = exc
            return False
        self.write_error = None
        return True

    def seal(self, segment: Segment) -> None:
        """No more writes to this segment; the next round closes it."""
        segment.sealed = True
        self._wake.set()

    async def sync(self) -> None:
        """Wait until everything written so far is durable (as the fsync mode defines)."""
        if self._round is None:
            self._round = asyncio.get_running_loop().create_future()
        round_ = self._round
        self._wake.set()
        await asyncio.shield(round_)

    async def durable(self) -> None:
        """What an acknowledgement waits for: a sync round in `always` mode, nothing otherwise."""
        if self.fsync == "always":
            await self.sync()
        elif self._failure is not None:
            raise self._failure

    def checkpoint(self, segment: Segment) -> None:
        """The store has the segment's lines: delete it. (If the delete is lost in a crash,
        the replay inserts it again under the same token and the store drops it.)"""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment.path)
        self.bytes -= segment.size
        self.segments -= 1

    # -- the sync rounds ----------------------------------------------------------------------

    async def _syncer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.fsync == "interval":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), WAL_SYNC_INTERVAL)
            else:
                await self._wake.wait()
            self._wake.clear()
            round_, self._round = self._round, None
            batch = [s for s in self._open if s.dirty or s.sealed or s.new]
            to_close = [s for s in batch if s.sealed]
            new_entries = any(s.new for s in batch)
            for segment in batch:
                segment.dirty = False
                segment.new = False
            fds = [s.fd for s in batch]
            started = time.monotonic()
            try:
                await loop.run_in_executor(self._thread, self._sync_files, fds, [s.fd for s in to_close], new_entries)
            except OSError as exc:
                # fsync failed: the page cache may have dropped the data; nothing more can be
                # promised, so every later write fails until a restart replays the WAL.
                self._failure = exc
                if round_ is not None and not round_.done():
                    round_.set_exception(exc)
                continue
            if self.fsync != "off":
                self.fsyncs += 1
                self.fsync_seconds += time.monotonic() - started
            for segment in to_close:
                self._open.remove(segment)
                segment.fd = -1
                segment.closed.set()
            if round_ is not None and not round_.done():
                round_.set_result(None)

    def _sync_files(self, fds: list[int], close: list[int], new_entries: bool) -> None:
        if self.fsync != "off":
            for fd in fds:
                os.fdatasync(fd)
            if new_entries:
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        for fd in close:
            os.close(fd)


def _cut_torn_tail(path: Path) -> None:
    """A crash of the machine can leave half a line at the end; the acknowledged part is whole."""
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                f.truncate(start + cut + 1)
                return
            end = start
        f.truncate(0)
