"""Idempotency-Key: a retried request is stored once per tenant, concurrent retries wait for
the first, a retry after a crash and replay is still recognised, and the shipper (behind
`flightlog send` and the logging handler) reuses one key for every try of a batch."""

from __future__ import annotations

import asyncio
import shutil

import orjson
from flightlog.ingest.shipper import Shipper
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app

from tests.ingest.faults import FlakyStore
from tests.security.conftest import bearer

LINES = 250
FLUSH_TIMEOUT = 60


def body(tag: str) -> bytes:
    return b"\n".join(orjson.dumps({"msg": f"{tag}-{i}", "extra": i}) for i in range(LINES))


async def flushed(app) -> None:
    async with asyncio.timeout(FLUSH_TIMEOUT):
        await app[BATCHER].flush()


def count(store, where: str = "1") -> int:
    return store.query(f"SELECT count() FROM logs WHERE {where}").scalar()


async def test_a_retry_with_the_same_key_is_answered_the_same_and_stored_once(aiohttp_client, settings, store):
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "batch-1"}
    first = await client.post("/api/v1/logs", data=body("x"), headers=headers)
    retry = await client.post("/api/v1/logs", data=body("x"), headers=headers)
    assert first.status == retry.status == 200
    assert await first.json() == await retry.json() == {"accepted": LINES, "rejected": 0, "errors": []}
    assert retry.headers["Idempotent-Replayed"] == "true"
    other = await client.post("/api/v1/logs", data=body("x"), headers={**headers, "Idempotency-Key": "batch-2"})
    assert other.status == 200 and "Idempotent-Replayed" not in other.headers
    await flushed(client.app)
    assert count(store) == 2 * LINES


async def test_concurrent_retries_wait_for_the_first_and_store_nothing_more(aiohttp_client, settings, store):
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "same"}
    answers = await asyncio.gather(*(client.post("/api/v1/logs", data=body("c"), headers=headers) for _ in range(8)))
    assert [a.status for a in answers] == [200] * 8
    assert sum("Idempotent-Replayed" in a.headers for a in answers) == 7
    await flushed(client.app)
    assert count(store) == LINES


async def test_the_same_key_from_two_tenants_is_two_requests(aiohttp_client, settings, store, make_key):
    keys = [make_key(t, "ingest") for t in ("tenant-a", "tenant-b")]
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    for key in keys:
        headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "shared", **bearer(key)}
        resp = await client.post("/api/v1/logs", data=body("t"), headers=headers)
        assert resp.status == 200 and "Idempotent-Replayed" not in resp.headers
    await flushed(client.app)
    assert dict(store.query("SELECT tenant, count() FROM logs GROUP BY tenant").rows) == {
        "tenant-a": LINES, "tenant-b": LINES}


async def test_a_retry_after_a_crash_is_recognised_from_the_replayed_wal(aiohttp_client, store, tmp_path):
    flaky = FlakyStore(store)
    flaky.failing.set()  # the lines stay in the WAL: the crash below comes before the insert
    first = Settings.from_values({"data_dir": str(tmp_path / "first"), "batch_max_age_ms": 20})
    client = await aiohttp_client(create_app(first, roles={"ingest"}, store=flaky))
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "before-the-crash"}
    assert (await client.post("/api/v1/logs", data=body("k"), headers=headers)).status == 200
    # kill -9 (the client never heard the answer): the restart finds the WAL as it was.
    shutil.copytree(first.data_dir / "wal", tmp_path / "second" / "wal")
    second = Settings.from_values({"data_dir": str(tmp_path / "second"), "batch_max_age_ms": 20})
    restarted = await aiohttp_client(create_app(second, roles={"ingest"}, store=store))
    retry = await restarted.post("/api/v1/logs", data=body("k"), headers=headers)
    assert retry.status == 200 and retry.headers["Idempotent-Replayed"] == "true"
    await flushed(restarted.app)
    assert count(store) == LINES
    flaky.failing.clear()


def test_the_shipper_sends_one_key_per_batch_and_the_same_key_on_every_retry(monkeypatch):
    tries: list[str] = []
    answers = iter([(503, 0.0, "wal"), (0, None, "reset"), (200, None, "")])

    def post(self, body: bytes, key: str):
        tries.append(key)
        return next(answers)

    monkeypatch.setattr(Shipper, "_post", post)
    shipper = Shipper("http://127.0.0.1:9", batch_lines=2, batch_seconds=0.01, max_retry_seconds=30)
    shipper.put({"msg": "a"})
    shipper.put({"msg": "b"})
    assert shipper.flush(timeout=30)
    answers = iter([(200, None, "")])
    shipper.put({"msg": "c"})
    shipper.put({"msg": "d"})
    assert shipper.flush(timeout=30)
    shipper.close(timeout=5)
    assert len(tries) == 4 and tries[0] == tries[1] == tries[2] != tries[3]
    assert shipper.sent == 4
