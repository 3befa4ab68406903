"""A store outage: ingest keeps acknowledging into the WAL up to its bound, then answers 429
with Retry-After; when the store is back the WAL drains and every line lands once."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app

from tests.ingest.faults import FlakyStore

WAL_MAX = 300_000
LINES = 200


def body(request: int) -> bytes:
    return b"\n".join(orjson.dumps({"msg": f"r{request} l{i}", "n": f"{request}-{i}", "pad": "x" * 60})
                      for i in range(LINES))


@pytest.fixture
async def flaky_client(aiohttp_client, store, tmp_path):
    flaky = FlakyStore(store)
    settings = Settings.from_values(
        {"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20, "wal_max_bytes": WAL_MAX}
    )
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=flaky))
    yield client, flaky
    flaky.failing.clear()


async def wait_for(predicate, tries: int = 400, pause: float = 0.05) -> bool:
    for _ in range(tries):
        if predicate():
            return True
        await asyncio.sleep(pause)
    return predicate()


async def test_while_the_store_is_down_the_wal_takes_lines_up_to_its_bound_then_429(flaky_client, store):
    client, flaky = flaky_client
    batcher = client.app[BATCHER]
    flaky.failing.set()

    accepted = []
    refused = None
    for request in range(100):
        resp = await client.post("/api/v1/logs", data=body(request))
        assert batcher.wal.bytes <= WAL_MAX
        if resp.status == 429:
            refused = resp
            break
        assert resp.status == 200, await resp.text()
        accepted.append(request)
    assert refused is not None, "a WAL at its bound must refuse"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "write-ahead log is full" in (await refused.json())["error"]
    assert len(accepted) >= 3
    assert await wait_for(lambda: flaky.failures >= 2), "inserts are retried while the store is down"
    assert store.query("SELECT count() FROM logs").scalar() == 0

    metrics = await (await client.get("/metrics")).text()
    assert 'flightlog_ingest_throttled_total{reason="wal_full"} 1' in metrics
    assert "flightlog_ingest_store_failing 1" in metrics

    # The store comes back: the WAL drains, and ingest takes lines again.
    flaky.failing.clear()
    assert await wait_for(lambda: batcher.wal.bytes == 0), "the WAL drains once the store is back"
    resp = await client.post("/api/v1/logs", data=body(1000))
    assert resp.status == 200
    await batcher.flush()
    accepted.append(1000)

    counts = dict(store.query("SELECT attrs['n'], count() FROM logs GROUP BY 1").rows)
    expected = {f"{r}-{i}" for r in accepted for i in range(LINES)}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
