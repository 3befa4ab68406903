"""The protocol parsers as tables of (input, expected rows) — no store, no server."""

from __future__ import annotations

import base64

import orjson
import pytest
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols import elastic, loki, otlp, syslog, text
from flightlog.schema.refusal import Refusal

# The cases carry fixed times from 2003 to 2024: a retention long enough to keep them (lines
# older than the retention are refused: tests/reliability/test_line_validation.py).
LIMITS = Limits(max_body_bytes=1 << 20, max_line_bytes=1000, max_attributes=20, retention_days=25_000)


def rows_of(result) -> list[dict]:
    chunk = getattr(result, "parsed", result).chunk
    return [orjson.loads(line) for line in chunk.lines.split(b"\n")] if chunk.count else []


# --- OTLP/JSON --------------------------------------------------------------------------------


def otlp_json(record: dict, resource: dict | None = None, scope: dict | None = None) -> bytes:
    attrs = [{"key": k, "value": {"stringValue": v}} for k, v in (resource or {}).items()]
    return orjson.dumps(
        {
            "resourceLogs": [
                {"resource": {"attributes": attrs}, "scopeLogs": [{"scope": scope or {}, "logRecords": [record]}]}
            ]
        }
    )


OTLP_CASES = [
    (
        "resource fields, hex ids, severity number",
        otlp_json(
            {
                "timeUnixNano": "1700000000000000001",
                "severityNumber": 17,
                "body": {"stringValue": "boom"},
                "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736",
                "spanId": "00f067aa0ba902b7",
                "attributes": [
                    {"key": "deployment.id", "value": {"stringValue": "d1"}},
                    {"key": "n", "value": {"intValue": "3"}},
                ],
            },
            {"service.name": "api", "host.name": "h1", "build.id": "b1", "zone": "z"},
        ),
        [
            {
                "build_id": "b1",
                "service": "api",
                "host": "h1",
                "deploy_id": "d1",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
                "ts": 1700000000000000001,
                "level": "error",
                "message": "boom",
                "attrs": {"zone": "z", "n": "3"},
            }
        ],
    ),
    (
        "observed time when there is no time; pod as host; severity text; structured body",
        otlp_json(
            {
                "observedTimeUnixNano": 1700000000000000000,
                "severityText": "Warning",
                "body": {"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": True}}]}},
            },
            {"k8s.pod.name": "pod-1"},
        ),
        [
            {
                "host": "pod-1",
                "ts": 1700000000000000000,
                "level": "warn",
                "message": '{"a":true}',
                "attrs": {"severity_text": "Warning"},
            }
        ],
    ),
    (
        "base64 ids (protobuf JSON default) become hex; zero ids are absent",
        otlp_json({"traceId": "S/kvNXezTaajzpKdDg5HNg==", "spanId": "AAAAAAAAAAA=", "body": {"stringValue": "x"}}),
        [{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "message": "x"}],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in OTLP_CASES], ids=[c[0] for c in OTLP_CASES])
def test_otlp_json(body, expected):
    assert rows_of(otlp.parse(body, "application/json", LIMITS)) == expected


def test_otlp_protobuf_matches_json():
    from google.protobuf.json_format import Parse
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    def b64(hex_id: str) -> bytes:
        return b'"' + base64.b64encode(bytes.fromhex(hex_id)) + b'"'

    body = OTLP_CASES[0][1]
    body = body.replace(b'"4BF92F3577B34DA6A3CE929D0E0E4736"', b64("4bf92f3577b34da6a3ce929d0e0e4736"))
    request = Parse(body.replace(b'"00f067aa0ba902b7"', b64("00f067aa0ba902b7")), ExportLogsServiceRequest())
    assert rows_of(otlp.parse(request.SerializeToString(), "application/x-protobuf", LIMITS)) == OTLP_CASES[0][2]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\x00garbage", "application/x-protobuf", 400),
        (b"{nope", "application/json", 400),
        (b"{}", "text/csv", 415),
    ],
)
def test_otlp_bad_bodies_are_4xx(body, content_type, status):
    with pytest.raises(Refusal) as err:
        otlp.parse(body, content_type, LIMITS)
    assert err.value.status == status


