"""Loki push: `POST /loki/api/v1/push` as JSON or as protobuf in a raw snappy block.

JSON: `{"streams": [{"stream": {labels}, "values": [["<ns>", "line", {metadata}?], …]}]}`, or
the legacy `{"streams": [{"labels": "{a=\\"b\\"}", "entries": [{"ts": "<RFC 3339>", "line": …}]}]}`.
Unknown keys are ignored. Protobuf is Loki's push.proto (PushRequest → StreamAdapter →
EntryAdapter), decoded here by hand: it is four small messages.

Labels `service_name`/`service`/`app`/`job` → service, `host`/`hostname`/`instance` → host,
`level`-like labels → level, build/deploy/trace/span/request id labels → those columns;
other labels and structured metadata → attrs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from flightlog.ingest.chunk import ParseResult
from flightlog.ingest.insert_sql import MESSAGE_KEYS, TIMESTAMP_KEYS
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols.common import (
    ALL_FIELDS,
    ID_FIELDS,
    checked_result,
    flatten,
    level_name,
    take_fields,
    text,
)
from flightlog.schema.refusal import Refusal

LABEL_FIELDS: dict[str, tuple[str, ...]] = {
    "service": ("service_name", "service", "app", "application", "job"),
    "host": ("host", "hostname", "instance", "host_name", "pod"),
    "level": ("level", "detected_level", "severity", "lvl", "log_level"),
    **ID_FIELDS,
}
METADATA_FIELDS: dict[str, tuple[str, ...]] = {**ID_FIELDS, "level": ("level", "detected_level")}
LINE_FIELDS = {name: keys for name, keys in ALL_FIELDS.items() if name != "ts"}


def parse(
    body: bytes,
    content_type: str,
    limits: Limits,
    tenant: str = "default",
    defaults: Mapping[str, str] | None = None,
) -> ParseResult:
    if content_type in ("application/x-protobuf", "application/protobuf", "application/octet-stream") or (
        content_type != "application/json" and body[:1] not in (b"{", b" ", b"\n", b"\t", b"\r")
    ):
        entries = _proto_entries(_unsnappy(body, limits.max_body_bytes))
    else:
        entries = _json_entries(body)
    return checked_result(enumerate(entries, 1), limits, tenant, defaults)


def make_row(labels: Mapping[str, str], ts: int | str | None, line: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if ts:
        row["ts"] = ts
    meta = {k: text(v) for k, v in metadata.items()}
    take_fields(row, meta, METADATA_FIELDS)
    rest = dict(labels)
    take_fields(row, rest, LABEL_FIELDS)
    fields = _json_line(line)
    if fields is not None:
        # A JSON line (as loki-logger-handler and many loggers write): its message, level and ids
        # become columns, the rest attributes; the entry's own timestamp stays the time.
        for key in TIMESTAMP_KEYS:
            fields.pop(key, None)
        take_fields(row, fields, LINE_FIELDS)
        rest.update((k, text(v)) for k, v in fields.items() if v is not None)
    row.setdefault("message", line)
    if "level" in row:
        row["level"] = level_name(row["level"])
    attrs = {**rest, **meta}
    if attrs:
        row["attrs"] = attrs
    return row


def _json_line(line: str) -> dict[str, Any] | None:
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), str) for k in MESSAGE_KEYS):
        return None
    return flatten(obj)


# --- labels -----------------------------------------------------------------------------------


def parse_labels(selector: str) -> dict[str, str]:
    """`{a="b", c="d\\"e"}` (Prometheus label text) to a dict; raises ValueError when malformed."""
    s = selector.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise ValueError(f'labels {selector!r} must be in braces, like {{job="x"}}')
    labels: dict[str, str] = {}
    i, end = 1, len(s) - 1
    while True:
        while i < end and s[i] in " ,\t\n":
            i += 1
        if i >= end:
            return labels
        eq = s.find("=", i)
        if eq < 0:
            raise ValueError(f'labels {selector!r}: expected name="value"')
        name = s[i:eq].strip()
        j = eq + 1
        while j < end and s[j] == " ":
            j += 1
        if j >= end or s[j] != '"':
            raise ValueError(f"labels {selector!r}: the value of {name!r} must be quoted")
        j += 1
        value = []
        while j < end and s[j] != '"':
            if s[j] == "\\" and j + 1 < end:
                j += 1
                value.append({"n": "\n", "t": "\t"}.get(s[j], s[j]))
            else:
                value.append(s[j])
            j += 1
        if j >= end:
            raise ValueError(f"labels {selector!r}: unterminated value of {name!r}")
        labels[name] = "".join(value)
        i = j + 1


# --- JSON -------------------------------------------------------------------------------------


def _json_entries(body: bytes) -> Iterator[dict[str, Any] | str]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"body is not valid JSON: {exc}") from None
    streams = request.get("streams") if isinstance(request, dict) else None
    if not isinstance(streams, list):
        raise Refusal(400, 'expected {"streams": [...]}')
    return _walk_json(streams)


def _walk_json(streams: list) -> Iterator[dict[str, Any] | str]:
    for number, stream in enumerate(streams, 1):
        if not isinstance(stream, dict):
            yield f"stream {number} is not an object"
            continue
        labels = stream.get("stream")
        if isinstance(labels, dict):
            labels = {str(k): text(v) for k, v in labels.items()}
        elif isinstance(stream.get("labels"), str):
            try:
                labels = parse_labels(stream["labels"])
            except ValueError as exc:
                yield f"stream {number}: {exc}"
                continue
        else:
            labels = {}
        for value in stream.get("values") or ():
            if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], str):
                yield f'stream {number}: a value must be ["<unix ns>", "line", {{metadata}}?]'
                continue
            ts = _ns(value[0])
            if ts is None:
                yield f"stream {number}: timestamp {value[0]!r} is not Unix nanoseconds"
                continue
            metadata = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
            yield make_row(labels, ts, value[1], metadata)
        for entry in stream.get("entries") or ():
            if not isinstance(entry, dict) or not isinstance(entry.get("line"), str):
                yield f'stream {number}: an entry must be {{"ts": …, "line": "…"}}'
                continue
            ts = entry.get("ts") or entry.get("timestamp")
            ts = _ns(ts) if isinstance(ts, (int, float)) or (isinstance(ts, str) and ts.isdigit()) else ts
            metadata = entry.get("structuredMetadata") or entry.get("structured_metadata") or {}
            if isinstance(metadata, list):
                metadata = {m.get("name"): m.get("value") for m in metadata if isinstance(m, dict)}
            yield make_row(labels, ts if ts else None, entry["line"], metadata if isinstance(metadata, dict) else {})


def _ns(value: Any) -> int | None:
    try:
        ns = int(value)
    except (TypeError, ValueError):
        return None
    return ns if ns >= 0 else None


# --- protobuf ---------------------------------------------------------------------------------


def _unsnappy(body: bytes, max_bytes: int) -> bytes:
    import cramjam

    length, _ = _varint(body, 0) if body else (0, 0)
    if length > max_bytes:
        raise Refusal(413, f"snappy block inflates to {length} bytes; the limit is {max_bytes}")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:
        raise Refusal(400, f"body is not a raw snappy block (Loki protobuf push): {exc}") from None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise Refusal(400, "truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Refusal(400, "protobuf varint is too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): ints for varints, bytes for length-delimited."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise Refusal(400, "truncated protobuf field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise Refusal(400, f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _proto_entries(buf: bytes) -> Iterator[dict[str, Any] | str]:
    streams = [value for number, wire, value in _fields(buf) if number == 1 and wire == 2]
    return _walk_proto(streams)


def _walk_proto(streams: list[bytes]) -> Iterator[dict[str, Any] | str]:
    for number, stream in enumerate(streams, 1):
        selector, entries = "", []
        for field, wire, value in _fields(stream):
            if field == 1 and wire == 2:
                selector = value.decode("utf-8", "replace")
            elif field == 2 and wire == 2:
                entries.append(value)
        try:
            labels = parse_labels(selector) if selector else {}
        except ValueError as exc:
            yield f"stream {number}: {exc}"
            continue
        for entry in entries:
            ts, line, metadata = 0, "", {}
            for field, wire, value in _fields(entry):
                if field == 1 and wire == 2:
                    seconds = nanos = 0
                    for f, w, v in _fields(value):
                        if f == 1 and w == 0:
                            seconds = v
                        elif f == 2 and w == 0:
                            nanos = v
                    ts = seconds * 1_000_000_000 + nanos
                elif field == 2 and wire == 2:
                    line = value.decode("utf-8", "replace")
                elif field == 3 and wire == 2:
                    pair = {f: v.decode("utf-8", "replace") for f, w, v in _fields(value) if w == 2}
                    if 1 in pair:
                        metadata[pair[1]] = pair.get(2, "")
            yield make_row(labels, ts or None, line, metadata)
