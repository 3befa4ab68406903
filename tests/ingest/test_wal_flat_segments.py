"""Simple lines go to flat WAL segments that the engine reads with its JSON reader; the rows
must be exactly those the general path makes from the same lines."""

from __future__ import annotations

import orjson
from flightlog.ingest.batcher import Batcher
from flightlog.ingest.insert_sql import is_simple_line
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols import jsonlines

from tests.ingest.helpers import rows
from tests.ingest.test_insert_sql import CASES, OBSERVED_NS

EXTRA = [
    {"msg": "n", "ts": 1795867200.25, "level": 30, "service": "null", "host": "", "attrs": {"a": None, "b": 1.5}},
    {"message": "{not an object", "severity": True, "attrs": {"q": "say \"hi\"", "u": "ünï\u2028"}},
    {"msg": "dup", "message": "second", "log": "third", "trace_id": 12, "traceId": "x"},
]


async def ingest(store, settings, lines, simple: bool):
    body = b"\n".join(orjson.dumps(line) for line in lines)
    result = jsonlines.parse(body, "application/x-ndjson", Limits.from_settings(settings), "t1", {"host": "dflt"})
    result.chunk.observed_ns = OBSERVED_NS
    result.chunk.simple = simple
    batcher = Batcher(store, settings.data_dir / "wal-test", max_age_ms=10)
    await batcher.start()
    await batcher.append(result.chunk)
    await batcher.stop()
    landed = rows(store)
    store.command("TRUNCATE TABLE logs")
    return landed


def test_simple_lines_are_recognised():
    assert is_simple_line(b'{"msg":"a","attrs":{"k":"v"}}', {"msg": "a", "attrs": {"k": "v"}})
    assert not is_simple_line(b'{"msg":"a","extra":1}', {"msg": "a", "extra": 1})
    assert not is_simple_line(b'{"service":{"name":"x"}}', {"service": {"name": "x"}})
    assert not is_simple_line(b'{"msg":"a","attrs":{"k":{"n":1}}}', {"msg": "a", "attrs": {"k": {"n": 1}}})
    assert not is_simple_line(b'{"msg":["a"]}', {"msg": ["a"]})
    assert not is_simple_line(b'{"msg":"a","attrs":"text"}', {"msg": "a", "attrs": "text"})


async def test_flat_segments_make_the_same_rows_as_the_general_path(store, settings):
    lines = [line for line, _ in CASES] + EXTRA
    simple = [line for line in lines if is_simple_line(orjson.dumps(line), line)]
    assert len(simple) >= len(lines) // 2, "most normalisation cases are simple lines"
    flat = await ingest(store, settings, simple, simple=True)
    general = await ingest(store, settings, simple, simple=False)
    assert len(flat) == len(simple)
    key = lambda r: (r["ts"], r["message"], r["level"], r["service"])  # noqa: E731
    assert sorted(flat, key=key) == sorted(general, key=key)
