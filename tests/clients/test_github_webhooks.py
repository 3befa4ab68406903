"""GitHub webhooks end to end: GitHub's own example payloads (@octokit/webhooks-examples), signed by
GitHub's own signing code (@octokit/webhooks-methods), posted by node to a real flightlog server
(ingest and query in one app on a real port), read back through the builds and deploys API."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from flightlog.schema.hook_secrets import HookFile, new_hook_secret
from flightlog.web.server import create_app

JS = Path(__file__).with_name("js")
ACME_SECRET = "acme-webhook-secret-0123456789abcdef"
GLOBEX_SECRET = "globex-webhook-secret-fedcba9876543210"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(not (JS / "node_modules" / "@octokit" / "webhooks-examples").is_dir(),
                       reason="run `npm ci` in tests/clients/js first"),
]


@pytest.fixture
async def server(store, settings):
    hooks = HookFile(settings.data_dir)
    hooks.add(new_hook_secret("acme", "github", ACME_SECRET))
    hooks.add(new_hook_secret("globex", "github", GLOBEX_SECRET))
    app = create_app(settings, store=store)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def deliver(url: str, *deliveries: dict) -> list[dict]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(JS / "github_deliver.mjs"), json.dumps({"url": url, "deliveries": list(deliveries)}),
        cwd=JS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode()[-3000:]
    return [json.loads(line) for line in out.decode().splitlines()]


async def get(url: str, path: str, expect: int = 200) -> dict:
    # The server runs open on loopback, as the one tenant "default"; the webhook tenants' records
    # are read with build_records.summary, the function behind /api/v1/builds/{id}.
    async with aiohttp.ClientSession() as session, session.get(url + path) as resp:
        body = await resp.json()
        assert resp.status == expect, body
        return body


def _records(store, tenant: str) -> list[tuple]:
    return store.query(
        "SELECT id, status, repo, url FROM build_events WHERE tenant = {t:String} ORDER BY id, ts",
        {"t": tenant},
    ).rows


async def test_a_failed_workflow_run_becomes_a_failed_build_record_with_its_link(server, store):
    # GitHub's example "completed" run, its conclusion turned to failure (the examples have no failed run)
    results = await deliver(
        server,
        {"event": "workflow_run", "index": 3, "secret": ACME_SECRET},  # run 289782451 requested: queued
        {"event": "workflow_run", "index": 1, "secret": ACME_SECRET,  # the same run, completed
         "patch": {"workflow_run": {"conclusion": "failure"}}},
    )
    assert [r["status"] for r in results] == [200, 200], results
    from flightlog.query.build_records import summary

    queued_run, failed_run = results[0]["body"]["builds"][0], results[1]["body"]["builds"][0]
    body = summary(store, "acme", "build", failed_run)
    rec = body["record"]
    assert body["status"] == "failure" and rec["status"] == "failure"
    assert rec["url"].startswith("https://github.com/") and f"/actions/runs/{failed_run}" in rec["url"]
    assert rec["repo"] and rec["branch"] and len(rec["commit"]) == 40 and rec["pipeline"]
    assert rec["finished_ts"] is not None
    assert queued_run == failed_run
    assert [h["status"] for h in rec["history"]] == ["queued", "failure"]
    # nothing for the default tenant: the secret that signed it said whose build it is
    assert _records(store, "default") == []


async def test_workflow_jobs_and_check_runs_and_deployments_from_the_examples_are_stored(server, store):
    results = await deliver(
        server,
        {"event": "workflow_job", "index": 0, "secret": ACME_SECRET},  # in_progress
        {"event": "workflow_job", "index": 1, "secret": ACME_SECRET},  # completed failure
        {"event": "check_run", "index": 1, "secret": ACME_SECRET},  # completed failure
        {"event": "deployment", "index": 0, "secret": ACME_SECRET},
        {"event": "deployment_status", "index": 0, "secret": ACME_SECRET},  # success
        {"event": "ping", "index": 0, "secret": ACME_SECRET},
    )
    assert [r["status"] for r in results] == [200] * 6, results
    assert results[-1]["body"]["ok"] is True and results[-1]["body"]["zen"]
    from flightlog.query.build_records import summary

    job_build = results[1]["body"]["builds"][0]
    rec = summary(store, "acme", "build", job_build)["record"]
    assert {j["name"]: j["status"] for j in rec["jobs"]}.get("linters") == "failure"
    # a failed job does not end its run: the run's own completion does
    assert rec["status"] in ("running", "")
    check = summary(store, "acme", "build", results[2]["body"]["builds"][0])
    assert check["status"] == "failure" and check["record"]["url"].startswith("https://github.com/")
    deploy_id = results[4]["body"]["deploys"][0]
    deploy = summary(store, "acme", "deploy", deploy_id)
    assert deploy["status"] == "success"
    assert [h["status"] for h in deploy["record"]["history"]] == ["queued", "success"]
    assert deploy["record"]["environment"] == "production"


async def test_forged_unsigned_and_wrongly_signed_deliveries_are_refused_and_nothing_is_stored(server, store):
    results = await deliver(
        server,
        {"event": "workflow_run", "index": 1, "secret": ACME_SECRET, "forge": True},
        {"event": "workflow_run", "index": 1},  # unsigned
        {"event": "workflow_run", "index": 1, "secret": "not-the-secret-of-anyone-here"},
    )
    assert [r["status"] for r in results] == [401, 401, 401]
    assert "does not match" in results[0]["body"]["error"]
    assert "no X-Hub-Signature-256" in results[1]["body"]["error"]
    assert store.query("SELECT count() FROM build_events").rows[0][0] == 0


async def test_tenants_stay_apart_when_two_share_a_run_id(server, store):
    from flightlog.query.build_records import summary

    results = await deliver(
        server,
        {"event": "workflow_run", "index": 1, "secret": ACME_SECRET},
        {"event": "workflow_run", "index": 1, "secret": GLOBEX_SECRET,
         "patch": {"workflow_run": {"conclusion": "failure"}}},
    )
    run = results[0]["body"]["builds"][0]
    assert results[1]["body"]["builds"] == [run]
    assert summary(store, "acme", "build", run)["status"] == "success"
    assert summary(store, "globex", "build", run)["status"] == "failure"
    # the open server's own tenant sees neither
    await get(server, f"/api/v1/builds/{run}", expect=404)


async def test_a_redelivered_webhook_is_one_event_in_the_history(server, store):
    from flightlog.query.build_records import summary

    same = {"event": "workflow_run", "index": 1, "secret": ACME_SECRET, "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    results = await deliver(server, same, same)
    run = results[0]["body"]["builds"][0]
    assert [h["status"] for h in summary(store, "acme", "build", run)["record"]["history"]] == ["success"]
    assert len(store.query("SELECT event_key FROM build_events LIMIT 1 BY event_key").rows) == 1
