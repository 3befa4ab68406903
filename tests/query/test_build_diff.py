"""What is new in this build: a seeded pair of builds with planted templates (the diff must find
exactly those), a deploy's before/after rates, the failure panel, refusals and tenants."""

from __future__ import annotations

import random
import time
import uuid

import pytest
from flightlog.ingest.cicd.events import from_api, store_events
from flightlog.query import build_diff
from flightlog.web.server import create_app

from tests.query.data import NS, insert, make_line

MINUTE = 60 * NS

# Shared by both builds: the variable parts (numbers, uuids, hex, paths, quoted strings) differ.
COMMON = [
    lambda r: f"GET /api/v1/items/{r.randint(1, 9999)} 200 in {r.random() * 90:.1f} ms",
    lambda r: f"request {uuid.UUID(int=r.getrandbits(128))} done",
    lambda r: f"loaded {r.randint(1, 500)} rows from '{r.choice(['users', 'orders', 'items'])}'",
    lambda r: f"commit {r.getrandbits(160):040x} checked out",
    lambda r: f"wrote /var/tmp/build-{r.randint(1, 99)}/out.{r.randint(1, 9)}.tar",
    lambda r: f"pointer 0x{r.getrandbits(48):x} freed",
    lambda r: "compiling module",
]
# (template the engine should produce, line factory, lines, level)
PLANTED_NEW = [
    ("connection to <*> refused after <*> retries", lambda r, i: f"connection to 'db-{i % 3}' refused after {i} retries", 12, "error"),
    ("cache miss for key <*> in <*>", lambda r, i: f"cache miss for key 0x{r.getrandbits(32):x} in /var/cache/{i}", 5, "warn"),
    ("worker <*> crashed with signal <*>", lambda r, i: f"worker {i} crashed with signal 11", 1, "fatal"),
]
PLANTED_GONE = [
    ("warm cache hit ratio <*>", lambda r, i: f"warm cache hit ratio {r.random():.2f}", 7, "info"),
    ("legacy path <*> used", lambda r, i: f"legacy path /opt/old/{i} used", 3, "info"),
]


def seed(store, tenant="default", t0=None):
    """base-1 (success) then cur-2 (failure) of acme/shop "ci" on main, 400 common lines each."""
    t0 = t0 or time.time_ns() - 120 * MINUTE
    r = random.Random(7)
    ci = {"repo": "acme/shop", "pipeline": "ci", "branch": "main"}
    store_events(store, tenant, [from_api("build", "base-1", {"status": "success", "ts": t0 / NS, **ci}, t0 * 2),
                                 from_api("build", "cur-2", {"status": "failure", "ts": (t0 + 30 * MINUTE) / NS, **ci},
                                          t0 * 2)])
    lines = []
    for build, start, planted, hosts in (("base-1", t0, PLANTED_GONE, ["h1", "h2"]),
                                         ("cur-2", t0 + 30 * MINUTE, PLANTED_NEW, ["h1", "h2", "h3"])):
        for i in range(400):
            lines.append(make_line(start + i * NS // 10, build_id=build, tenant=tenant, service="api",
                                   host=hosts[i % len(hosts)], message=COMMON[i % len(COMMON)](r),
                                   level="error" if i % 100 == 0 else "info"))
        for _template, factory, count, level in planted:
            for i in range(count):
                lines.append(make_line(start + 5 * NS + i * NS, build_id=build, tenant=tenant,
                                       service="worker" if build == "cur-2" else "api", host=hosts[-1],
                                       message=factory(r, i + 1), level=level))
    r.shuffle(lines)
    insert(store, lines)
    return lines


def test_the_diff_finds_exactly_the_planted_templates(store):
    lines = seed(store)
    diff = build_diff.build_diff(store, "default", "cur-2", "previous")
    assert diff["against"] == "base-1"
    assert {(t["template"], t["count"]) for t in diff["new"]} == {(t, n) for t, _f, n, _lv in PLANTED_NEW}
    assert {(t["template"], t["count"]) for t in diff["gone"]} == {(t, n) for t, _f, n, _lv in PLANTED_GONE}
    assert diff["new_count"] == 3 and diff["gone_count"] == 2
    assert diff["templates"] == {"this": len(COMMON) + 3, "against": len(COMMON) + 2}
    # the first line of each new template is the earliest planted line, with its ref
    refused = next(t for t in diff["new"] if t["template"].startswith("connection"))
    earliest = min((ln for ln in lines if ln["message"].startswith("connection")), key=lambda ln: (ln["ts_ns"], ln["seq"]))
    assert refused["first"]["message"] == earliest["message"] == "connection to 'db-1' refused after 1 retries"
    assert refused["first"]["ref"] == f"{earliest['ts_ns']}-{earliest['seq']}"
    assert (refused["errors"], refused["first"]["service"], refused["first"]["host"]) == (12, "worker", "h3")
    # errors per template and per service, against the baseline
    by_template = {e["template"]: (e["errors"], e["against"]) for e in diff["errors_by_template"]}
    assert by_template["connection to <*> refused after <*> retries"] == (12, 0)
    assert by_template["worker <*> crashed with signal <*>"] == (1, 0)
    assert {e["service"]: (e["this"], e["against"]) for e in diff["errors_by_service"]} == {
        "api": (4, 4), "worker": (13, 0)}
    assert diff["new_services"] == ["worker"] and diff["new_hosts"] == ["h3"] and diff["gone_services"] == []


