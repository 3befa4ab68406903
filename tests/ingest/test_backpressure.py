"""A sender faster than the store: ingest answers 429 and its memory and WAL stay bounded."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest
from flightlog.ingest.backpressure import BUDGET
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app

from tests.ingest.faults import FlakyStore

WAL_MAX = 8 * 1024 * 1024
INFLIGHT_MAX = 4 * 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def body(request: int, lines: int = 2000) -> bytes:
    return b"\n".join(orjson.dumps({"msg": f"r{request} l{i} " + "y" * 200, "service": "fast"}) for i in range(lines))


@pytest.fixture
async def slow_client(aiohttp_client, store, tmp_path):
    slow = FlakyStore(store)
    settings = Settings.from_values({
        "data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20,
        "wal_max_bytes": WAL_MAX, "ingest_max_inflight_bytes": INFLIGHT_MAX,
    })
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=slow))
    yield client, slow
    slow.failing.clear()


async def test_a_sender_faster_than_the_store_gets_429s_and_memory_stays_bounded(slow_client, store):
    client, slow = slow_client
    slow.failing.set()  # the store takes nothing: every accepted byte stays in the WAL
    batcher = client.app[BATCHER]
    payloads = [body(i) for i in range(8)]  # ~0.5 MB each
    offered = 0
    statuses: dict[int, int] = {}
    peak_wal = 0
    baseline = rss_bytes()
    peak_rss = baseline

    async def send(i: int) -> None:
        nonlocal offered, peak_wal, peak_rss
        data = payloads[i % len(payloads)]
        resp = await client.post("/api/v1/logs", data=data)
        await resp.read()
        offered += len(data)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        if resp.status == 429:
            assert resp.headers["Retry-After"]
        peak_wal = max(peak_wal, batcher.wal.bytes)
        peak_rss = max(peak_rss, rss_bytes())

    # 16 concurrent senders, 25 rounds: ~200 MB offered against an 8 MB WAL.
    for round_ in range(25):
        await asyncio.gather(*(send(round_ * 16 + k) for k in range(16)))

    assert offered > 20 * WAL_MAX
    assert statuses.get(200, 0) > 0 and statuses.get(429, 0) > 0, statuses
    assert peak_wal <= WAL_MAX
    assert client.app[BUDGET].peak <= INFLIGHT_MAX + 1
    # Memory does not grow with what was offered: well under the 200 MB sent.
    assert peak_rss - baseline < 100 * 1024 * 1024, (peak_rss - baseline) / 1e6
    metrics = await (await client.get("/metrics")).text()
    assert 'flightlog_ingest_throttled_total{reason="memory"}' in metrics
    assert 'flightlog_ingest_requests_total{status="429"}' in metrics


async def test_too_many_bodies_in_flight_are_refused_before_they_are_read(slow_client):
    client, slow = slow_client
    slow.insert_delay = 0.0
    data = body(0, lines=4000)  # ~0.9 MB: five fit the 4 MB budget
    results = await asyncio.gather(*(client.post("/api/v1/logs", data=data) for _ in range(12)))
    statuses = sorted(r.status for r in results)
    assert 200 in statuses and 429 in statuses, statuses
    refused = [r for r in results if r.status == 429]
    assert all(r.headers["Retry-After"] == "1" for r in refused)
    assert "in flight" in (await refused[0].json())["error"]


async def test_a_batch_held_back_while_inserts_are_busy_goes_in_when_a_slot_frees(store, tmp_path):
    from flightlog.ingest.batcher import Batcher
    from flightlog.ingest.chunk import Chunk

    slow = FlakyStore(store)
    slow.insert_delay = 0.3
    batcher = Batcher(slow, tmp_path / "wal", max_age_ms=10, inserts_in_flight=1)
    await batcher.start()
    try:
        await batcher.append(Chunk(b'{"msg":"first"}', 1))
        await asyncio.sleep(0.1)  # the first batch is being inserted: the only slot is busy
        await batcher.append(Chunk(b'{"msg":"second"}', 1))
        await batcher.append(Chunk(b'{"msg":"third"}', 1, simple=True))
        for _ in range(200):  # no flush: age and the freed slot alone must get them in
            if store.query("SELECT count() FROM logs").scalar() == 3:
                break
            await asyncio.sleep(0.05)
        assert store.query("SELECT count() FROM logs").scalar() == 3
    finally:
        await batcher.stop()
