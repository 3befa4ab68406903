"""A CI/CD event, whoever sent it: the fields a build or deploy record is made of, and how they
are checked and stored (the `build_events` table of migration 0070).

GitHub and GitLab webhooks (flightlog.ingest.cicd.github, .gitlab) and the generic events API
(`POST /api/v1/{builds,deploys}/{id}/events`) all produce `CiEvent`s; `store_events` writes them.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from flightlog.schema.build_status import STATUS_SYNONYMS, STATUSES
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

KINDS = ("build", "deploy")

TEXT_FIELDS = ("repo", "branch", "commit", "author", "pipeline", "url", "environment", "version", "job", "detail")
MAX_ID_CHARS = 256
MAX_FIELD_CHARS = 2048
# ts outside these bounds is a client's mistake (ms sent as s, a zero): refused, not stored
MIN_TS_NS = 946_684_800 * 10**9  # 2000-01-01
MAX_FUTURE_NS = 86_400 * 10**9  # a day ahead of this server's clock


@dataclass(frozen=True)
class CiEvent:
    kind: str  # "build" or "deploy"
    id: str
    ts_ns: int  # when it happened, by the CI system's clock
    source: str  # github, gitlab, api
    event: str  # workflow_run, pipeline, deployment_status, api …
    status: str = ""  # one of STATUSES, or "" when the event says nothing about it
    repo: str = ""
    branch: str = ""
    commit: str = ""
    author: str = ""
    pipeline: str = ""
    url: str = ""
    environment: str = ""
    version: str = ""
    job: str = ""  # a job or check inside the build, when the event is about one
    job_status: str = ""
    detail: str = ""
    event_key: str = field(default_factory=lambda: uuid.uuid4().hex)

    def row(self, tenant: str, received_ns: int) -> dict[str, Any]:
        data = asdict(self)
        ts_ns = data.pop("ts_ns")
        data.update(tenant=tenant, ts=_ch_time(ts_ns), received_ts=_ch_time(received_ns))
        return data


def _ch_time(ns: int) -> str:
    seconds, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}"


def normalize_status(value: Any, what: str = "status") -> str:
    """One of STATUSES from any known spelling; Refusal(400) naming the choices otherwise."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise Refusal(400, f"{what}: expected a string, got {type(value).__name__}")
    status = STATUS_SYNONYMS.get(value.strip().lower())
    if status is None:
        raise Refusal(400, f"{what}: {value[:40]!r} is not one of {', '.join(STATUSES)}")
    return status


def check_id(kind: str, entity_id: str) -> str:
    if kind not in KINDS:
        raise Refusal(400, f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not entity_id or len(entity_id) > MAX_ID_CHARS or any(ord(c) < 32 for c in entity_id):
        raise Refusal(400, f"{kind} id: 1 to {MAX_ID_CHARS} printable characters")
    return entity_id


def clip(value: Any) -> str:
    """A payload field as text, bounded (webhook payloads are not ours to trust)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_FIELD_CHARS]


def parse_ts(value: Any, now_ns: int, what: str = "ts") -> int:
    """RFC 3339 text (also GitLab's `2016-08-12 15:23:28 UTC`) or epoch seconds/ms/ns → ns; absent: now."""
    if value is None or value == "":
        return now_ns
    ns: int | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        magnitude = abs(value)
        ns = int(value * 10**9) if magnitude < 1e11 else int(value * 10**6) if magnitude < 1e14 else int(value)
    elif isinstance(value, str):
        ns = _rfc3339_ns(value)
    if ns is None:
        raise Refusal(400, f"{what}: {str(value)[:40]!r} is not an RFC 3339 time or an epoch number")
    if ns < MIN_TS_NS or ns > now_ns + MAX_FUTURE_NS:
        raise Refusal(400, f"{what}: {str(value)[:40]!r} is before 2000 or more than a day ahead")
    return ns


def _rfc3339_ns(text: str) -> int | None:
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp()) * 10**9 + parsed.microsecond * 1000


API_FIELDS = frozenset({"status", "ts", *TEXT_FIELDS})


def from_api(kind: str, entity_id: str, body: Any, now_ns: int, event_key: str | None = None) -> CiEvent:
    """The event a generic client posts to /api/v1/{kind}s/{id}/events (docs/cicd.md)."""
    check_id(kind, entity_id)
    if not isinstance(body, Mapping):
        raise Refusal(400, "the body must be one JSON object: {\"status\": \"success\", \"commit\": …}")
    unknown = sorted(set(body) - API_FIELDS)
    if unknown:
        raise Refusal(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(API_FIELDS))}")
    values: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str | int | float):
            raise Refusal(400, f"{name}: expected a string")
        values[name] = clip(value)
    event = CiEvent(
        kind=kind,
        id=entity_id,
        ts_ns=parse_ts(body.get("ts"), now_ns),
        source="api",
        event="api",
        status=normalize_status(body.get("status")),
        **values,
    )
    return replace(event, event_key=event_key) if event_key else event


_TEMPLATE_FIELD = re.compile(r"\{([a-z_]+)\}")


def render_id(template: str, values: Mapping[str, Any], setting: str) -> str:
    """A build or deploy id from a template like `{repo}#{run_number}` (a setting; docs/cicd.md)."""
    missing = [name for name in _TEMPLATE_FIELD.findall(template) if values.get(name) in (None, "")]
    if missing:
        raise Refusal(
            400, f"{setting} {template!r} needs {', '.join(missing)}, which this event does not carry"
        )
    return _TEMPLATE_FIELD.sub(lambda m: str(values[m.group(1)]), template)


def store_events(store: Store, tenant: str, events: Sequence[CiEvent], received_ns: int | None = None) -> None:
    """Write events to build_events (a blocking store call: run it off the event loop)."""
    received_ns = time.time_ns() if received_ns is None else received_ns
    store.insert_rows("build_events", [e.row(tenant, received_ns) for e in events])
