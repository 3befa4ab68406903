"""Build and deploy summaries and trails over the JSON API, against a fleet of 50 builds."""

from __future__ import annotations

from tests.query.data import SERVICES, insert, make_fleet, make_line, rfc3339


def _refs(lines):
    return [f"{line['ts_ns']}-{line['seq']}" for line in lines]


async def _all_pages(client, path, **params):
    """Follow next_cursor to the end; returns (lines, number of pages)."""
    lines, pages, cursor = [], 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        resp = await client.get(path, params=query)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        lines += body["lines"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return lines, pages


async def test_trail_returns_exactly_its_builds_lines_in_order(client, store):
    fleet = make_fleet(store)
    for build_id in ("b000", "b017", "b049"):
        resp = await client.get(f"/api/v1/builds/{build_id}/trail")
        assert resp.status == 200
        body = await resp.json()
        assert body["build_id"] == build_id
        assert body["next_cursor"] is None
        expected = fleet.of("build_id", build_id)
        assert [line["ref"] for line in body["lines"]] == _refs(expected)
        assert all(line["build_id"] == build_id for line in body["lines"])


async def test_trail_lines_carry_every_field_with_nanosecond_rfc3339_times(client, store):
    fleet = make_fleet(store, builds=2)
    first = fleet.of("build_id", "b001")[0]
    body = await (await client.get("/api/v1/builds/b001/trail")).json()
    line = body["lines"][0]
    assert line == {
        "ts": rfc3339(first["ts_ns"]),
        "service": first["service"],
        "host": first["host"],
        "level": first["level"],
        "message": first["message"],
        "build_id": "b001",
        "deploy_id": first["deploy_id"],
        "trace_id": first["trace_id"],
        "span_id": "",
        "request_id": first["request_id"],
        "attrs": {"step": "0"},
        "ref": f"{first['ts_ns']}-{first['seq']}",
    }
    assert line["ts"].endswith("Z") and len(line["ts"].split(".")[1]) == 10


async def test_trail_pagination_with_cursor_covers_every_line_exactly_once(client, store):
    fleet = make_fleet(store)
    lines, pages = await _all_pages(client, "/api/v1/builds/b020/trail", limit=7)
    expected = fleet.of("build_id", "b020")
    assert pages == -(-len(expected) // 7)
    assert [line["ref"] for line in lines] == _refs(expected)


async def test_trail_pagination_keeps_lines_that_share_a_timestamp(client, store):
    ts = 1_795_867_200_000_000_000
    lines = [make_line(ts, build_id="tie", message=f"m{i}") for i in range(9)]
    insert(store, lines[::-1])
    got, _ = await _all_pages(client, "/api/v1/builds/tie/trail", limit=2)
    assert [line["message"] for line in got] == [f"m{i}" for i in range(9)]


async def test_trail_filters_by_service_host_and_level(client, store):
    fleet = make_fleet(store)
    expected = fleet.of("build_id", "b003")
    service = expected[0]["service"]
    host = expected[0]["host"]
    cases = [
        ({"service": service}, lambda r: r["service"] == service),
        ({"host": host}, lambda r: r["host"] == host),
        ({"level": "error"}, lambda r: r["level"] == "error"),
        ({"level": "error,fatal"}, lambda r: r["level"] in ("error", "fatal")),
        ({"service": service, "level": "info"}, lambda r: r["service"] == service and r["level"] == "info"),
    ]
    for params, keep in cases:
        body = await (await client.get("/api/v1/builds/b003/trail", params=params)).json()
        want = [r for r in expected if keep(r)]
        assert want, params
        assert [line["ref"] for line in body["lines"]] == _refs(want), params


async def test_trail_filter_matching_nothing_is_an_empty_trail_not_a_404(client, store):
    make_fleet(store, builds=2)
    resp = await client.get("/api/v1/builds/b001/trail", params={"host": "nowhere"})
    assert resp.status == 200
    assert (await resp.json())["lines"] == []


async def test_deploy_trail_returns_the_lines_of_every_build_it_shipped_that_carry_it(client, store):
    fleet = make_fleet(store)
    lines, _ = await _all_pages(client, "/api/v1/deploys/d004/trail", limit=1000)
    expected = fleet.of("deploy_id", "d004")
    assert [line["ref"] for line in lines] == _refs(expected)
    assert {line["build_id"] for line in lines} == {"b020", "b021", "b022", "b023", "b024"}


async def test_build_summary_counts_levels_services_hosts_and_links_deploys(client, store):
    fleet = make_fleet(store)
    expected = fleet.of("build_id", "b012")
    resp = await client.get("/api/v1/builds/b012")
    assert resp.status == 200
    body = await resp.json()
    assert body["build_id"] == "b012"
    assert body["lines"] == len(expected) == 40
    assert body["first_ts"] == rfc3339(expected[0]["ts_ns"])
    assert body["last_ts"] == rfc3339(expected[-1]["ts_ns"])
    levels: dict[str, int] = {}
    for line in expected:
        levels[line["level"]] = levels.get(line["level"], 0) + 1
    assert body["levels"] == levels
    assert list(body["levels"]) == [lv for lv in ("trace", "debug", "info", "warn", "error", "fatal") if lv in levels]
    assert body["services"] == sorted(SERVICES)
    assert body["deploys"] == ["d002"]
    pairs = {(line["host"], line["service"]) for line in expected}
    assert {(h["host"], h["service"]) for h in body["hosts"]} == pairs
    assert sum(h["lines"] for h in body["hosts"]) == 40
    for h in body["hosts"]:
        mine = [r for r in expected if r["host"] == h["host"]]
        assert h["first_ts"] == rfc3339(mine[0]["ts_ns"])
        assert h["last_ts"] == rfc3339(mine[-1]["ts_ns"])


async def test_deploy_summary_lists_the_builds_it_references(client, store):
    make_fleet(store)
    body = await (await client.get("/api/v1/deploys/d001")).json()
    assert body["deploy_id"] == "d001"
    assert body["builds"] == ["b005", "b006", "b007", "b008", "b009"]
    assert body["lines"] == 5 * 20


async def test_unknown_build_or_deploy_is_a_404_with_a_message(client, store):
    make_fleet(store, builds=2)
    for path in (
        "/api/v1/builds/nope",
        "/api/v1/builds/nope/trail",
        "/api/v1/deploys/nope",
        "/api/v1/deploys/nope/trail",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "no build" in (await resp.json())["error"] or "no deploy" in (await resp.json())["error"]


async def test_another_tenants_build_is_invisible(client, store):
    insert(store, [make_line(build_id="secret", tenant="other")])
    assert (await client.get("/api/v1/builds/secret")).status == 404
    assert (await client.get("/api/v1/builds/secret/trail")).status == 404
    body = await (await client.get("/api/v1/builds")).json()
    assert body["builds"] == []


async def test_trail_limit_above_10000_or_bad_cursor_is_a_400_naming_the_param(client, store):
    make_fleet(store, builds=1)
    for params, name in (
        ({"limit": "10001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"level": "loud"}, "level"),
    ):
        resp = await client.get("/api/v1/builds/b000/trail", params=params)
        assert resp.status == 400, params
        assert (await resp.json())["error"].startswith(name + ":"), params
    assert (await client.get("/api/v1/builds/b000/trail", params={"limit": "10000"})).status == 200


async def test_recent_builds_and_deploys_are_newest_first_with_counts(client, store):
    fleet = make_fleet(store)
    body = await (await client.get("/api/v1/builds", params={"limit": "3"})).json()
    assert [b["id"] for b in body["builds"]] == ["b049", "b048", "b047"]
    newest = body["builds"][0]
    lines = fleet.of("build_id", "b049")
    assert newest["build_id"] == "b049"
    assert newest["lines"] == 40
    assert newest["errors"] == sum(1 for r in lines if r["level"] in ("error", "fatal"))
    assert newest["services"] == sorted(SERVICES)
    assert newest["hosts"] == sorted({r["host"] for r in lines})
    assert newest["first_ts"] == rfc3339(lines[0]["ts_ns"])
    assert newest["last_ts"] == rfc3339(lines[-1]["ts_ns"])
    assert newest["deploys"] == ["d009"]
    deploys = (await (await client.get("/api/v1/deploys")).json())["deploys"]
    assert [d["id"] for d in deploys] == [f"d{n:03d}" for n in range(9, -1, -1)]
    assert deploys[0]["builds"] == ["b045", "b046", "b047", "b048", "b049"]