def test_against_last_success_an_id_and_the_refusals(store):
    seed(store)
    assert build_diff.build_diff(store, "default", "cur-2", "last-success")["against"] == "base-1"
    reverse = build_diff.build_diff(store, "default", "base-1", "cur-2")
    assert {t["template"] for t in reverse["new"]} == {t for t, *_ in PLANTED_GONE}
    from flightlog.schema.refusal import Refusal

    with pytest.raises(Refusal) as exc:
        build_diff.build_diff(store, "default", "base-1", "previous")
    assert exc.value.status == 404 and "no earlier build" in exc.value.message
    with pytest.raises(Refusal) as exc:
        build_diff.build_diff(store, "default", "cur-2", "nope")
    assert exc.value.status == 404
    insert(store, [make_line(build_id="no-record")])
    with pytest.raises(Refusal) as exc:
        build_diff.build_diff(store, "default", "no-record", "previous")
    assert exc.value.status == 400 and "no CI record" in exc.value.message


def test_tenants_stay_apart_in_the_diff(store):
    seed(store)
    # another tenant: the same ids, no planted lines at all
    insert(store, [make_line(build_id=b, tenant="globex", message="same everywhere") for b in ("base-1", "cur-2")])
    store_events(store, "globex", [from_api("build", "base-1", {"status": "success", "repo": "g", "pipeline": "ci"},
                                            time.time_ns() - 10 * MINUTE)])
    diff = build_diff.build_diff(store, "globex", "cur-2", "base-1")
    assert diff["new"] == [] and diff["gone"] == [] and diff["lines"] == {"this": 1, "against": 1}


def seed_deploy(store) -> int:
    """dep-9 an hour ago on api: 10 lines a minute in api and web for 15 minutes each side, and
    after it 2 errors a minute of a template api never logged before. Returns its time."""
    at = time.time_ns() - 60 * MINUTE
    store_events(store, "default", [from_api("deploy", "dep-9", {"status": "running", "ts": at / NS,
                                                                  "environment": "production"}, at * 2)])
    lines = [make_line(at + NS, deploy_id="dep-9", service="api", message="deploying v9")]
    for minute in range(-15, 15):
        for i in range(10):  # 10 lines a minute, both services, before and after
            ts = at + minute * MINUTE + i * 5 * NS + NS // 2
            lines.append(make_line(ts, service="api", message=f"served {i} requests"))
            lines.append(make_line(ts, service="web", message=f"page {i} rendered"))
        if minute >= 0:  # after: 2 errors a minute of a template never seen before, in api only
            for i in range(2):
                lines.append(make_line(at + minute * MINUTE + (50 + i) * NS, service="api", level="error",
                                       message=f"timeout calling 'payments' after {3000 + i} ms"))
    lines.append(make_line(at - 20 * MINUTE, service="api", message="outside the window"))
    insert(store, lines)
    return at


def test_a_deploy_diff_compares_the_minutes_after_with_the_minutes_before_per_service(store):
    seed_deploy(store)
    diff = build_diff.deploy_diff(store, "default", "dep-9", 15)
    assert diff["at_from"] == "ci" and not diff["partial"]
    (api,) = diff["services"]  # the deploy's own services only
    assert api["service"] == "api"
    assert api["before"] == {"lines": 150, "errors": 0, "lines_per_min": 10.0, "errors_per_min": 0.0}
    # after: 150 + 30 errors + the deploy's own line
    assert api["after"] == {"lines": 181, "errors": 30, "lines_per_min": 12.067, "errors_per_min": 2.0}
    templates = {(t["service"], t["template"]): (t["count"], t["errors"]) for t in diff["new"]}
    assert templates == {("api", "timeout calling <*> after <*> ms"): (30, 30), ("api", "deploying v<*>"): (1, 0)}
    both = build_diff.deploy_diff(store, "default", "dep-9", 15, services=["api", "web"])
    web = next(s for s in both["services"] if s["service"] == "web")
    assert web["before"]["lines"] == web["after"]["lines"] == 150


async def test_a_failed_deploy_page_shows_its_before_and_after_first(aiohttp_client, settings, store):
    at = seed_deploy(store)
    client = await aiohttp_client(create_app(settings, roles={"query"}, store=store))
    html = await (await client.get("/deploys/dep-9", headers={"Accept": "text/html"})).text()
    assert "New in this deploy" not in html  # running, not failed
    store_events(store, "default", [from_api("deploy", "dep-9", {"status": "failure", "ts": at / NS + 600}, at * 2)])
    html = await (await client.get("/deploys/dep-9", headers={"Accept": "text/html"})).text()
    assert html.index("New in this deploy") < html.index("Timeline")
    assert "timeout calling &lt;*&gt; after &lt;*&gt; ms" in html and "12.067" in html
    api = await (await client.get("/api/v1/deploys/dep-9/diff", params={"minutes": "5"})).json()
    assert api["minutes"] == 5 and api["services"][0]["before"]["lines"] == 50
    assert (await client.get("/api/v1/deploys/dep-9/diff", params={"minutes": "9999"})).status == 400
    assert (await client.get("/api/v1/deploys/nope/diff")).status == 404


async def test_a_failed_build_page_shows_what_is_new_first(aiohttp_client, settings, store):
    seed(store)
    client = await aiohttp_client(create_app(settings, roles={"query"}, store=store))
    html = await (await client.get("/builds/cur-2", headers={"Accept": "text/html"})).text()
    assert "New in this build" in html
    assert html.index("New in this build") < html.index("Timeline")
    assert "connection to &lt;*&gt; refused after &lt;*&gt; retries" in html
    ok_page = await (await client.get("/builds/base-1", headers={"Accept": "text/html"})).text()
    assert "New in this build" not in ok_page
    api = await (await client.get("/api/v1/builds/cur-2/diff", params={"against": "last-success"})).json()
    assert api["against"] == "base-1" and api["new_count"] == 3
    resp = await client.get("/api/v1/builds/cur-2/diff", params={"limit": "0"})
    assert resp.status == 400
