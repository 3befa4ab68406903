"""The client side of /api/v1/{builds,deploys}/{id}/events, for `flightlog send --build-status`.

Standard library only (like flightlog.ingest.shipper). The event carries what the CI system's
own variables say about the run (GitHub Actions, GitLab CI), so a build reported only this way
still has its repo, branch, commit, pipeline and link.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

import orjson
from flightlog.schema.id_paths import id_segment

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def ci_fields(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """repo, branch, commit, author, pipeline, url from GitHub Actions' or GitLab CI's variables."""
    env = os.environ if env is None else env
    if env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        return _present({
            "repo": repo, "branch": env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", ""),
            "commit": env.get("GITHUB_SHA", ""), "author": env.get("GITHUB_ACTOR", ""),
            "pipeline": env.get("GITHUB_WORKFLOW", ""),
            "url": f"{server}/{repo}/actions/runs/{env['GITHUB_RUN_ID']}" if repo else "",
        })
    if env.get("GITLAB_CI"):
        return _present({
            "repo": env.get("CI_PROJECT_PATH", ""), "branch": env.get("CI_COMMIT_REF_NAME", ""),
            "commit": env.get("CI_COMMIT_SHA", ""), "author": env.get("GITLAB_USER_LOGIN", ""),
            "pipeline": "gitlab-ci", "url": env.get("CI_PIPELINE_URL", ""),
        })
    return {}


def _present(fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v}


def post_event(
    url: str,
    kind: str,
    entity_id: str,
    event: Mapping[str, str],
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
    max_retry_seconds: float = 30.0,
) -> dict:
    """POST one event; retries 429/5xx and connection errors (honouring Retry-After) until
    `max_retry_seconds`. Raises RuntimeError with the server's reason when it is refused."""
    endpoint = f"{url.rstrip('/')}/api/v1/{kind}s/{id_segment(entity_id)}/events"
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = orjson.dumps(dict(event))
    deadline = time.monotonic() + max_retry_seconds
    delay = 0.5
    while True:
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return orjson.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            reason = _reason(exc)
            if exc.code not in RETRY_STATUSES:
                raise RuntimeError(f"{endpoint} refused the {kind} event ({exc.code}): {reason}") from None
            wait = float(exc.headers.get("Retry-After") or delay)
        except (urllib.error.URLError, OSError) as exc:
            reason, wait = str(getattr(exc, "reason", exc)), delay
        if time.monotonic() + wait > deadline:
            raise RuntimeError(f"could not report the {kind} status to {endpoint}: {reason}")
        time.sleep(wait)
        delay = min(delay * 2, 8.0)


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(orjson.loads(exc.read()).get("error", ""))
    except Exception:
        return exc.reason or ""