def test_otlp_partial_success_counts_oversized_records():
    body = otlp_json({"body": {"stringValue": "x" * 2000}})
    result = otlp.parse(body, "application/json", LIMITS)
    assert result.rejected == 1 and result.accepted == 0
    answer, _ = otlp.answer("application/json", 1, "too big")
    assert orjson.loads(answer) == {"partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "too big"}}


# --- Loki -------------------------------------------------------------------------------------

LOKI_CASES = [
    (
        "values with structured metadata; labels to columns",
        {
            "streams": [
                {
                    "stream": {
                        "service_name": "api",
                        "instance": "h:9",
                        "build_id": "b1",
                        "env": "prod",
                        "level": "ERROR",
                    },
                    "values": [["1700000000000000000", "hello", {"trace_id": "t1", "user": "u"}]],
                }
            ]
        },
        [
            {
                "ts": 1700000000000000000,
                "trace_id": "t1",
                "service": "api",
                "host": "h:9",
                "level": "error",
                "build_id": "b1",
                "message": "hello",
                "attrs": {"env": "prod", "user": "u"},
            }
        ],
    ),
    (
        "legacy entries with a label string; unknown keys ignored",
        {
            "streams": [
                {
                    "labels": '{job="ci", host="r1", note="a \\"q\\""}',
                    "junk": 1,
                    "entries": [{"ts": "2024-01-02T03:04:05.5Z", "line": "go"}],
                }
            ],
            "extra": True,
        },
        [{"ts": "2024-01-02T03:04:05.5Z", "service": "ci", "host": "r1", "message": "go", "attrs": {"note": 'a "q"'}}],
    ),
    (
        "a JSON line gives message, level and ids; the rest become attributes",
        {
            "streams": [
                {
                    "stream": {"app": "w"},
                    "values": [
                        [
                            "1700000000000000000",
                            '{"message": "m", "level": "WARNING", "timestamp": 1.5, '
                            '"request_id": "r", "ctx": {"a": 1}}',
                        ]
                    ],
                }
            ]
        },
        [
            {
                "ts": 1700000000000000000,
                "service": "w",
                "message": "m",
                "level": "warn",
                "request_id": "r",
                "attrs": {"ctx.a": "1"},
            }
        ],
    ),
]


@pytest.mark.parametrize(("payload", "expected"), [c[1:] for c in LOKI_CASES], ids=[c[0] for c in LOKI_CASES])
def test_loki_json(payload, expected):
    assert rows_of(loki.parse(orjson.dumps(payload), "application/json", LIMITS)) == expected


def test_loki_bad_values_are_reported_and_good_ones_kept():
    payload = {"streams": [{"stream": {"app": "a"}, "values": [["nope", "x"], ["1700000000000000000", "ok"], [1]]}]}
    result = loki.parse(orjson.dumps(payload), "application/json", LIMITS)
    assert [r["message"] for r in rows_of(result)] == ["ok"]
    assert [e.line for e in result.errors] == [1, 3]


def _pb_field(number: int, payload: bytes) -> bytes:
    return bytes([(number << 3) | 2]) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def loki_proto(labels: str, seconds: int, nanos: int, line: str, metadata: dict[str, str]) -> bytes:
    ts = bytes([0x08]) + _varint(seconds) + bytes([0x10]) + _varint(nanos)
    entry = _pb_field(1, ts) + _pb_field(2, line.encode())
    for k, v in metadata.items():
        entry += _pb_field(3, _pb_field(1, k.encode()) + _pb_field(2, v.encode()))
    return _pb_field(1, _pb_field(1, labels.encode()) + _pb_field(2, entry))


def test_loki_protobuf_in_raw_snappy():
    import cramjam

    raw = loki_proto('{job="j", hostname="h", deploy_id="d"}', 1700000000, 5, "hi", {"span_id": "s", "k": "v"})
    body = bytes(cramjam.snappy.compress_raw(raw))
    assert rows_of(loki.parse(body, "application/x-protobuf", LIMITS)) == [
        {
            "ts": 1700000000000000005,
            "span_id": "s",
            "service": "j",
            "host": "h",
            "deploy_id": "d",
            "message": "hi",
            "attrs": {"k": "v"},
        }
    ]


def test_loki_snappy_declaring_more_than_the_body_limit_is_413_before_inflating():
    body = _varint(LIMITS.max_body_bytes + 1) + b"\x00" * 10
    with pytest.raises(Refusal) as err:
        loki.parse(body, "application/x-protobuf", LIMITS)
    assert err.value.status == 413


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{nope", "application/json"),
        (b'{"streams": 3}', "application/json"),
        (b"\x05garbage", "application/x-protobuf"),
    ],
)
def test_loki_bad_bodies_are_400(body, content_type):
    with pytest.raises(Refusal) as err:
        loki.parse(body, content_type, LIMITS)
    assert err.value.status == 400


# --- Elasticsearch bulk -----------------------------------------------------------------------


def bulk(*lines) -> bytes:
    return b"\n".join(orjson.dumps(line) if not isinstance(line, bytes) else line for line in lines) + b"\n"


