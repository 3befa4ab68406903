"""Elasticsearch `_bulk`: NDJSON action/source pairs, answered with one item per action, in order.

`index` and `create` actions store their document as a line; ECS fields map to columns
(`@timestamp`, `message`, `log.level`, `service.name`, `host.name`, …), nested objects
flatten to dotted attributes, and the index name is kept as the attribute `index`.
Logs are append-only here, so `update` and `delete` get a per-item 400.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from flightlog.ingest.chunk import Chunk, LineError, ParseResult
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols.common import ID_FIELDS, check_row, flatten, level_name, take_fields, text
from flightlog.ingest.protocols.timestamps import TimeWindow
from flightlog.schema.refusal import Refusal

VERSION = "8.17.0"
PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}

DOC_FIELDS: dict[str, tuple[str, ...]] = {
    "ts": ("@timestamp", "timestamp", "time", "ts"),
    "message": ("message", "msg", "log", "event.original"),
    "level": ("log.level", "level", "severity", "lvl", "log.syslog.severity.name"),
    "service": ("service.name", "service", "app", "job", "kubernetes.container.name"),
    "host": ("host.name", "host.hostname", "hostname", "host", "kubernetes.pod.name", "agent.hostname"),
    **ID_FIELDS,
}

ALL_ACTIONS = ("index", "create", "update", "delete")


@dataclass
class BulkResult:
    parsed: ParseResult
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> bool:
        return any(next(iter(item.values()))["status"] >= 300 for item in self.items)


def parse(
    body: bytes,
    limits: Limits,
    tenant: str = "default",
    defaults: Mapping[str, str] | None = None,
    index: str = "",
) -> BulkResult:
    # (line number in the body, line): numbers count blank lines too, as the client's do.
    lines = [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
    rows: list[dict[str, Any]] = []
    errors: list[LineError] = []
    items: list[dict[str, Any]] = []
    window = TimeWindow.now(limits.retention_days)
    seq = 0
    i = 0
    while i < len(lines):
        number, action_line = lines[i]
        action, meta = _action(action_line, number)
        i += 1
        target = text(meta.get("_index") or index)
        doc_id = text(meta.get("_id") or "") or _new_id()
        if action != "delete":  # every other action is followed by its source line
            if i >= len(lines):
                raise Refusal(400, f"line {number}: the {action} action has no source line after it")
            (number, source), i = lines[i], i + 1
        if action in ("delete", "update"):
            items.append(
                _failed(
                    action,
                    target,
                    doc_id,
                    400,
                    "illegal_argument_exception",
                    f"flightlog stores logs append-only: {action} is not supported",
                )
            )
            continue
        try:
            doc = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            doc = None
            reason = f"failed to parse the document on line {number}: {exc}"
        else:
            reason = "the document must be a JSON object"
        if not isinstance(doc, dict):
            errors.append(LineError(number, reason, "not_an_object" if doc is not None else "invalid_json"))
            items.append(_failed(action, target, doc_id, 400, "document_parsing_exception", reason))
            continue
        row = document_row(doc, target)
        problem = check_row(row, limits, window, "@timestamp")
        if problem is not None:
            errors.append(LineError(number, problem.message, problem.reason))
            items.append(_failed(action, target, doc_id, 400, "document_parsing_exception", problem.message))
            continue
        rows.append(row)
        items.append(
            {
                action: {
                    "_index": target,
                    "_id": doc_id,
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": seq,
                    "_primary_term": 1,
                    "status": 201,
                }
            }
        )
        seq += 1
    parsed = ParseResult(Chunk.from_rows(rows, tenant, defaults), errors, len(errors))
    return BulkResult(parsed, items)


def document_row(doc: Mapping[str, Any], index: str) -> dict[str, Any]:
    flat = flatten(doc)
    row: dict[str, Any] = {}
    take_fields(row, flat, DOC_FIELDS)
    if "level" in row:
        row["level"] = level_name(row["level"])
    row.setdefault("message", "")
    attrs = {k: text(v) for k, v in flat.items() if v is not None}
    if index:
        attrs["index"] = index
    if attrs:
        row["attrs"] = attrs
    return row


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or len(obj) != 1:
        raise Refusal(
            400, f'Malformed action/metadata line [{number}], expected a simple value like {{"index": {{…}}}}'
        )
    action, meta = next(iter(obj.items()))
    if action not in ALL_ACTIONS:
        raise Refusal(
            400, f"Malformed action/metadata line [{number}], expected one of {list(ALL_ACTIONS)} but found [{action}]"
        )
    return action, meta if isinstance(meta, dict) else {}


def _failed(action: str, index: str, doc_id: str, status: int, kind: str, reason: str) -> dict[str, Any]:
    return {action: {"_index": index, "_id": doc_id, "status": status, "error": {"type": kind, "reason": reason}}}


def _new_id() -> str:
    return os.urandom(15).hex()[:20]


def error_body(status: int, reason: str) -> dict[str, Any]:
    kind = {
        400: "illegal_argument_exception",
        413: "content_too_long_exception",
        415: "media_type_header_exception",
        429: "es_rejected_execution_exception",
        503: "unavailable_shards_exception",
    }.get(status, "exception")
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def version_document(name: str = "flightlog") -> dict[str, Any]:
    return {
        "name": name,
        "cluster_name": "flightlog",
        "cluster_uuid": "flightlog-ingest-000000",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "flightlog",
            "build_hash": "0" * 40,
            "build_date": "2024-12-11T12:08:05.663969764Z",
            "build_snapshot": False,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


def took_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
