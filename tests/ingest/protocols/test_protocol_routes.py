"""The protocol handlers over HTTP: answers in each protocol's own shape, errors as 4xx."""

from __future__ import annotations

import time

import orjson
import pytest
from flightlog.schema.app_state import BATCHER
from flightlog.schema.refusal import Refusal
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app


@pytest.fixture
async def client(store, aiohttp_client, tmp_path):  # store first: it must close after the app
    settings = Settings.from_values(
        {"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20, "max_body_bytes": 100_000}
    )
    return await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))


def _query(client) -> list[dict]:
    from flightlog.schema.app_state import STORE

    return client.app[STORE].query("SELECT message, service, level, build_id FROM logs ORDER BY seq").dicts()


async def test_text_plain_lines_take_their_fields_from_the_request(client):
    resp = await client.post(
        "/api/v1/logs?service=ci&build_id=b-1&level=error",
        data=b"one\ntwo\n",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    assert resp.status == 200 and (await resp.json())["accepted"] == 2
    await client.app[BATCHER].flush()
    assert _query(client) == [
        {"message": "one", "service": "ci", "level": "error", "build_id": "b-1"},
        {"message": "two", "service": "ci", "level": "error", "build_id": "b-1"},
    ]


async def test_loki_push_answers_204_and_ready_200(client):
    body = {"streams": [{"stream": {"job": "j"}, "values": [[str(time.time_ns()), "x"]]}]}
    resp = await client.post("/loki/api/v1/push", json=body)
    assert resp.status == 204
    assert (await client.get("/ready")).status == 200
    resp = await client.post("/loki/api/v1/push", data=b"{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "not valid JSON" in await resp.text()


async def test_otlp_answers_in_the_request_encoding(client):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    resp = await client.post("/v1/logs", data=b"", headers={"Content-Type": "application/x-protobuf"})
    assert resp.status == 200 and resp.content_type == "application/x-protobuf"
    ExportLogsServiceResponse().ParseFromString(await resp.read())
    resp = await client.post("/v1/logs", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 200 and await resp.json() == {}
    resp = await client.post("/v1/logs", data=b"[", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["code"] == 3


async def test_elasticsearch_routes_carry_the_product_header_even_on_errors(client):
    for method, path, data in [
        ("GET", "/", None),
        ("HEAD", "/", None),
        ("GET", "/es", None),
        ("PUT", "/_bulk", b'{"index": {}}\n{"message": "m"}\n'),
        ("POST", "/idx/_bulk", b'{"index": {}}\n{"message": "m"}\n'),
        ("POST", "/es/_bulk", b"garbage\n"),
        ("GET", "/es/_cat/indices", None),
        ("POST", "/_bulk", b""),
    ]:
        resp = await client.request(method, path, data=data, headers={"Content-Type": "application/x-ndjson"})
        assert resp.headers.get("X-Elastic-Product") == "Elasticsearch", (method, path)
        if method == "GET" and resp.status == 200:
            assert (await resp.json())["version"]["number"].startswith("8.")
    resp = await client.post("/idx/_bulk", data=b'{"create": {}}\n{"message": "m"}\n')
    answer = await resp.json()
    assert answer["errors"] is False and answer["items"][0]["create"]["_index"] == "idx"
    resp = await client.post("/_bulk", data=b"garbage\n")
    assert resp.status == 400 and (await resp.json())["error"]["type"] == "illegal_argument_exception"


async def test_a_full_pipeline_answers_429_with_retry_after_in_every_protocol(client, monkeypatch):
    async def full(chunk):
        raise Refusal(429, "ingest is full; retry later")

    monkeypatch.setattr(client.app[BATCHER], "append", full)
    loki = {"streams": [{"stream": {"job": "j"}, "values": [[str(time.time_ns()), "x"]]}]}
    otlp = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}]}
    for path, body, ctype in [
        ("/loki/api/v1/push", orjson.dumps(loki), "application/json"),
        ("/v1/logs", orjson.dumps(otlp), "application/json"),
        ("/_bulk", b'{"index": {}}\n{"message": "m"}\n', "application/x-ndjson"),
    ]:
        resp = await client.post(path, data=body, headers={"Content-Type": ctype})
        assert resp.status == 429, path
        assert resp.headers.get("Retry-After"), path
