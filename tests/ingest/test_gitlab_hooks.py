"""GitLab webhooks: pipeline, job and deployment hooks with X-Gitlab-Token, per tenant.

The payloads follow GitLab's documented webhook shapes (docs.gitlab.com, "Webhook events": the
Pipeline, Job and Deployment hooks), cut to the fields flightlog reads plus some it ignores.
No npm or PyPI package ships GitLab's examples, so these are written here, not vendored."""

from __future__ import annotations

import copy

import pytest
from flightlog.query.build_records import summary
from flightlog.schema.hook_secrets import HookFile, new_hook_secret
from flightlog.web.server import create_app

ACME_TOKEN = "acme-gitlab-token-0123456789"
GLOBEX_TOKEN = "globex-gitlab-token-9876543210"

PROJECT = {"id": 30, "name": "shop", "path_with_namespace": "acme/shop", "web_url": "https://gitlab.example/acme/shop",
           "default_branch": "main", "visibility_level": 0}
PIPELINE = {
    "object_kind": "pipeline",
    "object_attributes": {
        "id": 743121198, "iid": 31, "name": "Pipeline for branch: main", "ref": "main", "tag": False,
        "sha": "95d49d1efbd941908580e79d65e4b5ecaf4a8305", "before_sha": "0" * 40, "source": "push",
        "status": "running", "detailed_status": "running", "stages": ["build", "test"],
        "created_at": "2026-11-30 10:00:00 UTC", "finished_at": None, "duration": None, "queued_duration": 3,
        "variables": [], "url": "https://gitlab.example/acme/shop/-/pipelines/743121198",
    },
    "merge_request": None,
    "user": {"id": 1, "name": "Ana Lima", "username": "ana", "email": "[REDACTED]"},
    "project": PROJECT,
    "commit": {"id": "95d49d1efbd941908580e79d65e4b5ecaf4a8305", "message": "Fix the cart total\n\nlong text",
               "title": "Fix the cart total", "timestamp": "2026-11-30T10:59:00+01:00",
               "author": {"name": "Ana Lima", "email": "[REDACTED]"}},
    "builds": [],
}
JOB = {
    "object_kind": "build", "ref": "main", "tag": False, "before_sha": "0" * 40,
    "sha": "95d49d1efbd941908580e79d65e4b5ecaf4a8305", "build_id": 3580121225, "build_name": "rspec 1/2",
    "build_stage": "test", "build_status": "failed", "build_created_at": "2026-11-30 10:00:02 UTC",
    "build_started_at": "2026-11-30 10:00:05 UTC", "build_finished_at": "2026-11-30 10:03:54 UTC",
    "build_duration": 229.5, "build_allow_failure": False, "build_failure_reason": "script_failure",
    "pipeline_id": 743121198, "project_id": 30, "project_name": "Acme / shop",
    "user": {"id": 1, "name": "Ana Lima", "username": "ana"},
    "commit": {"id": 743121198, "sha": "95d49d1efbd941908580e79d65e4b5ecaf4a8305", "message": "Fix the cart total",
               "author_name": "Ana Lima", "status": "running"},
    "repository": {"name": "shop", "homepage": "https://gitlab.example/acme/shop"},
    "environment": None,
}
DEPLOYMENT = {
    "object_kind": "deployment", "status": "success", "status_changed_at": "2026-11-30 11:50:00 +0100",
    "deployment_id": 15, "deployable_id": 796, "deployable_url": "https://gitlab.example/acme/shop/-/jobs/796",
    "environment": "production", "environment_tier": "production", "project": PROJECT, "short_sha": "279484c0",
    "user": {"id": 1, "name": "Ana Lima", "username": "ana"}, "user_url": "https://gitlab.example/ana",
    "commit_url": "https://gitlab.example/acme/shop/-/commit/279484c0", "commit_title": "Add new file", "ref": "v1.4.0",
}


@pytest.fixture
async def client(aiohttp_client, settings, store):
    hooks = HookFile(settings.data_dir)
    hooks.add(new_hook_secret("acme", "gitlab", ACME_TOKEN))
    hooks.add(new_hook_secret("globex", "gitlab", GLOBEX_TOKEN))
    return await aiohttp_client(create_app(settings, store=store))


async def _hook(client, payload, event, token, expect=200):
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": "", "Content-Type": "application/json"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    resp = await client.post("/hooks/gitlab", json=payload, headers=headers)
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def test_a_pipeline_its_jobs_and_its_end_make_one_build_record(client, store):
    await _hook(client, PIPELINE, "Pipeline Hook", ACME_TOKEN)
    body = await _hook(client, JOB, "Job Hook", ACME_TOKEN)
    assert body["builds"] == ["743121198"]
    done = copy.deepcopy(PIPELINE)
    done["object_attributes"].update(status="failed", finished_at="2026-11-30 10:04:10 UTC")
    await _hook(client, done, "Pipeline Hook", ACME_TOKEN)
    build = summary(store, "acme", "build", "743121198")
    rec = build["record"]
    assert build["status"] == "failure"
    assert [h["status"] for h in rec["history"]] == ["running", "failure"]
    assert (rec["repo"], rec["branch"], rec["author"], rec["pipeline"]) == ("acme/shop", "main", "Ana Lima", "gitlab-ci")
    assert rec["url"] == "https://gitlab.example/acme/shop/-/pipelines/743121198"
    assert rec["detail"] == "Fix the cart total"
    assert rec["jobs"] == [{"name": "rspec 1/2", "status": "failure", "ts": "2026-11-30T10:03:54.000000000Z"}]
    assert rec["finished_ts"] == "2026-11-30T10:04:10.000000000Z"


async def test_a_deployment_hook_makes_a_deploy_record_in_the_tokens_tenant(client, store):
    body = await _hook(client, DEPLOYMENT, "Deployment Hook", GLOBEX_TOKEN)
    assert body["deploys"] == ["15"]
    deploy = summary(store, "globex", "deploy", "15")
    assert deploy["status"] == "success"
    assert (deploy["record"]["environment"], deploy["record"]["version"]) == ("production", "v1.4.0")
    assert deploy["record"]["started_ts"] == "2026-11-30T10:50:00.000000000Z"
    assert store.query("SELECT count() FROM build_events WHERE tenant != 'globex'").rows[0][0] == 0


async def test_missing_or_wrong_tokens_are_refused_and_nothing_is_stored(client, store):
    assert "no X-Gitlab-Token" in (await _hook(client, PIPELINE, "Pipeline Hook", None, 401))["error"]
    assert "matches no" in (await _hook(client, PIPELINE, "Pipeline Hook", "guess-" + ACME_TOKEN, 401))["error"]
    # a real token but a body that is not JSON, or a pipeline without its attributes
    resp = await client.post("/hooks/gitlab", data=b"{oops", headers={"X-Gitlab-Token": ACME_TOKEN,
                                                                       "X-Gitlab-Event": "Pipeline Hook"})
    assert resp.status == 400
    await _hook(client, {"object_kind": "pipeline"}, "Pipeline Hook", ACME_TOKEN, 400)
    assert store.query("SELECT count() FROM build_events").rows[0][0] == 0
    ignored = await _hook(client, {"object_kind": "push"}, "Push Hook", ACME_TOKEN, 202)
    assert "does not read Push Hook" in ignored["ignored"]
