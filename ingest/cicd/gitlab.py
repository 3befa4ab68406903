"""GitLab webhooks: the `X-Gitlab-Token` check and the pipeline, job and deployment events.

    Pipeline Hook    the build: created/pending → running → success, failed, canceled, skipped
    Job Hook         a job of that pipeline (the build is running; the job's own result is kept)
    Deployment Hook  the deploy: created → running → success, failed, canceled

Which build a pipeline is: the setting `gitlab_build_id`, a template over `pipeline_id`
(default), `pipeline_iid`, `project` (path with namespace) and `project_id`; deploys:
`gitlab_deploy_id` over `deployment_id`, `deployable_id` (the deploying job), `project`,
`environment` (docs/cicd.md). A job event
carries no `pipeline_iid`, so a template using it stores pipeline events only.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flightlog.ingest.cicd.events import CiEvent, clip, parse_ts, render_id
from flightlog.schema.api_keys import hash_key
from flightlog.schema.refusal import Refusal

TOKEN_HEADER = "X-Gitlab-Token"
EVENTS = ("Pipeline Hook", "Job Hook", "Deployment Hook")
OBJECT_KINDS = {"pipeline": "Pipeline Hook", "build": "Job Hook", "deployment": "Deployment Hook"}
PIPELINE_PIPELINE = "gitlab-ci"

STATES = {"created": "queued", "waiting_for_resource": "queued", "preparing": "queued", "pending": "queued",
          "scheduled": "queued", "manual": "queued", "running": "running", "success": "success",
          "failed": "failure", "canceled": "cancelled", "cancelled": "cancelled", "skipped": "cancelled"}


def matching_tenant(tokens: Iterable[tuple[str, str]], token: str | None) -> str:
    """The tenant whose token (stored as its SHA-256) was sent; Refusal(401) otherwise."""
    if not token:
        raise Refusal(401, f"unsigned: the request has no {TOKEN_HEADER} header; set a secret token on the "
                                "GitLab webhook and register it with `flightlog hooks add-gitlab`")
    pairs = list(tokens)
    if not pairs:
        raise Refusal(401, "no GitLab webhook token is configured on this server (`flightlog hooks add-gitlab`)")
    sent = hash_key(token.strip()).encode()
    matched = [tenant for tenant, stored in pairs if hmac.compare_digest(sent, stored.encode())]
    if not matched:
        raise Refusal(401, f"{TOKEN_HEADER} matches no configured token")
    return matched[0]


def kind_of_event(event: str, payload: Any) -> str | None:
    """The hook name of a delivery (from the header, else the payload's object_kind); None: not ours."""
    if event in EVENTS:
        return event
    if isinstance(payload, Mapping):
        return OBJECT_KINDS.get(str(payload.get("object_kind")))
    return None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _project_path(payload: Mapping[str, Any]) -> str:
    """`group/project`: job hooks carry no project object, only the repository's homepage URL."""
    path = _get(payload, "project", "path_with_namespace")
    if not path:
        homepage = _get(payload, "repository", "homepage") or ""
        path = urlsplit(homepage).path.strip("/") if isinstance(homepage, str) else ""
    return clip(path or payload.get("project_name") or "")


def _ts(*values: Any) -> int:
    for value in values:
        if value:
            return parse_ts(value, time.time_ns(), "GitLab event time")
    return time.time_ns()


def _first_line(text: Any) -> str:
    return clip(text).split("\n", 1)[0] if text else ""


def parse(
    event: str, payload: Any, build_template: str = "{pipeline_id}", deploy_template: str = "{deployment_id}",
    delivery: str = "",
) -> list[CiEvent]:
    hook = kind_of_event(event, payload)
    if hook is None:
        return []
    if not isinstance(payload, Mapping):
        raise Refusal(400, "the payload must be a JSON object")
    key = {"event_key": f"gitlab:{delivery}"} if delivery else {}
    project = _project_path(payload)
    project_id = _get(payload, "project", "id") or payload.get("project_id")
    user = _get(payload, "user", "username") or _get(payload, "user", "name")
    if hook == "Pipeline Hook":
        attrs = payload.get("object_attributes")
        if not isinstance(attrs, Mapping):
            raise Refusal(400, "the payload has no object_attributes object")
        values = {"pipeline_id": attrs.get("id"), "pipeline_iid": attrs.get("iid"), "project": project,
                  "project_id": project_id}
        return [CiEvent(
            kind="build", id=render_id(build_template, values, "gitlab_build_id"),
            ts_ns=_ts(attrs.get("finished_at"), attrs.get("created_at")), source="gitlab", event="pipeline",
            status=STATES.get(str(attrs.get("status")), ""), repo=clip(project), branch=clip(attrs.get("ref")),
            commit=clip(attrs.get("sha")), author=clip(_get(payload, "commit", "author", "name") or user),
            pipeline=PIPELINE_PIPELINE, url=clip(attrs.get("url")),
            detail=_first_line(_get(payload, "commit", "title") or _get(payload, "commit", "message")), **key,
        )]
    if hook == "Job Hook":
        values = {"pipeline_id": payload.get("pipeline_id"), "project": project, "project_id": project_id}
        state = str(payload.get("build_status"))
        web_url = _get(payload, "project", "web_url") or _get(payload, "repository", "homepage")
        return [CiEvent(
            kind="build", id=render_id(build_template, values, "gitlab_build_id"),
            ts_ns=_ts(payload.get("build_finished_at"), payload.get("build_started_at"), payload.get("build_created_at")),
            source="gitlab", event="job", status="running" if state == "running" else "",
            repo=clip(project), branch=clip(payload.get("ref")), commit=clip(payload.get("sha")),
            author=clip(_get(payload, "commit", "author_name") or user), pipeline=PIPELINE_PIPELINE,
            url=clip(f"{web_url}/-/pipelines/{payload.get('pipeline_id')}") if web_url else "",
            job=clip(payload.get("build_name")), job_status=STATES.get(state, ""), **key,
        )]
    values = {"deployment_id": payload.get("deployment_id"), "deployable_id": payload.get("deployable_id"),
              "project": project, "environment": payload.get("environment")}
    return [CiEvent(
        kind="deploy", id=render_id(deploy_template, values, "gitlab_deploy_id"),
        ts_ns=_ts(payload.get("status_changed_at")), source="gitlab", event="deployment",
        status=STATES.get(str(payload.get("status")), ""), repo=clip(project), branch=clip(payload.get("ref")),
        commit=clip(payload.get("short_sha")), author=clip(user), pipeline=PIPELINE_PIPELINE,
        url=clip(payload.get("deployable_url") or payload.get("environment_external_url")),
        environment=clip(payload.get("environment")), version=clip(payload.get("ref")),
        detail=_first_line(payload.get("commit_title")), **key,
    )]
