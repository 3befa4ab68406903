"""A disk that fills up mid-write: the request is answered 503 and none of its lines is ever
stored; once space returns, other tenants' acknowledged lines survive a kill and a replay
under their own tenant; /readyz says not ready while the WAL cannot write."""

from __future__ import annotations

import asyncio
import shutil

import orjson
import pytest
from flightlog.ingest import wal as wal_module
from flightlog.ingest.batcher import Batcher
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app

from tests.ingest.faults import FlakyStore
from tests.reliability.faults import FullDisk
from tests.security.conftest import bearer

LINES = 300
FLUSH_TIMEOUT = 60  # a stalled inserter fails the test instead of hanging it


def body(tenant: str, simple: bool) -> bytes:
    """Unique, tenant-named lines; `simple` ones go to flat segments, the others to general ones."""
    rows = []
    for i in range(LINES):
        row = {"msg": f"{tenant}-{i}", "service": "svc"}
        if not simple:
            row["extra"] = {"n": i}
        rows.append(orjson.dumps(row))
    return b"\n".join(rows)


def stored(store) -> dict[str, set[str]]:
    by_tenant: dict[str, set[str]] = {}
    for tenant, message in store.query("SELECT tenant, message FROM logs").rows:
        by_tenant.setdefault(tenant, set()).add(message)
    return by_tenant


@pytest.fixture
def full_disk(monkeypatch):
    disk = FullDisk()
    monkeypatch.setattr(wal_module, "os", disk)
    return disk


@pytest.mark.parametrize("simple", [True, False], ids=["flat segment", "general segment"])
@pytest.mark.parametrize("truncate_fails", [False, True], ids=["cut back", "torn write stays"])
async def test_after_a_failed_write_a_replay_keeps_each_tenants_acknowledged_lines_under_that_tenant(
    aiohttp_client, store, tmp_path, make_key, full_disk, simple, truncate_fails
):
    settings = Settings.from_values({"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 5000})
    keys = {t: make_key(t, "ingest") for t in ("tenant-a", "tenant-b", "tenant-c")}
    flaky = FlakyStore(store)
    flaky.failing.set()  # nothing leaves the WAL: the kill below finds every segment on disk
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=flaky))
    headers = {"Content-Type": "application/x-ndjson"}

    ok = await client.post("/api/v1/logs", data=body("tenant-a-ok", simple), headers={**headers, **bearer(keys["tenant-a"])})
    assert ok.status == 200

    full_disk.full, full_disk.truncate_fails = True, truncate_fails
    refused = await client.post("/api/v1/logs", data=body("tenant-a", simple), headers={**headers, **bearer(keys["tenant-a"])})
    assert refused.status == 503, await refused.text()
    assert full_disk.failed_writes >= 1
    assert (await client.get("/readyz")).status == 503, "not ready while the WAL cannot write"

    full_disk.full = False  # space returns
    assert (await client.get("/readyz")).status == 200
    for tenant in ("tenant-b", "tenant-c"):
        resp = await client.post("/api/v1/logs", data=body(tenant, simple), headers={**headers, **bearer(keys[tenant])})
        assert resp.status == 200, await resp.text()

    # kill -9 now: what is on disk is all a restart finds.
    killed = tmp_path / "wal-at-kill"
    shutil.copytree(settings.data_dir / "wal", killed)
    assert stored(store) == {}

    replay = Batcher(store, killed, max_age_ms=10)
    await replay.start()
    async with asyncio.timeout(FLUSH_TIMEOUT):
        await replay.flush()
    await replay.stop()

    want = {t: {f"{t}-{i}" for i in range(LINES)} for t in ("tenant-b", "tenant-c")}
    want["tenant-a"] = {f"tenant-a-ok-{i}" for i in range(LINES)}
    assert stored(store) == want, "each acknowledged line once, under its own tenant; none of the 503 request"
    flaky.failing.clear()


async def test_a_torn_write_does_not_stall_the_inserter_while_the_server_runs(
    aiohttp_client, store, tmp_path, full_disk
):
    settings = Settings.from_values({"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20})
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    headers = {"Content-Type": "application/x-ndjson"}
    full_disk.full = full_disk.truncate_fails = True
    assert (await client.post("/api/v1/logs", data=body("lost", True), headers=headers)).status == 503
    full_disk.full = False
    assert (await client.post("/api/v1/logs", data=body("after", True), headers=headers)).status == 200
    async with asyncio.timeout(FLUSH_TIMEOUT):
        await client.app[BATCHER].flush()
    assert stored(store) == {"default": {f"after-{i}" for i in range(LINES)}}
    assert client.app[BATCHER].wal.segments == 0, "the torn segment is inserted (without its torn chunk) and deleted"
