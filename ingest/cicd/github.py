"""GitHub webhooks: the `X-Hub-Signature-256` check and the events flightlog reads.

    workflow_run       the build: queued → in_progress → completed with its conclusion
    workflow_job       a job of that build (the build is running; the job's own result is kept)
    check_run          a check (any CI app that reports checks) is a build of its own
    deployment         a deploy is created (queued)
    deployment_status  its state: queued, in_progress, success, failure, error, inactive
    ping               answered, nothing stored

Which build a run is: the setting `github_build_id`, a template over `run_id` (default),
`run_number`, `run_attempt`, `repo` and `workflow`; deploys: `github_deploy_id` over
`deployment_id`, `repo`, `environment` (docs/cicd.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flightlog.ingest.cicd.events import CiEvent, clip, parse_ts, render_id
from flightlog.schema.refusal import Refusal

EVENTS = ("workflow_run", "workflow_job", "check_run", "deployment", "deployment_status", "ping")
SIGNATURE_HEADER = "X-Hub-Signature-256"

# GitHub's run and check states and conclusions → flightlog's statuses
RUN_STATES = {"requested": "queued", "queued": "queued", "waiting": "queued", "pending": "queued",
              "in_progress": "running"}
CONCLUSIONS = {"success": "success", "neutral": "success", "failure": "failure", "timed_out": "failure",
               "startup_failure": "failure", "cancelled": "cancelled", "skipped": "cancelled", "stale": "cancelled",
               "action_required": "queued"}
DEPLOY_STATES = {"pending": "queued", "queued": "queued", "in_progress": "running", "success": "success",
                 "failure": "failure", "error": "failure"}  # inactive: superseded, says nothing new


def signature_matches(secret: str, body: bytes, header: str) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256 of body under secret>` (constant time)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def matching_tenant(secrets: Iterable[tuple[str, str]], body: bytes, header: str | None) -> str:
    """The tenant whose secret signed the body, from (tenant, secret) pairs; Refusal(401) else."""
    if not header:
        raise Refusal(401, f"unsigned: the request has no {SIGNATURE_HEADER} header; set a secret on the "
                                "GitHub webhook and register it with `flightlog hooks add-github`")
    if not header.startswith("sha256="):
        raise Refusal(401, f"{SIGNATURE_HEADER} must be sha256=<hex digest>")
    pairs = list(secrets)
    if not pairs:
        raise Refusal(401, "no GitHub webhook secret is configured on this server (`flightlog hooks add-github`)")
    # Every secret is tried, so the time taken does not tell which one came close.
    matched = [tenant for tenant, secret in pairs if signature_matches(secret, body, header)]
    if not matched:
        raise Refusal(401, f"{SIGNATURE_HEADER} does not match the body under any configured secret")
    return matched[0]


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _status(state: Any, conclusion: Any) -> str:
    if conclusion:
        return CONCLUSIONS.get(str(conclusion), "")
    return RUN_STATES.get(str(state), "") if state else ""


def _first_line(text: Any) -> str:
    return clip(text).split("\n", 1)[0] if text else ""


def parse(
    event: str, payload: Any, build_template: str = "{run_id}", deploy_template: str = "{deployment_id}",
    delivery: str = "",
) -> list[CiEvent]:
    """The CiEvents one webhook delivery carries ([] for ping and events flightlog does not read).

    Raises Refusal(400) when the payload lacks what the event must carry.
    """
    if event not in EVENTS or event == "ping":
        return []
    if not isinstance(payload, Mapping):
        raise Refusal(400, "the payload must be a JSON object")
    repo = clip(_get(payload, "repository", "full_name"))
    key = {"event_key": f"github:{delivery}"} if delivery else {}

    def ts(*values: Any) -> int:
        for value in values:
            if value:
                return parse_ts(value, time.time_ns(), f"{event} time")
        return time.time_ns()

    if event == "workflow_run":
        run = _require(payload, "workflow_run")
        values = {"run_id": run.get("id"), "run_number": run.get("run_number"), "run_attempt": run.get("run_attempt"),
                  "repo": repo, "workflow": _get(payload, "workflow", "name") or run.get("name")}
        author = _get(run, "head_commit", "author", "name") or _get(run, "actor", "login") or _get(payload, "sender", "login")
        return [CiEvent(
            kind="build", id=render_id(build_template, values, "github_build_id"),
            ts_ns=ts(run.get("updated_at"), run.get("run_started_at"), run.get("created_at")),
            source="github", event=event, status=_status(run.get("status"), run.get("conclusion")),
            repo=repo, branch=clip(run.get("head_branch")), commit=clip(run.get("head_sha")), author=clip(author),
            pipeline=clip(values["workflow"]), url=clip(run.get("html_url")),
            detail=_first_line(_get(run, "head_commit", "message")), **key,
        )]
    if event == "workflow_job":
        job = _require(payload, "workflow_job")
        values = {"run_id": job.get("run_id"), "run_attempt": job.get("run_attempt"), "repo": repo,
                  "workflow": job.get("workflow_name")}
        state, conclusion = job.get("status"), job.get("conclusion")
        repo_url = _get(payload, "repository", "html_url")
        return [CiEvent(
            kind="build", id=render_id(build_template, values, "github_build_id"),
            ts_ns=ts(job.get("completed_at"), job.get("started_at"), job.get("created_at")),
            source="github", event=event,
            # a job starting means its run is running; how a job ends is the job's, not the run's
            status="running" if state == "in_progress" else "",
            repo=repo, branch=clip(job.get("head_branch")), commit=clip(job.get("head_sha")),
            pipeline=clip(job.get("workflow_name")),
            url=clip(f"{repo_url}/actions/runs/{job.get('run_id')}") if repo_url and job.get("run_id") else "",
            job=clip(job.get("name")), job_status=_status(state, conclusion), **key,
        )]
    if event == "check_run":
        check = _require(payload, "check_run")
        app = _get(check, "app", "slug") or _get(check, "app", "name") or "checks"
        values = {"run_id": check.get("id"), "run_number": check.get("id"), "repo": repo, "workflow": check.get("name")}
        return [CiEvent(
            kind="build", id=render_id(build_template, values, "github_build_id"),
            ts_ns=ts(check.get("completed_at"), check.get("started_at")),
            source="github", event=event, status=_status(check.get("status"), check.get("conclusion")),
            repo=repo, branch=clip(_get(check, "check_suite", "head_branch")), commit=clip(check.get("head_sha")),
            author=clip(_get(payload, "sender", "login")), pipeline=clip(f"{app}/{check.get('name')}"),
            url=clip(check.get("html_url") or check.get("details_url")), detail=_first_line(_get(check, "output", "title")),
            **key,
        )]
    deployment = _require(payload, "deployment")
    values = {"deployment_id": deployment.get("id"), "repo": repo, "environment": deployment.get("environment")}
    common = dict(
        kind="deploy", id=render_id(deploy_template, values, "github_deploy_id"), source="github", event=event,
        repo=repo, branch=clip(deployment.get("ref")), commit=clip(deployment.get("sha")),
        author=clip(_get(deployment, "creator", "login")), pipeline=clip(deployment.get("task")),
        environment=clip(deployment.get("environment")), version=clip(deployment.get("ref")),
        detail=_first_line(deployment.get("description")), **key,
    )
    if event == "deployment":
        return [CiEvent(ts_ns=ts(deployment.get("created_at")), status="queued", **common)]
    state = _require(payload, "deployment_status")
    return [CiEvent(
        ts_ns=ts(state.get("updated_at"), state.get("created_at")), status=DEPLOY_STATES.get(str(state.get("state")), ""),
        url=clip(state.get("target_url") or state.get("log_url") or state.get("environment_url")),
        **{**common, "environment": clip(state.get("environment") or deployment.get("environment")),
           "detail": _first_line(state.get("description")) or common["detail"]},
    )]


def _require(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    if not isinstance(value, Mapping):
        raise Refusal(400, f"the payload has no {name} object")
    return value

