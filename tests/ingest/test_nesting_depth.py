"""Lines nested past the engine's depth limit are refused by number, whatever else the body
holds: the fast path's body-wide bracket count must not let one through."""

from __future__ import annotations

import orjson
import pytest
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols.jsonlines import MAX_DEPTH, parse

LIMITS = Limits(max_body_bytes=64 << 20, max_line_bytes=1 << 20, max_attributes=256)


def long_line(i: int) -> bytes:
    return orjson.dumps({"msg": f"line {i} " + "padding " * 40, "service": "api", "attrs": {"n": str(i)}})


def nested(depth: int) -> bytes:
    value: object = "bottom"
    for _ in range(depth - 1):
        value = {"k": value}
    return orjson.dumps({"msg": "deep", "ctx": value})


@pytest.mark.parametrize("position", [0, 57, 199])
def test_one_line_nested_past_the_limit_among_many_long_lines_is_refused_by_number(position):
    lines = [long_line(i) for i in range(200)]
    lines[position] = nested(MAX_DEPTH + 1)
    result = parse(b"\n".join(lines), "application/x-ndjson", LIMITS)
    assert [(e.line, e.reason) for e in result.errors] == [(position + 1, "too_deep")]
    assert result.chunk.count == 199


def test_a_line_nested_exactly_to_the_limit_is_kept():
    lines = [long_line(i) for i in range(50)] + [nested(MAX_DEPTH) + b" " * 300]
    result = parse(b"\n".join(lines), "application/x-ndjson", LIMITS)
    assert result.errors == []
    assert result.chunk.count == 51
