"""The correlation index and summaries: status, links, gone hosts, expansion, context, lists, replays."""

from __future__ import annotations

import time

import orjson

from tests.query.data import NS, insert, make_fleet, make_line, rfc3339

MINUTE = 60 * NS


def _ago(minutes: float) -> int:
    return time.time_ns() - int(minutes * MINUTE)


async def _get(client, path, expect=200, **params):
    resp = await client.get(path, params=params)
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def test_build_status_is_failed_with_an_error_line_else_ok(client, store):
    insert(store, [make_line(build_id="good", level="info"), make_line(build_id="good", level="warn")])
    insert(store, [make_line(build_id="bad", level="info"), make_line(build_id="bad", level="error")])
    assert (await _get(client, "/api/v1/builds/good"))["status"] == "ok"
    assert (await _get(client, "/api/v1/builds/bad"))["status"] == "failed"


async def test_a_generic_status_attribute_never_sets_a_build_status_but_build_status_does(client, store):
    base = _ago(30)
    insert(
        store,
        [
            # an HTTP status on a line of the build is not the build's status
            make_line(base, build_id="http", attrs={"status": "404"}, message="GET /missing"),
            make_line(base, build_id="retry", level="error", message="flaky test"),
            make_line(base + NS, build_id="retry", attrs={"build.status": "running"}),
            make_line(base + 2 * NS, build_id="retry", attrs={"build.status": "passed"}, message="done"),
            make_line(base, build_id="middle", attrs={"build_status": "success"}),
            make_line(base + NS, build_id="middle", attrs={"build": '{"id": "middle", "status": "failed"}'}),
            make_line(base, deploy_id="d-http", attrs={"status": "500", "deploy.status": "bogus"}),
        ],
    )
    http = await _get(client, "/api/v1/builds/http")
    assert http["status"] == "ok" and http["record"] is None
    retry = await _get(client, "/api/v1/builds/retry")
    # CI's word (here a line's explicit build.status) and the lines' own say are both shown
    assert (retry["status"], retry["log_status"]) == ("success", "failed")
    assert [h["status"] for h in retry["record"]["history"]] == ["running", "success"]
    assert (await _get(client, "/api/v1/builds/middle"))["status"] == "failure"
    assert (await _get(client, "/api/v1/deploys/d-http"))["status"] == "ok"
    listed = {b["id"]: b["status"] for b in (await _get(client, "/api/v1/builds"))["builds"]}
    assert listed == {"http": "ok", "retry": "success", "middle": "failure"}


async def test_a_line_carrying_both_ids_links_build_and_deploy(client, store):
    insert(
        store,
        [
            make_line(build_id="b1", message="compile"),
            make_line(build_id="b1", deploy_id="d1", message="ship b1 as d1"),
            make_line(deploy_id="d1", message="restart"),
        ],
    )
    assert (await _get(client, "/api/v1/builds/b1"))["deploys"] == ["d1"]
    deploy = await _get(client, "/api/v1/deploys/d1")
    assert deploy["builds"] == ["b1"] and deploy["lines"] == 2


async def test_summary_marks_hosts_that_went_quiet_as_gone(client, store):
    insert(
        store,
        [
            make_line(_ago(60), build_id="b", host="old-box", service="api"),
            make_line(_ago(60), build_id="b", host="live-box", service="api"),
            make_line(_ago(1), host="live-box", service="api", message="still talking"),
        ],
    )
    body = await _get(client, "/api/v1/builds/b")
    gone = {h["host"]: h["gone"] for h in body["hosts"]}
    assert gone == {"old-box": True, "live-box": False}
    assert body["gone_hosts"] == 1


async def test_hosts_list_first_last_seen_services_builds_deploys_and_gone(client, store):
    old, recent = _ago(120), _ago(2)
    insert(
        store,
        [
            make_line(old, host="ci-1", service="ci", build_id="b7"),
            make_line(old + NS, host="ci-1", service="ci", build_id="b8", level="error"),
            make_line(recent, host="web-1", service="web", deploy_id="d3"),
            make_line(recent + NS, host="web-1", service="api"),
        ],
    )
    body = await _get(client, "/api/v1/hosts")
    by_host = {h["host"]: h for h in body["hosts"]}
    assert set(by_host) == {"ci-1", "web-1"}
    ci = by_host["ci-1"]
    assert ci["gone"] is True and ci["services"] == ["ci"]
    assert ci["first_ts"] == rfc3339(old) and ci["last_ts"] == rfc3339(old + NS)
    assert ci["build_count"] == 2 and ci["builds"] == ["b8", "b7"] and ci["errors"] == 1
    web = by_host["web-1"]
    assert web["gone"] is False and web["services"] == ["api", "web"] and web["deploys"] == ["d3"]
    assert [h["host"] for h in (await _get(client, "/api/v1/hosts", gone="1"))["hosts"]] == ["ci-1"]
    assert [h["host"] for h in (await _get(client, "/api/v1/hosts", service="web"))["hosts"]] == ["web-1"]
    await _get(client, "/api/v1/hosts", expect=400, gone="maybe")


