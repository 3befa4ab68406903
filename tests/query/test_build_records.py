"""Build records read back: the list filtered by repo, branch, pipeline and status, the previous
build of the same pipeline and branch, builds known from CI only or from lines only, and the page."""

from __future__ import annotations

import pytest
from flightlog.ingest.cicd.events import from_api, store_events
from flightlog.query import build_records
from flightlog.query.trails import ListCursor
from flightlog.web.server import create_app

from tests.query.data import NS, insert, make_line

T0 = 1_796_000_000 * NS  # 2026-12-01


def event(store, entity_id, minute, tenant="default", kind="build", **fields):
    store_events(store, tenant, [from_api(kind, entity_id, {"ts": (T0 + minute * 60 * NS) / NS, **fields}, T0 * 2)])


@pytest.fixture
def builds(store):
    """main of acme/shop's "ci": b1 success, b2 failure, b3 running; b4 on a branch; b5 another pipeline."""
    ci = {"repo": "acme/shop", "pipeline": "ci"}
    event(store, "b1", 0, status="running", branch="main", commit="c1", url="https://ci.example/b1", **ci)
    event(store, "b1", 5, status="success")
    event(store, "b2", 10, status="running", branch="main", commit="c2", **ci)
    event(store, "b2", 15, status="failure")
    event(store, "b3", 20, status="running", branch="main", commit="c3", **ci)
    event(store, "b4", 21, status="success", branch="feature/x", commit="c4", **ci)
    event(store, "b5", 22, status="success", branch="main", repo="acme/shop", pipeline="nightly")
    # lines: b2 has errors; "lonely" has lines and no record; an HTTP status attr changes nothing
    insert(store, [make_line(T0 + 11 * 60 * NS, build_id="b2", level="error", message="boom"),
                   make_line(T0 + 12 * 60 * NS, build_id="lonely", attrs={"status": "503"})])
    return store


def ids(body):
    return [item["id"] for item in body["items"]]


def test_the_list_has_records_and_line_only_builds_newest_first(builds):
    body = build_records.listing(builds, "default", "build")
    assert ids(body) == ["b5", "b4", "b3", "b2", "lonely", "b1"]
    by_id = {item["id"]: item for item in body["items"]}
    assert (by_id["b2"]["status"], by_id["b2"]["log_status"], by_id["b2"]["errors"]) == ("failure", "failed", 1)
    assert (by_id["lonely"]["status"], by_id["lonely"]["repo"]) == ("ok", "")
    assert by_id["b1"]["url"] == "https://ci.example/b1"


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"repos": ["acme/shop"]}, ["b5", "b4", "b3", "b2", "b1"]),
        ({"branches": ["main"]}, ["b5", "b3", "b2", "b1"]),
        ({"pipelines": ["ci"], "branches": ["main"]}, ["b3", "b2", "b1"]),
        ({"statuses": ["success"]}, ["b5", "b4", "b1"]),
        ({"statuses": ["failure", "ok"]}, ["b2", "lonely"]),
        ({"pipelines": ["ci"], "statuses": ["running"]}, ["b3"]),
        ({"repos": ["other/repo"]}, []),
    ],
)
def test_the_list_filters_by_repo_branch_pipeline_and_status(builds, filters, expected):
    assert ids(build_records.listing(builds, "default", "build", **filters)) == expected


def test_the_list_pages_through_records_and_lines_alike(builds):
    seen, cursor = [], None
    while True:
        body = build_records.listing(builds, "default", "build", 2, cursor=cursor)
        seen += ids(body)
        if not body["next_cursor"]:
            break
        cursor = ListCursor.decode(body["next_cursor"])
    assert seen == ["b5", "b4", "b3", "b2", "lonely", "b1"]


def test_each_build_links_to_the_previous_one_of_its_pipeline_and_branch(builds):
    assert build_records.summary(builds, "default", "build", "b3")["previous"] == "b2"
    assert build_records.summary(builds, "default", "build", "b2")["previous"] == "b1"
    assert build_records.summary(builds, "default", "build", "b1")["previous"] is None
    # another branch, another pipeline: no predecessor among main's "ci" builds
    assert build_records.summary(builds, "default", "build", "b4")["previous"] is None
    assert build_records.summary(builds, "default", "build", "b5")["previous"] is None
    rec = build_records.record(builds, "default", "build", "b3")
    assert build_records.neighbour(builds, "default", "build", "b3", rec, success_only=True) == "b1"


def test_another_tenant_sees_none_of_it(builds):
    event(builds, "b3", 30, tenant="globex", status="success", repo="globex/app", pipeline="ci", branch="main")
    assert ids(build_records.listing(builds, "globex", "build")) == ["b3"]
    assert build_records.summary(builds, "globex", "build", "b3")["previous"] is None
    assert build_records.summary(builds, "default", "build", "b3")["status"] == "running"


async def test_the_build_page_shows_the_record_its_ci_link_and_previous_build(aiohttp_client, settings, builds):
    client = await aiohttp_client(create_app(settings, roles={"query"}, store=builds))
    html = await (await client.get("/builds/b2", headers={"Accept": "text/html"})).text()
    assert 'href="/builds/b1"' in html and "acme/shop" in html and ">failure<" in html
    assert "lines: failed" in html
    # known from CI only: a page, not a 404
    resp = await client.get("/builds/b1", headers={"Accept": "text/html"})
    assert resp.status == 200
    assert 'href="https://ci.example/b1"' in await resp.text()
    # a url that is not http(s) is shown, never made a link
    event(builds, "b4", 40, url="javascript:alert(document.cookie)")
    html = await (await client.get("/builds/b4", headers={"Accept": "text/html"})).text()
    assert "javascript:alert(document.cookie)" in html and 'href="javascript:' not in html
    api = await (await client.get("/api/v1/builds", params={"branch": "main", "pipeline": "ci"})).json()
    assert [b["id"] for b in api["builds"]] == ["b3", "b2", "b1"]