def test_elastic_bulk_maps_ecs_and_answers_one_item_per_action_in_order():
    body = bulk(
        {"index": {"_index": "a", "_id": "1"}},
        {
            "@timestamp": "2024-05-01T00:00:00Z",
            "message": "m",
            "log": {"level": "warning"},
            "service": {"name": "s"},
            "host": {"name": "h"},
            "trace": {"id": "t"},
            "tags": ["x", "y"],
        },
        {"delete": {"_index": "a", "_id": "2"}},
        {"create": {}},
        b"{broken",
        {"update": {"_id": "3"}},
        {"doc": {}},
        {"create": {}},
        {"msg": "plain", "level": "debug"},
    )
    result = elastic.parse(body, LIMITS, index="url-index")
    assert rows_of(result) == [
        {
            "ts": "2024-05-01T00:00:00Z",
            "message": "m",
            "level": "warn",
            "service": "s",
            "host": "h",
            "trace_id": "t",
            "attrs": {"tags": '["x","y"]', "index": "a"},
        },
        {"message": "plain", "level": "debug", "attrs": {"index": "url-index"}},
    ]
    statuses = [(action, item["status"]) for entry in result.items for action, item in entry.items()]
    assert statuses == [("index", 201), ("delete", 400), ("create", 400), ("update", 400), ("create", 201)]
    assert result.items[0]["index"]["_id"] == "1" and result.errors


def test_elastic_bulk_errors_name_the_line_of_the_body_counting_blank_lines():
    body = b'\n{"create": {}}\n\n{"msg": "ok"}\n{"create": {}}\n{broken\n'
    result = elastic.parse(body, LIMITS)
    assert [(e.line, "line 6" in e.error) for e in result.parsed.errors] == [(6, True)]


@pytest.mark.parametrize("body", [b"not json\n{}\n", b'{"frobnicate": {}}\n{}\n', b'{"index": {}}\n'])
def test_elastic_malformed_action_lines_are_400(body):
    with pytest.raises(Refusal) as err:
        elastic.parse(body, LIMITS)
    assert err.value.status == 400


# --- syslog -----------------------------------------------------------------------------------

SYSLOG_CASES = [
    (
        "RFC 5424 with structured data and a BOM",
        b'<165>1 2003-10-11T22:14:15.003Z host.example evntslog 77 ID47 [ex@32473 iut="3" build_id="b9" '
        b'q="a\\"b"][two@1 deploy_id="d2"] \xef\xbb\xbfAn event',
        {
            "level": "info",
            "ts": "2003-10-11T22:14:15.003Z",
            "host": "host.example",
            "service": "evntslog",
            "message": "An event",
            "build_id": "b9",
            "deploy_id": "d2",
            "attrs": {
                "syslog.facility": "local4",
                "syslog.severity": "notice",
                "syslog.procid": "77",
                "syslog.msgid": "ID47",
                "syslog.sd_id": "ex@32473,two@1",
                "iut": "3",
                "q": 'a"b',
            },
        },
    ),
    (
        "RFC 5424 with nil values",
        b"<11>1 - - - - - - only text",
        {"level": "error", "message": "only text", "attrs": {"syslog.facility": "user", "syslog.severity": "err"}},
    ),
    (
        "RFC 3164 with a tag and pid",
        b"<34>Oct  5 22:14:15 mymachine su[230]: 'su root' failed",
        {
            "level": "fatal",
            "ts": "2024-10-05T22:14:15+00:00",
            "host": "mymachine",
            "service": "su",
            "message": "'su root' failed",
            "attrs": {"syslog.facility": "auth", "syslog.severity": "crit", "syslog.procid": "230"},
        },
    ),
    (
        "bare <PRI>message as SysLogHandler sends it, with an id token",
        b"<12>disk at 91% build_id=b-3\x00",
        {
            "level": "warn",
            "message": "disk at 91% build_id=b-3",
            "build_id": "b-3",
            "attrs": {"syslog.facility": "user", "syslog.severity": "warning"},
        },
    ),
    ("no priority at all", b"just words\n", {"message": "just words"}),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in SYSLOG_CASES], ids=[c[0] for c in SYSLOG_CASES])
def test_syslog_message(data, expected):
    from datetime import UTC, datetime

    assert syslog.parse_message(data, now=datetime(2024, 11, 1, tzinfo=UTC)) == expected


def test_syslog_tcp_framing_octet_counting_lf_and_nul():
    buffer = bytearray(b"11 <13>hello\nx\n<14>two\n<15>three\x0012 <13>partial")
    assert syslog.frames(buffer) == [b"<13>hello\nx", b"<14>two", b"<15>three"]
    assert buffer == b"12 <13>partial"
    buffer += b"!!"
    assert syslog.frames(buffer) == [b"<13>partial!"] and buffer == b"!"


# --- text -------------------------------------------------------------------------------------


def test_text_lines_become_messages_with_the_request_level():
    result = text.parse(b"first\r\n\n  second\n" + b"x" * 1001 + b"\n", LIMITS, level="WARN")
    assert rows_of(result) == [{"level": "warn", "message": "first"}, {"level": "warn", "message": "  second"}]
    assert [e.line for e in result.errors] == [4]
