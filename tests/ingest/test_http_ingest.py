"""POST /api/v1/logs over real HTTP: answers, per-line errors, compression and limits."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app


@pytest.fixture
async def client(store, aiohttp_client, tmp_path):
    settings = Settings.from_values(
        {"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20, "max_body_bytes": 200_000,
         "max_line_bytes": 2_000, "max_attributes": 10}
    )
    app = create_app(settings, roles={"ingest"}, store=store)
    return await aiohttp_client(app)


async def landed(client, store) -> list[dict]:
    await client.app[BATCHER].flush()
    return store.query("SELECT message, service, host, build_id FROM logs ORDER BY seq").dicts()


def ndjson(*lines) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines)


async def test_good_lines_are_accepted_and_bad_lines_reported_by_number(client, store):
    body = ndjson({"msg": "one"}, b"{not json", {"msg": "three"}, b"[1,2]", b"", {"msg": "six"}, b'"just a string"')
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status == 200
    answer = await resp.json()
    assert answer["accepted"] == 3
    assert answer["rejected"] == 3
    assert [e["line"] for e in answer["errors"]] == [2, 4, 7]
    assert "invalid JSON" in answer["errors"][0]["error"]
    assert "JSON object" in answer["errors"][1]["error"]
    assert [r["message"] for r in await landed(client, store)] == ["one", "three", "six"]


async def test_a_request_with_no_good_line_is_400_and_lists_every_error(client, store):
    resp = await client.post("/api/v1/logs", data=b"nope\nalso nope\n")
    assert resp.status == 400
    answer = await resp.json()
    assert answer["accepted"] == 0 and answer["rejected"] == 2
    assert [e["line"] for e in answer["errors"]] == [1, 2]


async def test_at_most_100_errors_are_listed_but_all_are_counted(client, store):
    body = b"\n".join([b"bad"] * 150 + [b'{"msg":"ok"}'])
    answer = await (await client.post("/api/v1/logs", data=body)).json()
    assert answer["rejected"] == 150
    assert len(answer["errors"]) == 100
    assert len(await landed(client, store)) == 1


async def test_a_json_array_body_is_accepted(client, store):
    body = orjson.dumps([{"msg": "a"}, {"msg": "b"}, 3])
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Type": "application/json"})
    answer = await resp.json()
    assert (answer["accepted"], answer["rejected"], answer["errors"][0]["line"]) == (2, 1, 3)
    assert [r["message"] for r in await landed(client, store)] == ["a", "b"]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("zstd", zstd.compress)],
)
async def test_compressed_bodies_are_accepted(client, store, encoding, compress):
    body = compress(ndjson(*({"msg": f"m{i}"} for i in range(100))))
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Encoding": encoding})
    assert (await resp.json())["accepted"] == 100
    assert len(await landed(client, store)) == 100


async def test_a_truncated_gzip_body_is_a_clear_400(client, store):
    body = gzip.compress(ndjson(*({"msg": f"m{i}"} for i in range(1000))))[:-200]
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Encoding": "gzip"})
    assert resp.status == 400
    assert "gzip" in (await resp.json())["error"]


async def test_a_body_over_the_limit_after_decompression_is_413(client, store):
    body = gzip.compress(b'{"msg":"' + b"x" * 1000 + b'"}\n' * 0 + b"\n".join([b'{"msg":"' + b"x" * 500 + b'"}'] * 500))
    assert len(body) < 200_000
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Encoding": "gzip"})
    assert resp.status == 413
    assert "200000 bytes" in (await resp.json())["error"]
    assert await landed(client, store) == []


async def test_a_line_over_the_line_limit_is_rejected_alone(client, store):
    body = ndjson({"msg": "x" * 3000}, {"msg": "short"})
    answer = await (await client.post("/api/v1/logs", data=body)).json()
    assert answer["accepted"] == 1
    assert answer["errors"][0]["line"] == 1
    assert "limit is 2000" in answer["errors"][0]["error"]


async def test_a_line_with_too_many_attributes_is_rejected_alone(client, store):
    wide = {"msg": "wide", **{f"k{i}": i for i in range(100)}}
    answer = await (await client.post("/api/v1/logs", data=ndjson(wide, {"msg": "narrow"}))).json()
    assert answer["accepted"] == 1
    assert "attributes" in answer["errors"][0]["error"]


@pytest.mark.parametrize(
    ("timestamp", "why"),
    [(-5, "before 1970"), ("yesterday", "not a timestamp"), (1e30, "the latest time the store can keep"), (True, "boolean")],
)
async def test_impossible_timestamps_are_rejected_with_the_reason(client, store, timestamp, why):
    answer = await (await client.post("/api/v1/logs", data=ndjson({"msg": "x", "ts": timestamp}))).json()
    assert answer["rejected"] == 1
    assert why in answer["errors"][0]["error"]


async def test_an_empty_body_is_a_clear_400(client, store):
    resp = await client.post("/api/v1/logs", data=b"")
    assert resp.status == 400
    assert "empty body" in (await resp.json())["error"]


async def test_defaults_come_from_query_parameters_and_headers(client, store):
    headers = {"X-Flightlog-Service": "from-header", "X-Flightlog-Host": "h-header", "X-Flightlog-Build-Id": "b-header"}
    await client.post("/api/v1/logs?service=from-param", data=ndjson({"msg": "m"}), headers=headers)
    [row] = await landed(client, store)
    assert (row["service"], row["host"], row["build_id"]) == ("from-param", "h-header", "b-header")


async def test_lines_are_queryable_soon_after_the_answer(client, store):
    await client.post("/api/v1/logs", data=ndjson({"msg": "soon"}))
    # No flush: the batcher's age limit alone must get the line in.
    import asyncio

    for _ in range(100):
        if store.query("SELECT count() FROM logs").scalar() == 1:
            break
        await asyncio.sleep(0.05)
    assert store.query("SELECT count() FROM logs").scalar() == 1
