"""OTLP/HTTP logs: `ExportLogsServiceRequest` as protobuf or as OTLP/JSON.

Resource `service.name` → service; `host.name` (else `k8s.pod.name`) → host; `build.id` /
`ci.build.id` → build_id and `deployment.id` → deploy_id (record attributes first, then scope,
then resource); trace and span ids as lowercase hex; severity number (else text) → level;
a string body → message, a structured body → its JSON text; every other resource, scope and
record attribute → attrs (the record's win on a clash).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from flightlog.ingest.chunk import ParseResult
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols.common import ID_FIELDS, checked_result, level_name, take_fields, text
from flightlog.schema.fields import LEVELS
from flightlog.schema.refusal import Refusal

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

RESOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "service": ("service.name",),
    "host": ("host.name", "k8s.pod.name", "host.hostname"),
}

# OTLP severity numbers 1–24 in six bands of four.
_BANDS = LEVELS


def severity_level(number: int, severity_text: str) -> str | None:
    if 1 <= number <= 24:
        return _BANDS[(number - 1) // 4]
    if severity_text:
        return level_name(severity_text)
    return None


def parse(
    body: bytes,
    content_type: str,
    limits: Limits,
    tenant: str = "default",
    defaults: Mapping[str, str] | None = None,
) -> ParseResult:
    if content_type == JSON:
        records = _json_records(body)
    elif content_type in (PROTOBUF, "application/protobuf", "application/octet-stream", ""):
        records = _proto_records(body)
    else:
        raise Refusal(415, f"Content-Type {content_type!r}: send {PROTOBUF} or {JSON}")
    return checked_result(enumerate(records, 1), limits, tenant, defaults, "timeUnixNano")


def build_row(
    resource: dict[str, Any],
    scope: dict[str, Any],
    record_attrs: dict[str, Any],
    ts: int,
    observed: int,
    severity_number: int,
    severity_text: str,
    body: Any,
    trace_id: str,
    span_id: str,
    event_name: str = "",
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    take_fields(row, record_attrs, ID_FIELDS)
    take_fields(row, scope, ID_FIELDS)
    take_fields(row, resource, ID_FIELDS)
    take_fields(row, resource, RESOURCE_FIELDS)
    # take_fields removed what filled a column; the rest are attributes.
    attrs = {k: text(v) for k, v in {**resource, **scope, **record_attrs}.items()}
    if event_name:
        attrs["event.name"] = event_name
    if trace_id:
        row["trace_id"] = trace_id
    if span_id:
        row["span_id"] = span_id
    stamp = ts or observed
    if stamp:
        row["ts"] = stamp
    level = severity_level(severity_number, severity_text)
    if level:
        row["level"] = level
    if severity_text:
        attrs.setdefault("severity_text", severity_text)
    row["message"] = body if isinstance(body, str) else ("" if body is None else text(body))
    if attrs:
        row["attrs"] = attrs
    return row


# --- protobuf ---------------------------------------------------------------------------------


def _proto_records(body: bytes) -> Iterator[dict[str, Any]]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise Refusal(400, f"body is not an OTLP ExportLogsServiceRequest in protobuf: {exc}") from None
    return _walk_proto(request)


def _walk_proto(request) -> Iterator[dict[str, Any]]:
    for resource_logs in request.resource_logs:
        resource = _proto_attrs(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            scope = _proto_attrs(scope_logs.scope.attributes)
            if scope_logs.scope.name:
                scope.setdefault("otel.scope.name", scope_logs.scope.name)
            if scope_logs.scope.version:
                scope.setdefault("otel.scope.version", scope_logs.scope.version)
            for record in scope_logs.log_records:
                yield build_row(
                    dict(resource),
                    dict(scope),
                    _proto_attrs(record.attributes),
                    record.time_unix_nano,
                    record.observed_time_unix_nano,
                    record.severity_number,
                    record.severity_text,
                    _proto_value(record.body) if record.HasField("body") else None,
                    record.trace_id.hex() if any(record.trace_id) else "",
                    record.span_id.hex() if any(record.span_id) else "",
                    record.event_name,
                )


def _proto_attrs(pairs) -> dict[str, Any]:
    return {kv.key: _proto_value(kv.value) for kv in pairs}


def _proto_value(value) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


# --- OTLP/JSON --------------------------------------------------------------------------------


def _json_records(body: bytes) -> Iterator[dict[str, Any]]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise Refusal(400, "expected an ExportLogsServiceRequest object with resourceLogs")
    return _walk_json(request)


def _get(obj: Any, camel: str, snake: str | None = None, default: Any = None) -> Any:
    if not isinstance(obj, dict):
        return default
    value = obj.get(camel)
    if value is None and snake:
        value = obj.get(snake)
    return default if value is None else value


def _walk_json(request: dict) -> Iterator[dict[str, Any]]:
    for resource_logs in _list(_get(request, "resourceLogs", "resource_logs", [])):
        resource = _json_attrs(_get(_get(resource_logs, "resource", default={}), "attributes", default=[]))
        for scope_logs in _list(_get(resource_logs, "scopeLogs", "scope_logs", [])):
            scope_obj = _get(scope_logs, "scope", default={})
            scope = _json_attrs(_get(scope_obj, "attributes", default=[]))
            if _get(scope_obj, "name"):
                scope.setdefault("otel.scope.name", text(_get(scope_obj, "name")))
            if _get(scope_obj, "version"):
                scope.setdefault("otel.scope.version", text(_get(scope_obj, "version")))
            for record in _list(_get(scope_logs, "logRecords", "log_records", [])):
                if not isinstance(record, dict):
                    continue
                body = _get(record, "body")
                yield build_row(
                    dict(resource),
                    dict(scope),
                    _json_attrs(_get(record, "attributes", default=[])),
                    _int(_get(record, "timeUnixNano", "time_unix_nano", 0)),
                    _int(_get(record, "observedTimeUnixNano", "observed_time_unix_nano", 0)),
                    _severity_number(_get(record, "severityNumber", "severity_number", 0)),
                    text(_get(record, "severityText", "severity_text", "")),
                    _json_value(body) if isinstance(body, dict) else None,
                    _id(_get(record, "traceId", "trace_id", "")),
                    _id(_get(record, "spanId", "span_id", "")),
                    text(_get(record, "eventName", "event_name", "")),
                )


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _json_attrs(pairs: Any) -> dict[str, Any]:
    out = {}
    for kv in _list(pairs):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            value = kv.get("value")
            out[kv["key"]] = _json_value(value) if isinstance(value, dict) else value
    return out


def _json_value(value: dict) -> Any:
    for key, convert in (
        ("stringValue", str),
        ("string_value", str),
        ("boolValue", bool),
        ("bool_value", bool),
        ("intValue", _int),
        ("int_value", _int),
        ("doubleValue", float),
        ("double_value", float),
    ):
        if key in value:
            try:
                return convert(value[key])
            except (TypeError, ValueError):
                return value[key]
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [_json_value(v) if isinstance(v, dict) else v for v in _list(_get(value[key], "values", default=[]))]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return _json_attrs(_get(value[key], "values", default=[]))
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return value[key]  # base64 text already
    return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


_SEVERITY_NAMES = {
    f"SEVERITY_NUMBER_{name}": (i * 4) + 1
    for i, name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"))
}


def _severity_number(value: Any) -> int:
    if isinstance(value, str) and value.startswith("SEVERITY_NUMBER_"):
        base = value.rstrip("0123456789")
        offset = int(value[len(base) :] or 1) - 1
        return _SEVERITY_NAMES.get(base, 0) + offset if base in _SEVERITY_NAMES else 0
    return _int(value)


def _id(value: Any) -> str:
    """OTLP/JSON ids are hex; some senders use base64 (the protobuf JSON default)."""
    if not isinstance(value, str) or not value:
        return ""
    lowered = value.lower()
    if len(lowered) in (16, 32) and all(c in "0123456789abcdef" for c in lowered):
        return "" if set(lowered) == {"0"} else lowered
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return raw.hex() if raw.strip(b"\0") else ""


# --- answers ----------------------------------------------------------------------------------


def answer(content_type: str, rejected: int, message: str) -> tuple[bytes, str]:
    """An ExportLogsServiceResponse in the request's own encoding."""
    if content_type == JSON:
        body: dict[str, Any] = {}
        if rejected:
            body["partialSuccess"] = {"rejectedLogRecords": str(rejected), "errorMessage": message}
        return orjson.dumps(body), JSON
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    return response.SerializeToString(), PROTOBUF


def status_body(content_type: str, status: int, message: str) -> tuple[bytes, str]:
    """A google.rpc.Status for a refused request, as the OTLP spec asks."""
    if content_type == JSON:
        return orjson.dumps({"code": _rpc_code(status), "message": message}), JSON
    try:
        from google.rpc.status_pb2 import Status
    except ImportError:  # googleapis-common-protos comes with the exporter, not always with us
        return message.encode(), "text/plain"
    return Status(code=_rpc_code(status), message=message).SerializeToString(), PROTOBUF


def _rpc_code(status: int) -> int:
    return {400: 3, 413: 11, 415: 3, 429: 8, 503: 14}.get(status, 2)
