"""The generic events API (/api/v1/{builds,deploys}/{id}/events): records with a status history,
refusals that say why and store nothing, ingest keys and tenants; the log-line status synonyms."""

from __future__ import annotations

import asyncio
import re
from importlib import resources

import pytest
from flightlog.ingest.cicd.events import STATUS_SYNONYMS
from flightlog.schema.api_keys import KeyFile, new_key
from flightlog.schema.migrate import apply_migrations
from flightlog.web.server import create_app

from tests.query.data import insert, make_line


@pytest.fixture
async def client(aiohttp_client, settings, store):
    return await aiohttp_client(create_app(settings, store=store))


def _count(store) -> int:
    return store.query("SELECT count() FROM build_events").rows[0][0]


async def _post(client, path, body, expect=200, **kwargs):
    resp = await client.post(path, json=body, **kwargs) if not isinstance(body, bytes) else await client.post(
        path, data=body, **kwargs)
    answer = await resp.json()
    assert resp.status == expect, answer
    return answer


async def test_events_make_a_record_with_its_status_history_and_ci_fields(client):
    fields = {"commit": "9f2c1e0", "branch": "main", "repo": "acme/shop", "pipeline": "ci", "author": "ana",
              "url": "https://jenkins.example/job/shop/812/"}
    await _post(client, "/api/v1/builds/shop-812/events", {"status": "queued", "ts": "2026-11-30T10:00:00Z", **fields})
    await _post(client, "/api/v1/builds/shop-812/events", {"status": "running", "ts": "2026-11-30T10:00:05Z"})
    # delivered late: its own ts puts it in its place
    await _post(client, "/api/v1/builds/shop-812/events", {"status": "failed", "ts": "2026-11-30T10:04:00Z"})
    await _post(client, "/api/v1/builds/shop-812/events", {"status": "running", "ts": "2026-11-30T10:03:00Z"})
    resp = await client.get("/api/v1/builds/shop-812")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "failure" and body["lines"] == 0 and body["log_status"] == ""
    rec = body["record"]
    assert {k: rec[k] for k in fields} == fields
    assert [h["status"] for h in rec["history"]] == ["queued", "running", "failure"]
    assert rec["started_ts"] == "2026-11-30T10:00:05.000000000Z"
    assert rec["finished_ts"] == "2026-11-30T10:04:00.000000000Z"
    deploy = {"status": "success", "environment": "production", "version": "v2.3.1", "ts": 1796212800}
    await _post(client, "/api/v1/deploys/dep-77/events", deploy)
    body = await (await client.get("/api/v1/deploys/dep-77")).json()
    assert (body["status"], body["record"]["environment"], body["record"]["version"]) == (
        "success", "production", "v2.3.1")


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"status": "exploded"}, "not one of queued, running, success, failure, cancelled"),
        ({"status": 3}, "expected a string"),
        ({"status": "success", "colour": "green"}, "unknown field(s) colour"),
        ({"status": "success", "ts": "last tuesday"}, "ts:"),
        ({"status": "success", "ts": 12}, "before 2000"),
        ({"commit": {"sha": "x"}}, "commit: expected a string"),
        (["success"], "one JSON object"),
        (b"{not json", "not JSON"),
    ],
)
async def test_a_bad_event_is_a_400_with_its_reason_and_nothing_is_stored(client, store, body, reason):
    answer = await _post(client, "/api/v1/builds/b1/events", body, expect=400)
    assert reason in answer["error"]
    assert _count(store) == 0


async def test_an_id_that_is_too_long_is_refused(client, store):
    answer = await _post(client, "/api/v1/builds/" + "x" * 300 + "/events", {"status": "success"}, expect=400)
    assert "1 to 256" in answer["error"] and _count(store) == 0


async def test_an_idempotency_key_makes_a_retried_post_one_event(client):
    for _ in range(2):
        await _post(client, "/api/v1/builds/b2/events", {"status": "success"}, headers={"Idempotency-Key": "k-1"})
    body = await (await client.get("/api/v1/builds/b2")).json()
    assert [h["status"] for h in body["record"]["history"]] == ["success"]


