"""What the protocol parsers share: picking first-class fields out of a flat map, levels, limits.

Each parser (otlp, loki, elastic, syslog, text) builds rows with canonical keys — ts, service,
host, level, message, build_id, deploy_id, trace_id, span_id, request_id — and `attrs`, a flat
dict of strings. The engine does the rest (flightlog.ingest.insert_sql).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from flightlog.ingest.chunk import Chunk, LineError, ParseResult
from flightlog.ingest.insert_sql import (
    FIELD_KEYS,
    HOST_KEYS,
    LEVEL_KEYS,
    LEVEL_SYNONYMS,
    MESSAGE_KEYS,
    SERVICE_KEYS,
    TIMESTAMP_KEYS,
)
from flightlog.ingest.limits import Limits, Problem
from flightlog.ingest.protocols.timestamps import TimeWindow
from flightlog.schema.fields import ID_COLUMNS

# Column → the attribute / label / field names that fill it, most specific first.
ID_FIELDS: dict[str, tuple[str, ...]] = {column: FIELD_KEYS[column] for column in ID_COLUMNS}
ALL_FIELDS: dict[str, tuple[str, ...]] = {
    "ts": TIMESTAMP_KEYS,
    "message": MESSAGE_KEYS,
    "level": LEVEL_KEYS,
    "service": SERVICE_KEYS,
    "host": HOST_KEYS,
    **ID_FIELDS,
}


def text(value: Any) -> str:
    """Any decoded value as attribute text: strings as they are, structures as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def take_fields(
    row: dict[str, Any],
    flat: dict[str, Any],
    fields: Mapping[str, tuple[str, ...]],
) -> None:
    """Move the first non-empty value of each field's keys from `flat` into `row` (unless
    `row` already has the field); the keys used are removed from `flat`."""
    for field, keys in fields.items():
        for key in keys:
            if key in flat:
                value = flat[key]
                if value in (None, ""):
                    continue
                if field not in row:
                    row[field] = value if field == "ts" and isinstance(value, (int, float)) else text(value)
                    del flat[key]
                break


def flatten(obj: Mapping[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested objects to dotted keys (`{"log": {"level": "x"}}` → `{"log.level": "x"}`)."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


def level_name(value: str) -> str:
    """A level spelling to one of the six, or the text as it is (the engine maps it to info)."""
    return LEVEL_SYNONYMS.get(value.strip().lower(), value)


def checked_result(
    numbered: Iterable[tuple[int, Mapping[str, Any] | str]],
    limits: Limits,
    tenant: str,
    defaults: Mapping[str, str] | None,
    time_field: str = "timestamp",
) -> ParseResult:
    """The rows a protocol built, each checked against the limits, as a ParseResult.

    `numbered` holds (line or record number, row), or (number, why no row could be built).
    `time_field` names a row's time in the errors, as the protocol calls it."""
    window = TimeWindow.now(limits.retention_days)
    rows: list[Mapping[str, Any]] = []
    errors: list[LineError] = []
    for number, row in numbered:
        problem = Problem("", row) if isinstance(row, str) else check_row(row, limits, window, time_field)
        if problem is None:
            rows.append(row)
        else:
            errors.append(LineError(number, problem.message, problem.reason))
    return ParseResult(Chunk.from_rows(rows, tenant, defaults), errors, len(errors))


def check_row(
    row: Mapping[str, Any], limits: Limits, window: TimeWindow, time_field: str = "timestamp"
) -> Problem | None:
    """Why a built row breaks the limits or carries a time the store cannot keep, or None."""
    message = row.get("message")
    if isinstance(message, str) and len(message) > limits.max_line_bytes:
        return Problem("line_too_long", f"message is {len(message)} bytes; the limit is {limits.max_line_bytes}")
    attrs = row.get("attrs")
    if attrs and len(attrs) > limits.max_attributes:
        return Problem("too_many_fields", f"line has {len(attrs)} attributes; the limit is {limits.max_attributes}")
    ts = row.get("ts")
    if ts is not None and ts != "":
        return window.check(time_field, ts)
    return None