async def test_gone_after_is_a_setting(aiohttp_client, settings, store):
    from dataclasses import replace

    from flightlog.web.server import create_app

    insert(store, [make_line(_ago(3), host="h", build_id="b")])
    client = await aiohttp_client(create_app(replace(settings, host_gone_after_s=60), roles={"query"}, store=store))
    assert (await _get(client, "/api/v1/hosts"))["hosts"][0]["gone"] is True
    assert (await _get(client, "/api/v1/builds/b"))["hosts"][0]["gone"] is True


def _webhook_fixture(store):
    """A push webhook (trace t1, no build id) starts build B; B's deploy step calls a migration
    runner by request r9, which in turn logs under trace t2 (a second hop)."""
    base = _ago(30)
    lines = [
        make_line(base, service="webhook", trace_id="t1", message="push received"),
        make_line(base + NS, service="ci", build_id="B", trace_id="t1", message="build started"),
        make_line(base + 2 * NS, service="ci", build_id="B", request_id="r9", message="run migrations"),
        make_line(base + 3 * NS, service="migrator", request_id="r9", trace_id="t2", message="migrating"),
        make_line(base + 4 * NS, service="db", trace_id="t2", message="ALTER TABLE"),
        make_line(base + 5 * NS, service="ci", build_id="B", message="build done"),
        make_line(base + 6 * NS, service="ci", build_id="OTHER", trace_id="t1", message="someone else's"),
    ]
    insert(store, lines)
    return lines


async def test_expand_1_adds_lines_sharing_a_trace_or_request_id_and_says_why(client, store):
    _webhook_fixture(store)
    plain = await _get(client, "/api/v1/builds/B/trail")
    assert [line["message"] for line in plain["lines"]] == ["build started", "run migrations", "build done"]
    assert "expand" not in plain and all("via" not in line for line in plain["lines"])
    body = await _get(client, "/api/v1/builds/B/trail", expand="1")
    got = [(line["message"], line.get("via")) for line in body["lines"]]
    assert got == [
        ("push received", "trace_id=t1"),
        ("build started", None),
        ("run migrations", None),
        ("migrating", "request_id=r9"),
        ("build done", None),
    ]
    assert body["expand"] == {"hops": 1, "cap": 200, "ids_followed": 2, "capped": False}


async def test_expand_2_follows_a_second_hop(client, store):
    _webhook_fixture(store)
    body = await _get(client, "/api/v1/builds/B/trail", expand="2")
    got = [(line["message"], line.get("via"), line.get("hop")) for line in body["lines"]]
    assert ("ALTER TABLE", "trace_id=t2", 2) in got
    assert ("migrating", "request_id=r9", 1) in got
    assert "someone else's" not in [g[0] for g in got]
    assert body["expand"]["ids_followed"] == 3


async def test_expand_cap_bounds_the_ids_followed_and_says_so(client, store):
    _webhook_fixture(store)
    body = await _get(client, "/api/v1/builds/B/trail", expand="2", expand_cap="1")
    assert body["expand"] == {"hops": 2, "cap": 1, "ids_followed": 1, "capped": True}
    # the earliest id is the one followed
    assert [line.get("via") for line in body["lines"] if "via" in line] == ["trace_id=t1"]
    await _get(client, "/api/v1/builds/B/trail", expect=400, expand="3")
    await _get(client, "/api/v1/builds/B/trail", expect=400, expand="1", expand_cap="0")


