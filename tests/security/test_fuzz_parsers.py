"""Every protocol parser, fed any bytes: rows or a clean rejection (Refusal), never a crash.

And the rows a parser does return are wire lines the engine can read: each a JSON object.
"""

from __future__ import annotations

import cramjam
import orjson
from flightlog.ingest.decompress import decompress
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols import elastic, jsonlines, loki, otlp, syslog, text
from flightlog.schema.refusal import Refusal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LIMITS = Limits(max_body_bytes=1024 * 1024, max_line_bytes=4096, max_attributes=32)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Any bytes; JSON documents of any shape; JSON with bytes flipped; protobuf-looking bytes.
any_body = st.one_of(
    st.binary(max_size=2048),
    json_values.map(orjson.dumps),
    st.lists(json_values.map(orjson.dumps), max_size=8).map(b"\n".join),
    st.tuples(json_values.map(orjson.dumps), st.binary(min_size=1, max_size=4)).map(lambda t: t[0][: len(t[0]) // 2] + t[1]),
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=16)), max_size=12).map(
        lambda fields: b"".join(bytes([tag]) + bytes([len(data)]) + data for tag, data in fields)
    ),
)


def _check(result_chunk) -> None:
    if not result_chunk.count:
        assert result_chunk.lines == b""
        return
    lines = result_chunk.lines.split(b"\n")
    assert len(lines) == result_chunk.count
    for line in lines:
        assert isinstance(orjson.loads(line), dict)


def _check_result(result) -> None:
    """Rows, and one error for each line refused, naming a line that exists."""
    _check(result.chunk)
    assert result.rejected == len(result.errors)
    for error in result.errors:
        assert error.line >= 1 and error.error


def _run(parse, *args):
    try:
        result = parse(*args)
    except Refusal as exc:
        assert 400 <= exc.status < 500 and exc.message
        return None
    return result


@FUZZ
@given(any_body, st.sampled_from(["application/x-ndjson", "application/json", ""]))
def test_jsonlines_parser(body, content_type):
    result = _run(jsonlines.parse, body, content_type, LIMITS)
    if result is not None:
        _check_result(result)
        if content_type != "application/json":  # NDJSON: every non-blank line is taken or refused
            assert result.accepted + result.rejected == sum(1 for line in body.split(b"\n") if line.strip())


@FUZZ
@given(any_body)
def test_text_parser(body):
    result = _run(text.parse, body, LIMITS)
    if result is not None:
        _check_result(result)


@FUZZ
@given(any_body, st.sampled_from([otlp.JSON, otlp.PROTOBUF]))
def test_otlp_parser(body, content_type):
    result = _run(otlp.parse, body, content_type, LIMITS)
    if result is not None:
        _check_result(result)


@FUZZ
@given(any_body, st.sampled_from(["application/json", "application/x-protobuf", ""]), st.booleans())
def test_loki_parser(body, content_type, snappy):
    if snappy:
        body = bytes(cramjam.snappy.compress_raw(body))
    result = _run(loki.parse, body, content_type, LIMITS)
    if result is not None:
        _check_result(result)


@FUZZ
@given(any_body, st.text(max_size=12))
def test_elasticsearch_bulk_parser(body, index):
    result = _run(elastic.parse, body, LIMITS, "default", None, index)
    if result is not None:
        _check_result(result.parsed)
        # one answer item per document, in order; the failed ones are the refused lines
        assert len(result.items) == result.parsed.accepted + result.parsed.rejected
        failed = sum(1 for item in result.items if next(iter(item.values()))["status"] >= 300)
        assert failed == result.parsed.rejected
        assert result.errors == (failed > 0)


@FUZZ
@given(st.lists(st.binary(max_size=512), max_size=6), st.binary(max_size=1024))
def test_syslog_parser_and_framing(messages, stream):
    result = _run(syslog.parse, messages, LIMITS)
    if result is not None:
        _check_result(result)
    buffer = bytearray(stream)
    frames = syslog.frames(buffer)
    assert sum(map(len, frames)) + len(buffer) <= len(stream)
    for frame in frames:
        syslog.parse_message(frame)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(["gzip", "deflate", "zstd", "gzip, gzip", "br"]))
def test_decompress(body, coding):
    result = _run(decompress, body, coding, 64 * 1024)
    if result is not None:
        assert len(result) <= 64 * 1024
