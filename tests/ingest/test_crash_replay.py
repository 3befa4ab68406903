"""Exactly once across crashes: a SIGKILL at any moment loses no acknowledged line and
doubles none, and a batch inserted but not yet deleted is not inserted twice."""

from __future__ import annotations

import gzip
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request

import orjson
from flightlog.ingest.batcher import Batcher
from flightlog.ingest.chunk import Chunk
from flightlog.schema.embedded import EmbeddedStore

from tests.ingest.serve import Server

SENDERS = 4
LINES_PER_REQUEST = 500


def body_for(sender: int, request: int) -> bytes:
    """Even senders send simple lines (flat segments), odd ones lines with an extra key
    (general segments): both kinds of WAL segment are replayed."""
    lines = []
    for i in range(LINES_PER_REQUEST):
        line = {"msg": f"{sender}-{request} {i}", "service": f"sender-{sender}", "build_id": f"b{sender}"}
        if sender % 2:
            line["extra"] = i
        lines.append(orjson.dumps(line))
    return gzip.compress(b"\n".join(lines))


def sender(url: str, number: int, acked: list[str], stop: threading.Event) -> None:
    request = 0
    while not stop.is_set():
        req = urllib.request.Request(
            url + "/api/v1/logs", data=body_for(number, request), method="POST",
            headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                if 200 <= resp.status < 300:
                    acked.append(f"{number}-{request}")
        except (urllib.error.URLError, ConnectionError, OSError):
            return  # the server is gone
        request += 1


def test_replay_after_sigkill_keeps_every_acknowledged_line_exactly_once(tmp_path):
    data_dir = tmp_path / "data"
    server = Server(data_dir, "--batch-max-lines", "3000", "--batch-max-age-ms", "100").start()
    acked: list[list[str]] = [[] for _ in range(SENDERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(server.url, i, acked[i], stop)) for i in range(SENDERS)]
    try:
        for t in threads:
            t.start()
        # Kill it mid-stream: once a good number of requests went through, while inserts run.
        deadline = time.monotonic() + 60
        while sum(map(len, acked)) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    finally:
        stop.set()
        for t in threads:
            t.join()
    acknowledged = {r for rs in acked for r in rs}
    assert len(acknowledged) >= 60, "the senders should have had requests acknowledged before the kill"
    assert list((data_dir / "wal").glob("*.ndjson")), "the kill should leave segments to replay"

    # Restart: the WAL replays; SIGTERM flushes; then read the store directly.
    Server(data_dir, port=server.port).start().stop()
    assert not list((data_dir / "wal").glob("*.ndjson")), "a clean stop leaves the WAL empty"
    store = EmbeddedStore(data_dir)
    try:
        rows = store.query("SELECT message, count() AS c FROM logs GROUP BY message HAVING c > 1 LIMIT 10").rows
        assert rows == [], f"lines landed twice: {rows}"
        counts = dict(store.query(
            "SELECT splitByChar(' ', message)[1] AS r, count() FROM logs GROUP BY r"
        ).rows)
        # The materialized views fed from logs took each replayed block once too.
        tables = {r[0] for r in store.query("SHOW TABLES").rows}
        if "trail_lines" in tables:
            total = store.query("SELECT count() FROM logs").scalar()
            assert store.query("SELECT count() FROM trail_lines WHERE kind = 'build'").scalar() == total
        missing = sorted(r for r in acknowledged if r not in counts)
        assert not missing, f"{len(missing)} acknowledged requests lost, e.g. {missing[:5]}"
        short = [r for r in acknowledged if counts[r] != LINES_PER_REQUEST]
        assert not short, f"acknowledged requests with missing lines: {short[:5]}"
    finally:
        store.close()


async def test_a_batch_inserted_but_not_deleted_is_not_inserted_again(store, settings, tmp_path):
    """The crash window between the insert and the checkpoint: the replay's insert is dropped
    by the store because it carries the same deduplication token."""
    wal_dir = tmp_path / "wal"
    batcher = Batcher(store, wal_dir, max_age_ms=10_000)
    await batcher.start()
    await batcher.append(Chunk(b'{"msg":"once-a"}\n{"msg":"once-b"}', 2))
    segment_path = next(iter(batcher._current.values())).path
    saved = tmp_path / "saved.ndjson"
    shutil.copy(segment_path, saved)
    await batcher.stop()  # inserts and deletes the segment
    assert store.query("SELECT count() FROM logs").scalar() == 2

    shutil.copy(saved, segment_path)  # as if the process died before the delete
    replay = Batcher(store, wal_dir)
    await replay.start()
    await replay.stop()
    assert not segment_path.exists()
    assert store.query("SELECT count() FROM logs").scalar() == 2
    assert replay.stats["batches_inserted"] == 1