async def test_events_need_an_ingest_key_and_land_in_its_tenant(aiohttp_client, settings, store):
    keys = KeyFile(settings.data_dir)
    texts = {}
    for tenant, scope in (("acme", "ingest"), ("globex", "ingest"), ("acme", "read"), ("globex", "read")):
        record, texts[tenant, scope] = new_key(tenant, scope)
        keys.add(record)
    client = await aiohttp_client(create_app(settings, store=store))

    def auth(tenant, scope):
        return {"Authorization": f"Bearer {texts[tenant, scope]}"}

    await _post(client, "/api/v1/builds/b1/events", {"status": "success"}, expect=401)
    await _post(client, "/api/v1/builds/b1/events", {"status": "success"}, expect=403, headers=auth("acme", "read"))
    await _post(client, "/api/v1/builds/b1/events", {"status": "success", "repo": "acme/a"},
                headers=auth("acme", "ingest"))
    await _post(client, "/api/v1/builds/b1/events", {"status": "failure", "repo": "globex/g"},
                headers=auth("globex", "ingest"))
    acme = await (await client.get("/api/v1/builds/b1", headers=auth("acme", "read"))).json()
    globex = await (await client.get("/api/v1/builds/b1", headers=auth("globex", "read"))).json()
    assert (acme["status"], acme["record"]["repo"]) == ("success", "acme/a")
    assert (globex["status"], globex["record"]["repo"]) == ("failure", "globex/g")
    listed = await (await client.get("/api/v1/builds", headers=auth("acme", "read"))).json()
    assert [(b["id"], b["status"], b["repo"]) for b in listed["builds"]] == [("b1", "success", "acme/a")]


def test_the_migration_reads_log_lines_build_status_through_the_same_synonyms():
    sql = resources.files("flightlog.schema").joinpath("migrations/0070_create_build_events_table.sql").read_text()
    # the transform() arrays: lists of two or more quoted words (attrs['…'] lookups have one)
    arrays = re.findall(r"\[('[a-z_]+'(?:,\s*'[a-z_]+')+)\]", sql)
    pairs = [(re.findall(r"'([a-z_]+)'", arrays[i]), re.findall(r"'([a-z_]+)'", arrays[i + 1]))
             for i in range(0, len(arrays), 2)]
    assert len(pairs) == 6  # builds and deploys: the backfill, the view on logs, the view on logs_pending
    for names, values in pairs:
        assert dict(zip(names, values, strict=True)) == STATUS_SYNONYMS


def test_the_migration_backfills_the_statuses_of_lines_stored_before_it(store, settings):
    insert(store, [make_line(build_id="old", attrs={"build.status": "failed"}),
                   make_line(build_id="old", attrs={"status": "200"})])
    # as if 0070 had never run: no view, no events, not recorded
    store.command("DROP VIEW build_events_from_logs_mv")
    store.command("TRUNCATE TABLE build_events")
    store.command("ALTER TABLE schema_migrations DELETE WHERE number = 70 SETTINGS mutations_sync = 1")
    assert "0070_create_build_events_table.sql" in apply_migrations(store, settings.retention_days)
    rows = store.query("SELECT id, status, source FROM build_events").rows
    assert [tuple(r) for r in rows] == [("old", "failure", "log")]
    insert(store, [make_line(build_id="new", attrs={"build_status": "passed"})])  # and the view is back
    assert store.query("SELECT status FROM build_events WHERE id = 'new'").rows == [["success"]]


async def test_a_status_shipped_on_a_line_through_ingest_is_recorded_once(client, store):
    body = (b'{"msg": "deploying", "build_id": "shipped", "build": {"status": "running"}}\n'
            b'{"msg": "GET /health", "build_id": "shipped", "status": "503"}\n'
            b'{"msg": "all green", "build_id": "shipped", "build.status": "passed", "deploy_id": "d-7",'
            b' "deploy.status": "started"}\n')
    resp = await client.post("/api/v1/logs", data=body)
    assert resp.status == 200, await resp.text()
    # acknowledged once in the WAL; the batcher's insert writes the records a moment later
    # (the views of one insert run one after another: the summary may count the lines first)
    for _ in range(200):
        resp = await client.get("/api/v1/builds/shipped")
        summary = await resp.json()
        if resp.status == 200 and summary["lines"] == 3 and len((summary["record"] or {}).get("history", [])) == 2:
            break
        await asyncio.sleep(0.05)
    assert [h["status"] for h in summary["record"]["history"]] == ["running", "success"]
    assert summary["status"] == "success" and summary["lines"] == 3
    assert (await (await client.get("/api/v1/deploys/d-7")).json())["status"] == "running"
    assert store.query("SELECT count() FROM build_events").rows[0][0] == 3
