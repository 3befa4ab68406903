"""GET /api/v1/histogram and /api/v1/facets: counts by time bucket and level, top values."""

from __future__ import annotations

import time

import pytest
from flightlog.query.histogram import nice_step_ns

from tests.query.data import NS, insert, make_line, rfc3339


@pytest.mark.parametrize(
    "span_s, buckets, step_s",
    [(3600, 60, 60), (3600, 100, 60), (3600, 10, 600), (86400, 60, 1800), (60, 60, 1), (7 * 86400, 60, 3 * 3600)],
)
def test_bucket_width_is_the_smallest_nice_step_that_fits(span_s, buckets, step_s):
    assert nice_step_ns(span_s * NS, buckets) == step_s * NS


async def test_histogram_counts_matches_per_bucket_and_level(client, store):
    base = (time.time_ns() // (3600 * NS) - 2) * 3600 * NS  # an hour boundary, two hours back
    insert(
        store,
        [
            make_line(base + 10 * NS, level="info"),
            make_line(base + 20 * NS, level="error"),
            make_line(base + 59 * NS, level="error"),
            make_line(base + 61 * NS, level="warn"),
            make_line(base + 3599 * NS, level="info"),
            make_line(base + 30 * NS, level="info", service="worker"),
            make_line(base + 30 * NS, level="info", tenant="other"),
        ],
    )
    resp = await client.get(
        "/api/v1/histogram",
        params={"q": "service:api", "from": rfc3339(base), "to": rfc3339(base + 3600 * NS), "buckets": "60"},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["step_seconds"] == 60
    assert len(body["buckets"]) == 60
    assert body["buckets"][0] == {"ts": rfc3339(base), "total": 3, "counts": {"info": 1, "error": 2}}
    assert body["buckets"][1]["counts"] == {"warn": 1}
    assert body["buckets"][59]["counts"] == {"info": 1}
    assert body["total"] == 5 and body["max"] == 3
    assert body["levels"][:6] == ["trace", "debug", "info", "warn", "error", "fatal"]


async def test_histogram_of_an_id_query_spans_its_matches(client, store):
    old = time.time_ns() - 3 * 86400 * NS
    insert(store, [make_line(old, trace_id="t9"), make_line(old + 5 * NS, trace_id="t9")])
    body = await (await client.get("/api/v1/histogram", params={"q": "trace_id:t9"})).json()
    assert body["total"] == 2
    assert body["buckets"][0]["total"] >= 1


async def test_histogram_refuses_bad_buckets_and_queries(client, store):
    assert (await client.get("/api/v1/histogram", params={"buckets": "0"})).status == 400
    assert (await client.get("/api/v1/histogram", params={"buckets": "5000"})).status == 400
    resp = await client.get("/api/v1/histogram", params={"q": "(a"})
    assert resp.status == 400 and (await resp.json())["position"] == 1


async def test_facets_list_top_values_with_counts(client, store):
    lines = [make_line(service="api", host=f"h{i % 3}") for i in range(6)]
    lines += [make_line(service="worker", level="error", attrs={"region": "eu"}) for _ in range(3)]
    lines += [make_line(service="billing", level="error"), make_line(service="zzz", tenant="other")]
    insert(store, lines)
    body = await (await client.get("/api/v1/facets", params={"field": "service"})).json()
    assert body == {
        "field": "service",
        "values": [{"value": "api", "count": 6}, {"value": "worker", "count": 3}, {"value": "billing", "count": 1}],
        "total": 10,
        "other": 0,
    }
    body = await (await client.get("/api/v1/facets", params={"field": "service", "limit": "1", "q": "-host:h0"})).json()
    assert body["values"] == [{"value": "api", "count": 4}] and body["other"] == 4
    body = await (await client.get("/api/v1/facets", params={"field": "attrs.region", "q": "level:error"})).json()
    assert body["values"] == [{"value": "eu", "count": 3}, {"value": "", "count": 1}]


async def test_facets_refuse_fields_outside_the_list(client, store):
    for field in ("message", "tenant", "attrs.", "1; DROP TABLE logs"):
        resp = await client.get("/api/v1/facets", params={"field": field})
        assert resp.status == 400, field
        assert (await resp.json())["error"].startswith("field:")
