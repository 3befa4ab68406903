"""GET /api/v1/search?format=ndjson|csv: every match, streamed, with memory that stays bounded."""

from __future__ import annotations

import csv
import io
import time

import orjson

from tests.query.data import NS, insert, make_line

MB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def test_export_ndjson_has_every_match_newest_first_with_the_api_fields(client, store):
    now = time.time_ns()
    insert(
        store,
        [
            make_line(now - 30 * NS, message="older", attrs={"k": "v"}, trace_id="t1"),
            make_line(now - 20 * NS, message="newer"),
            make_line(now - 10 * NS, message="other service", service="worker"),
            make_line(now - 10 * NS, message="other tenant", tenant="other"),
        ],
    )
    resp = await client.get("/api/v1/search", params={"q": "service:api", "format": "ndjson"})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/x-ndjson"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert [r["message"] for r in rows] == ["newer", "older"]
    search = await (await client.get("/api/v1/search", params={"q": "service:api"})).json()
    assert [{k: r[k] for k in search["lines"][0]} for r in rows] == search["lines"]


async def test_export_csv_has_a_header_and_quotes_what_needs_quoting(client, store):
    insert(store, [make_line(message='a "quoted", line\nwith a newline', attrs={"k": "v"})])
    resp = await client.get("/api/v1/search", params={"format": "csv"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 1
    assert rows[0]["message"] == 'a "quoted", line\nwith a newline'
    assert orjson.loads(rows[0]["attrs"]) == {"k": "v"}
    assert rows[0]["ts"].endswith("Z") and rows[0]["ref"]


async def test_export_refuses_an_unknown_format_and_a_bad_query(client, store):
    assert (await client.get("/api/v1/search", params={"format": "xml"})).status == 400
    resp = await client.get("/api/v1/search", params={"format": "csv", "q": 'level:"'})
    assert resp.status == 400


async def test_export_of_a_million_lines_streams_with_bounded_memory(client, store):
    rows = 1_000_000
    store.command(
        "INSERT INTO logs (ts, observed_ts, seq, tenant, service, host, level, message) "
        "SELECT now64(9) - toIntervalMillisecond(number) AS t, t, number, 'default', 'api', "
        "concat('host-', toString(number % 20)), 'info', "
        f"concat('line ', toString(number), ' ', repeat('x', 150)) FROM numbers({rows})"
    )
    baseline = _rss_bytes()
    peak = baseline
    size = lines = 0
    resp = await client.get("/api/v1/search", params={"format": "ndjson", "from": "2h"})
    assert resp.status == 200
    async for chunk in resp.content.iter_chunked(1 << 20):
        size += len(chunk)
        lines += chunk.count(b"\n")
        peak = max(peak, _rss_bytes())
    growth = peak - baseline
    print(f"export: {lines} lines, {size / MB:.0f} MB, RSS growth {growth / MB:.0f} MB")
    assert lines == rows
    assert size > 250 * MB
    assert growth < size / 4, f"RSS grew {growth / MB:.0f} MB for a {size / MB:.0f} MB export"
