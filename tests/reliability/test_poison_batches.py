"""A line the store refuses for its content does not stall ingest: its batch is bisected, the
line goes to the quarantine (counted in /metrics, listed per tenant in the API and the UI),
and every other line of the batch is stored once, on a replay too."""

from __future__ import annotations

import asyncio
import time

import orjson
from flightlog.web.server import create_app

from tests.security.conftest import bearer, wait_for_rows

# A key twice: the engine's JSON reader refuses the line (and with it its whole batch). The
# parsers keep such lines off the engine's reader now, so it is planted in a segment by hand.
POISON = b'{"msg":"poison","msg":"twice"}'
# A time past what the store can hold: the parser refuses it for its line (once, the engine
# failed the whole batch on it, forever).
HTTP_POISON = b'{"msg":"poison","time":"99999999999999999999999999"}'


def segment(chunks: list[tuple[str, list[bytes]]]) -> bytes:
    """A WAL segment written by hand, in the batcher's format (a header, then tagged lines)."""
    out = []
    for n, (tenant, lines) in enumerate(chunks, start=1):
        out.append(b'{"\\u0001h":1,' + orjson.dumps(
            {"n": n, "tenant": tenant, "observed": time.time_ns(), "defaults": {}, "c": len(lines)})[1:])
        out += [b'{"\\u0001c":%d,' % n + line[1:] for line in lines]
    return b"\n".join(out) + b"\n"


def good(tenant: str, count: int) -> list[bytes]:
    return [orjson.dumps({"msg": f"{tenant}-{i}", "attrs": {"i": str(i)}}) for i in range(count)]


async def test_a_poison_line_replayed_from_the_wal_is_quarantined_and_the_rest_of_its_batch_stored(
    aiohttp_client, settings, store, make_key
):
    wal = settings.data_dir / "wal"
    wal.mkdir(parents=True)
    lines_a = good("a", 500)
    lines_a.insert(317, POISON)
    (wal / "0000000000000001-0badf00d-f.ndjson").write_bytes(segment([("tenant-a", lines_a), ("tenant-b", good("b", 400))]))
    read_a, read_b = make_key("tenant-a", "read"), make_key("tenant-b", "read")
    client = await aiohttp_client(create_app(settings, store=store))

    assert await wait_for_rows(store, "SELECT count() FROM logs", 900, timeout=150) == 900
    counts = dict(store.query("SELECT tenant, count() FROM logs GROUP BY tenant").rows)
    assert counts == {"tenant-a": 500, "tenant-b": 400}
    assert store.query("SELECT count() FROM logs WHERE message = 'poison'").scalar() == 0

    answer = await (await client.get("/api/v1/quarantine", headers=bearer(read_a))).json()
    assert answer["total"] == 1
    assert answer["lines"][0]["raw"].encode() == POISON
    assert "Duplicate field" in answer["lines"][0]["reason"]
    other = await (await client.get("/api/v1/quarantine", headers=bearer(read_b))).json()
    assert other == {"total": 0, "lines": []}, "a tenant sees only its own quarantined lines"

    # The pipeline-wide counter is for operators (an admin key); a tenant reads its own list above.
    admin = make_key("tenant-a", "admin")
    metrics = await (await client.get("/metrics", headers=bearer(admin))).text()
    assert "flightlog_ingest_lines_quarantined_total 1" in metrics
    page = await (await client.get("/quarantine", headers=bearer(read_a))).text()
    assert "twice" in page


async def test_a_poison_line_sent_over_http_does_not_stop_other_tenants_lines(aiohttp_client, settings, store, make_key):
    """Whether the parser refuses it (400 for that line) or the store does (quarantine), the
    other lines of the request and of every other tenant are stored, and ingest goes on."""
    keys = {t: make_key(t, "ingest") for t in ("tenant-a", "tenant-b")}
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    headers = {"Content-Type": "application/x-ndjson"}
    body_a = b"\n".join(good("a", 200) + [HTTP_POISON] + good("a2", 200))
    answers = await asyncio.gather(
        client.post("/api/v1/logs", data=body_a, headers={**headers, **bearer(keys["tenant-a"])}),
        client.post("/api/v1/logs", data=b"\n".join(good("b", 300)), headers={**headers, **bearer(keys["tenant-b"])}),
    )
    assert [a.status for a in answers] == [200, 200]
    assert await wait_for_rows(store, "SELECT count() FROM logs", 700, timeout=150) == 700
    later = await client.post("/api/v1/logs", data=b"\n".join(good("c", 50)), headers={**headers, **bearer(keys["tenant-b"])})
    assert later.status == 200
    assert await wait_for_rows(store, "SELECT count() FROM logs", 750, timeout=150) == 750
    assert dict(store.query("SELECT tenant, count() FROM logs GROUP BY tenant").rows) == {"tenant-a": 400, "tenant-b": 350}