async def test_expanded_trail_pages_with_the_cursor_without_gaps(client, store):
    lines = _webhook_fixture(store)
    seen, cursor = [], None
    while True:
        params = {"expand": "2", "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await _get(client, "/api/v1/builds/B/trail", **params)
        seen += [line["message"] for line in body["lines"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [line["message"] for line in lines[:6]]


async def test_context_returns_neighbours_from_the_same_host_and_service(client, store):
    base = _ago(30)
    mine = [make_line(base + i * NS, host="h1", service="api", message=f"api {i}") for i in range(30)]
    noise = [make_line(base + i * NS + 1, host="h2", service="api", message=f"other {i}") for i in range(30)]
    noise += [make_line(base + i * NS + 2, host="h1", service="cron", message=f"cron {i}") for i in range(30)]
    insert(store, mine + noise)
    ref = f"{mine[10]['ts_ns']}-{mine[10]['seq']}"
    body = await _get(client, "/api/v1/context", ref=ref, before="3", after="4")
    assert body["line"]["message"] == "api 10" and body["ref"] == ref
    assert [line["message"] for line in body["before"]] == ["api 7", "api 8", "api 9"]
    assert [line["message"] for line in body["after"]] == ["api 11", "api 12", "api 13", "api 14"]
    body = await _get(client, "/api/v1/context", ref=ref)
    assert len(body["before"]) == 10 and len(body["after"]) == 19


async def test_context_reaches_a_neighbour_days_away(client, store):
    now = time.time_ns()
    old = make_line(now - 3 * 86400 * NS, host="quiet", message="days ago")
    new = make_line(now - MINUTE, host="quiet", message="now")
    insert(store, [old, new])
    body = await _get(client, "/api/v1/context", ref=f"{new['ts_ns']}-{new['seq']}", before="5", after="5")
    assert [line["message"] for line in body["before"]] == ["days ago"] and body["after"] == []


async def test_context_of_a_bad_or_unknown_ref(client, store):
    make_fleet(store, builds=1)
    assert (await _get(client, "/api/v1/context", expect=400, ref="nope"))["error"].startswith("ref:")
    await _get(client, "/api/v1/context", expect=404, ref="1795867200000000000-1")
    await _get(client, "/api/v1/context", expect=400, ref="1-1", before="9999")


async def test_every_trail_line_ref_opens_its_context(client, store):
    make_fleet(store, builds=2)
    trail = await _get(client, "/api/v1/builds/b001/trail")
    line = trail["lines"][5]
    body = await _get(client, "/api/v1/context", ref=line["ref"], before="0", after="0")
    assert body["line"] == line


async def test_builds_list_filters_by_time_service_and_status_and_pages(client, store):
    fleet = make_fleet(store, builds=12)
    all_ids = [f"b{n:03d}" for n in range(11, -1, -1)]
    got, cursor = [], None
    while True:
        body = await _get(client, "/api/v1/builds", limit="5", **({"cursor": cursor} if cursor else {}))
        got += [b["id"] for b in body["builds"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert got == all_ids
    # the fleet's builds all have error lines; one is a success by its explicit build.status
    last = fleet.of("build_id", "b004")[-1]
    insert(store, [make_line(last["ts_ns"] + 1, build_id="b004", service="api", attrs={"build.status": "ok"})])
    assert [b["id"] for b in (await _get(client, "/api/v1/builds", status="success"))["builds"]] == ["b004"]
    assert len((await _get(client, "/api/v1/builds", status="failed"))["builds"]) == 11
    first_b3 = fleet.of("build_id", "b003")[0]["ts_ns"]
    last_b5 = fleet.of("build_id", "b005")[-1]["ts_ns"]
    window = await _get(client, "/api/v1/builds", **{"from": rfc3339(first_b3), "to": rfc3339(last_b5)})
    assert [b["id"] for b in window["builds"]] == ["b005", "b004", "b003"]
    insert(store, [make_line(build_id="solo", service="lonely")])
    assert [b["id"] for b in (await _get(client, "/api/v1/builds", service="lonely"))["builds"]] == ["solo"]
    await _get(client, "/api/v1/builds", expect=400, cursor="garbage!")
    await _get(client, "/api/v1/builds", expect=400, **{"from": "yesterday-ish"})


def _insert_with_token(store, rows, token):
    body = b"\n".join(orjson.dumps({k: v for k, v in r.items() if k != "ts_ns"}) for r in rows).decode()
    store.command(
        "INSERT INTO logs SETTINGS insert_deduplicate = 1, deduplicate_blocks_in_dependent_materialized_views = 1, "
        f"insert_deduplication_token = '{token}' FORMAT JSONEachRow\n" + body
    )


async def test_a_replayed_batch_is_counted_once_in_every_summary(client, store):
    rows = [make_line(build_id="rb", deploy_id="rd", host=f"h{i % 3}", level="error" if i == 3 else "info")
            for i in range(50)]
    _insert_with_token(store, rows, "batch-1")
    _insert_with_token(store, rows, "batch-1")  # the replay after a crash
    build = await _get(client, "/api/v1/builds/rb")
    assert build["lines"] == 50 and build["levels"] == {"info": 49, "error": 1}
    assert sum(h["lines"] for h in build["hosts"]) == 50
    assert len((await _get(client, "/api/v1/builds/rb/trail"))["lines"]) == 50
    assert (await _get(client, "/api/v1/builds"))["builds"][0]["lines"] == 50
    hosts = (await _get(client, "/api/v1/hosts"))["hosts"]
    assert sum(h["lines"] for h in hosts) == 50 and sum(h["errors"] for h in hosts) == 1
