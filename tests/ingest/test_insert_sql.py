"""The normalisation table: every alias, every timestamp form, defaults from the request.

Each case goes through the real path — the parser, a batch file, chDB's INSERT … SELECT —
and the row that lands is compared with what a user would expect.
"""

from __future__ import annotations

import orjson
import pytest
from flightlog.ingest.batcher import Batcher
from flightlog.ingest.chunk import Chunk
from flightlog.schema.settings import Settings

from tests.ingest.helpers import ingest_body, rows


@pytest.fixture
def settings(tmp_path) -> Settings:
    # The cases carry fixed times of late 2026: a retention that keeps them whenever the tests
    # run (a line older than the retention is refused; tests/reliability covers that).
    return Settings.from_values({"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 50, "retention_days": 25_000})

OBSERVED_NS = 1_795_741_323_000_000_000  # 2026-11-27T01:02:03Z, the arrival time of every case
OBSERVED = "2026-11-27 01:02:03.000000000"

CASES = [
    # (line, expected subset of the row)
    ({"msg": "a"}, {"message": "a", "ts": OBSERVED, "level": "info", "service": "", "attrs": {}}),
    ({"message": "b"}, {"message": "b"}),
    ({"log": "c"}, {"message": "c"}),
    ({"message": {"event": "structured"}}, {"message": '{"event":"structured"}'}),
    ({"msg": "x", "timestamp": "2026-11-28T12:00:00Z"}, {"ts": "2026-11-28 12:00:00.000000000"}),
    ({"msg": "x", "time": "2026-11-28T12:00:00.123456789Z"}, {"ts": "2026-11-28 12:00:00.123456789"}),
    ({"msg": "x", "@timestamp": "2026-11-28T13:00:00.5+01:00"}, {"ts": "2026-11-28 12:00:00.500000000"}),
    ({"msg": "x", "ts": "2026-11-28T12:00:00.1-02:30"}, {"ts": "2026-11-28 14:30:00.100000000"}),
    ({"msg": "x", "ts": "2026-11-28 12:00:00"}, {"ts": "2026-11-28 12:00:00.000000000"}),
    ({"msg": "x", "ts": 1795867200}, {"ts": "2026-11-28 12:00:00.000000000"}),
    ({"msg": "x", "ts": 1795867200.25}, {"ts": "2026-11-28 12:00:00.250000000"}),
    ({"msg": "x", "ts": 1795867200123}, {"ts": "2026-11-28 12:00:00.123000000"}),
    ({"msg": "x", "ts": 1795867200123456}, {"ts": "2026-11-28 12:00:00.123456000"}),
    ({"msg": "x", "ts": 1795867200123456789}, {"ts": "2026-11-28 12:00:00.123456789"}),
    ({"msg": "x", "ts": "1795867200123456789"}, {"ts": "2026-11-28 12:00:00.123456789"}),
    ({"msg": "x", "ts": "1795867200.5"}, {"ts": "2026-11-28 12:00:00.500000000"}),
    ({"msg": "x", "ts": "1795867200123"}, {"ts": "2026-11-28 12:00:00.123000000"}),
    ({"msg": "x", "severity": "ERROR"}, {"level": "error"}),
    ({"msg": "x", "level": "warning"}, {"level": "warn"}),
    ({"msg": "x", "log.level": "debug"}, {"level": "debug"}),
    ({"msg": "x", "lvl": "crit"}, {"level": "fatal"}),
    ({"msg": "x", "level": "TRACE"}, {"level": "trace"}),
    ({"msg": "x", "level": 50}, {"level": "error"}),
    ({"msg": "x", "level": "notice"}, {"level": "info"}),
    ({"msg": "x", "level": "bogus"}, {"level": "info"}),
    ({"msg": "x", "log": {"level": "warn"}}, {"level": "warn"}),
    ({"msg": "x", "service": "api"}, {"service": "api"}),
    ({"msg": "x", "service.name": "api"}, {"service": "api"}),
    ({"msg": "x", "service": {"name": "api"}}, {"service": "api"}),
    ({"msg": "x", "app": "api"}, {"service": "api"}),
    ({"msg": "x", "job": "api"}, {"service": "api"}),
    ({"msg": "x", "host": "h1"}, {"host": "h1"}),
    ({"msg": "x", "hostname": "h1"}, {"host": "h1"}),
    ({"msg": "x", "host.name": "h1"}, {"host": "h1"}),
    ({"msg": "x", "host": {"name": "h1"}}, {"host": "h1"}),
    ({"msg": "x", "pod": "web-7f9c"}, {"host": "web-7f9c"}),
    ({"msg": "x", "build_id": "b1"}, {"build_id": "b1"}),
    ({"msg": "x", "build.id": "b1"}, {"build_id": "b1"}),
    ({"msg": "x", "ci.build.id": "b1"}, {"build_id": "b1"}),
    ({"msg": "x", "ci": {"build": {"id": "b1"}}}, {"build_id": "b1"}),
    ({"msg": "x", "build_id": 1234}, {"build_id": "1234"}),
    ({"msg": "x", "deploy_id": "d1"}, {"deploy_id": "d1"}),
    ({"msg": "x", "deployment.id": "d1"}, {"deploy_id": "d1"}),
    ({"msg": "x", "trace_id": "abc", "span_id": "def"}, {"trace_id": "abc", "span_id": "def"}),
    ({"msg": "x", "request_id": "r1"}, {"request_id": "r1"}),
    ({"msg": "x", "user": "ada", "n": 3, "ok": True, "nested": {"a": [1]}},
     {"attrs": {"user": "ada", "n": "3", "ok": "true", "nested": '{"a":[1]}'}}),
    ({"msg": "x", "attrs": {"k": "v", "n": 1}}, {"attrs": {"k": "v", "n": "1"}}),
    ({"msg": "quote ' and \\ and \"", "x'y": "a'b"}, {"message": "quote ' and \\ and \"", "attrs": {"x'y": "a'b"}}),
    ({"msg": "ünïcödé ☃", "emoji": "🚀"}, {"message": "ünïcödé ☃", "attrs": {"emoji": "🚀"}}),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[orjson.dumps(c[0]).decode()[:60] for c in CASES])
async def test_a_line_lands_as_the_row_a_user_expects(store, settings, line, expected):
    await ingest_body(store, settings, orjson.dumps(line), observed_ns=OBSERVED_NS)
    [row] = rows(store)
    assert {k: row[k] for k in expected} == expected


async def test_all_cases_in_one_request_keep_their_own_fields(store, settings):
    body = b"\n".join(orjson.dumps({**line, "case": i}) for i, (line, _) in enumerate(CASES))
    await ingest_body(store, settings, body, observed_ns=OBSERVED_NS)
    landed = {int(r["attrs"]["case"]): r for r in rows(store)}
    assert len(landed) == len(CASES)
    for i, (_, expected) in enumerate(CASES):
        row = landed[i]
        for key, value in expected.items():
            if key == "attrs":
                assert {k: v for k, v in row["attrs"].items() if k != "case"} == value
            else:
                assert row[key] == value, (i, key)


async def test_defaults_fill_only_the_fields_a_line_lacks(store, settings):
    body = b'{"msg":"has its own","service":"own","host":"own-host"}\n{"msg":"takes defaults"}'
    defaults = {"service": "svc", "host": "h", "build_id": "b9", "deploy_id": "d9"}
    await ingest_body(store, settings, body, defaults=defaults)
    own, taken = sorted(rows(store), key=lambda r: r["message"])
    assert (own["service"], own["host"], own["build_id"]) == ("own", "own-host", "b9")
    assert (taken["service"], taken["host"], taken["build_id"], taken["deploy_id"]) == ("svc", "h", "b9", "d9")


async def test_lines_without_timestamps_keep_their_order_within_a_request(store, settings):
    body = b"\n".join(orjson.dumps({"msg": f"line {i}"}) for i in range(5000))
    await ingest_body(store, settings, body)
    assert [r["message"] for r in rows(store)] == [f"line {i}" for i in range(5000)]


@pytest.mark.parametrize("simple", [True, False], ids=["flat path", "general path"])
async def test_an_epoch_past_int64_nanoseconds_that_reaches_the_engine_lands_at_the_arrival_time(
    store, settings, simple
):
    # The parsers refuse such a time; should one get past them, the engine must not fail the
    # insert of the whole batch (forever) but store the line at its arrival time.
    lines = [b'{"ts":"99999999999999999999999999","msg":"huge"}', b'{"ts":"18446744073709551615","msg":"u64"}',
             b'{"ts":"1795867200","msg":"fine"}']
    if not simple:
        lines = [line[:-1] + b',"ctx":{"a":1}}' for line in lines]
    chunk = Chunk(b"\n".join(lines), len(lines), simple=simple, observed_ns=OBSERVED_NS)
    batcher = Batcher(store, settings.data_dir / "spool", max_age_ms=10)
    await batcher.start()
    await batcher.append(chunk)
    await batcher.stop(timeout=5)
    assert [(r["message"], r["ts"]) for r in rows(store)] == [
        ("huge", OBSERVED), ("u64", OBSERVED), ("fine", "2026-11-28 12:00:00.000000000")
    ]
