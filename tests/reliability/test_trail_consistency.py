"""Search never runs ahead of the trail: a line is in its trail and its summary no later than it
is searchable, while large concurrent bodies are being inserted and once they are in.

Four concurrent gzip bodies of many builds and deploys go through real HTTP, on both insert
paths (simple lines: the flat JSONEachRow segments; lines with attributes: the general ones,
which OTLP and Loki use too), with small batches and two inserts in flight so many inserts
overlap. A probe thread reads the store all along: first what search sees (`logs`), then the
trail and summary tables, so any line searchable before its trail shows as a shortfall.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time

import orjson
import pytest
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app

BODIES = 4
LINES_PER_BODY = 50_000
BUILDS = 200
DEPLOYS = 20
DAY_NS = 86_400 * 10**9
# Lines spread over the last three days (well inside the retention): every insert writes
# several partitions (parts) of logs.
START_NS = time.time_ns() - 3 * DAY_NS
POST_TIMEOUT_S = 300
PROBE_PAUSE_S = 0.02


def body(number: int, with_attributes: bool) -> bytes:
    lines = []
    for i in range(LINES_PER_BODY):
        n = number * LINES_PER_BODY + i
        line = {
            "ts": START_NS + (n % 3) * DAY_NS + n,
            "msg": f"body {number} line {i}",
            "service": f"svc-{n % 5}",
            "host": f"host-{n % 13}",
            "level": "error" if n % 97 == 0 else "info",
            "build_id": f"b{n % BUILDS}",
            "deploy_id": f"d{n % DEPLOYS}",
        }
        if with_attributes:
            line["attempt"] = {"n": i % 3}  # an object: not a simple line
        lines.append(orjson.dumps(line))
    return gzip.compress(b"\n".join(lines), compresslevel=1)


def counts_by_id(store, sql: str) -> dict[tuple[str, str], int]:
    return {(kind, ident): int(n) for kind, ident, n in store.query(sql).rows}


SEARCHABLE = (
    "SELECT 'build', build_id, count() FROM logs WHERE build_id != '' GROUP BY build_id "
    "UNION ALL SELECT 'deploy', deploy_id, count() FROM logs WHERE deploy_id != '' GROUP BY deploy_id"
)
TRAIL = "SELECT kind, id, count() FROM trail_lines GROUP BY kind, id"
SUMMARY = "SELECT kind, id, sum(lines) FROM id_summary GROUP BY kind, id"
HOSTS = "SELECT kind, id, sum(lines) FROM id_hosts GROUP BY kind, id"


def shortfalls(searchable, others: dict[str, dict]) -> list[str]:
    found = []
    for key, n in searchable.items():
        for table, counts in others.items():
            if counts.get(key, 0) < n:
                found.append(f"{key[0]} {key[1]}: {n} searchable, {counts.get(key, 0)} in {table}")
    return found


class Probe(threading.Thread):
    """Reads what search sees, then the trail and summaries, until stopped."""

    def __init__(self, store) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.stop = threading.Event()
        self.searchable_totals: list[int] = []
        self.violations: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                # Search first: every table only grows, so a later read of the trail holds at
                # least what it held when search was read.
                searchable = counts_by_id(self.store, SEARCHABLE)
                others = {name: counts_by_id(self.store, sql)
                          for name, sql in (("trail_lines", TRAIL), ("id_summary", SUMMARY), ("id_hosts", HOSTS))}
                self.searchable_totals.append(sum(n for (kind, _), n in searchable.items() if kind == "build"))
                self.violations += shortfalls(searchable, others)[:3]
                time.sleep(PROBE_PAUSE_S)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


@pytest.fixture
async def client(store, aiohttp_client, tmp_path):
    settings = Settings.from_values({
        "data_dir": str(tmp_path / "data"),
        "batch_max_lines": 20_000,
        "batch_max_age_ms": 50,
        "inserts_in_flight": 2,
    })
    app = create_app(settings, roles={"ingest", "query"}, store=store)
    return await aiohttp_client(app)


async def post(client, data: bytes) -> None:
    resp = await client.post("/api/v1/logs", data=data, headers={
        "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["accepted"] == LINES_PER_BODY


@pytest.mark.parametrize("with_attributes", [False, True], ids=["flat-segments", "general-segments"])
async def test_no_line_is_searchable_before_its_trail_and_summary_hold_it(client, store, with_attributes):
    bodies = [body(n, with_attributes) for n in range(BODIES)]
    probe = Probe(store)
    probe.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(post(client, b) for b in bodies)), POST_TIMEOUT_S)
        await asyncio.wait_for(client.app[BATCHER].flush(), POST_TIMEOUT_S)
    finally:
        probe.stop.set()
        await asyncio.to_thread(probe.join, 60)
    assert probe.error is None, f"the probe failed: {probe.error!r}"
    total = BODIES * LINES_PER_BODY
    assert any(0 < n < total for n in probe.searchable_totals), (
        "the probe never saw a partly inserted state; it checked nothing"
    )
    assert not probe.violations, f"searchable before its trail or summary: {probe.violations[:10]}"

    # Once the inserts have returned, every read path agrees for every id.
    searchable = counts_by_id(store, SEARCHABLE)
    assert sum(n for (kind, _), n in searchable.items() if kind == "build") == total
    assert len(searchable) == BUILDS + DEPLOYS
    for table, sql in (("trail_lines", TRAIL), ("id_summary", SUMMARY), ("id_hosts", HOSTS)):
        assert counts_by_id(store, sql) == searchable, f"{table} disagrees with logs"
    # And the build page's API says the same as search for a few of them.
    for build in ("b0", "b77", f"b{BUILDS - 1}"):
        resp = await client.get(f"/api/v1/builds/{build}")
        assert resp.status == 200
        assert (await resp.json())["lines"] == searchable[("build", build)]


def test_logs_pending_has_the_structure_of_logs(store):
    """Moving partitions needs identical columns, keys, indexes and TTL: a migration that
    changes `logs` must change `logs_pending` too, or every publish fails."""
    def shape(table: str) -> str:
        return store.query(f"SHOW CREATE TABLE {table}").scalar().replace(f".{table}\n", ".T\n")

    assert shape("logs_pending") == shape("logs")


async def test_a_batch_inserted_but_not_yet_published_lands_once_on_replay(store, tmp_path, monkeypatch):
    """The crash window between the insert into logs_pending and the move into logs: the
    replay's insert is dropped by its token in logs_pending and in every view, and the move
    then publishes the lines of the first insert, once."""
    from flightlog.ingest.batcher import Batcher
    from flightlog.ingest.chunk import Chunk
    from flightlog.schema import publish

    wal_dir = tmp_path / "wal"
    lines = b"\n".join(orjson.dumps({"msg": f"m{i}", "build_id": "once", "deploy_id": "d-once"}) for i in range(300))
    monkeypatch.setattr(publish, "publish_pending", lambda store: 0)  # the process dies before the move
    writer = Batcher(store, wal_dir, max_age_ms=60_000)
    await writer.start()
    await writer.append(Chunk(lines, 300, "default", {}, simple=True))
    path = next(iter(writer._current.values())).path
    kept = path.read_bytes()
    await writer.stop()  # inserts into logs_pending, deletes the segment
    assert store.query("SELECT count() FROM logs").scalar() == 0
    assert store.query("SELECT count() FROM logs_pending").scalar() == 300
    monkeypatch.undo()

    path.write_bytes(kept)  # the segment was never deleted: it is replayed at the next start
    replay = Batcher(store, wal_dir)
    await replay.start()
    await replay.stop()
    assert store.query("SELECT count() FROM logs_pending").scalar() == 0
    assert store.query("SELECT count() FROM logs").scalar() == 300
    assert dict(store.query("SELECT kind, count() FROM trail_lines GROUP BY kind").rows) == {"build": 300, "deploy": 300}
    assert store.query("SELECT sum(lines) FROM id_summary WHERE id = 'once'").scalar() == 300


async def test_a_data_dir_from_before_0050_keeps_its_lines_and_publishes_new_ones(tmp_path):
    """Upgrading: lines stored before migration 0050 stay where they are, in logs and in their
    trail, and lines ingested after it reach logs through logs_pending, counted once."""
    from flightlog.ingest.batcher import Batcher
    from flightlog.ingest.chunk import Chunk
    from flightlog.schema.embedded import EmbeddedStore
    from flightlog.schema.migrate import apply_migrations, load_migrations, template_values

    store = EmbeddedStore(tmp_path / "data")
    try:
        store.command(
            "CREATE TABLE schema_migrations (number UInt32, name String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY number"
        )
        values = template_values(30)
        for migration in load_migrations():
            if migration.number < 50:
                for statement in migration.statements(values):
                    store.command(statement)
                store.insert_rows("schema_migrations", [{"number": migration.number, "name": migration.name}])
        old = [{"ts": "2030-01-01 00:00:00", "observed_ts": "2030-01-01 00:00:00", "seq": i, "tenant": "default",
                "message": f"old {i}", "build_id": "b-up"} for i in range(40)]
        store.insert_rows("logs", old)  # how ingest wrote before 0050

        assert [n for n in apply_migrations(store, 30 * 365) if n.startswith("0050_")]
        batcher = Batcher(store, tmp_path / "wal", max_age_ms=10)
        await batcher.start()
        new = b"\n".join(orjson.dumps({"msg": f"new {i}", "build_id": "b-up"}) for i in range(60))
        await batcher.append(Chunk(new, 60, "default", {}, simple=True))
        await batcher.stop()

        assert store.query("SELECT count() FROM logs WHERE build_id = 'b-up'").scalar() == 100
        assert store.query("SELECT count() FROM trail_lines WHERE id = 'b-up'").scalar() == 100
        assert store.query("SELECT sum(lines) FROM id_summary WHERE id = 'b-up'").scalar() == 100
        assert store.query("SELECT count() FROM logs_pending").scalar() == 0
    finally:
        store.close()


def test_an_insert_whose_move_failed_raises_so_the_batch_is_retried_and_published(store):
    """Acknowledged lines must not sit in logs_pending unseen: when the move fails, the insert
    raises (the batcher retries it); the retry is dropped by its token and its move publishes."""
    from flightlog.schema.publish import Publisher
    from flightlog.schema.store import StoreError

    class RefusesOneMove:
        def __init__(self, inner) -> None:
            self.inner, self.refused = inner, False

        def query(self, *args, **kwargs):
            return self.inner.query(*args, **kwargs)

        def command(self, sql, *args, **kwargs):
            if "MOVE PARTITION" in sql and not self.refused:
                self.refused = True
                raise StoreError("disk trouble")
            return self.inner.command(sql, *args, **kwargs)

    publisher = Publisher(RefusesOneMove(store))
    insert = (
        "INSERT INTO logs_pending (ts, observed_ts, seq, tenant, message, build_id) "
        "SETTINGS insert_deduplicate = 1, deduplicate_blocks_in_dependent_materialized_views = 1, "
        "insert_deduplication_token = 'retry-me' "
        "SELECT now64(9), now64(9), number, 'default', 'm', 'b-retry' FROM numbers(100)"
    )
    with pytest.raises(StoreError, match="not yet moved"):
        publisher.insert(lambda: store.command(insert))
    assert store.query("SELECT count() FROM logs").scalar() == 0
    publisher.insert(lambda: store.command(insert))  # the batcher's retry
    assert store.query("SELECT count() FROM logs").scalar() == 100
    assert store.query("SELECT count() FROM trail_lines WHERE id = 'b-retry'").scalar() == 100
