"""/pipelines: each repo/pipeline/branch with its last builds as status squares linking to them."""

from __future__ import annotations

import re

from flightlog.ingest.cicd.events import from_api, store_events
from flightlog.query.pipelines import pipelines

T0 = 1_796_000_000


def _build(store, build_id, minute, status, tenant="default", **fields):
    store_events(store, tenant, [from_api("build", build_id, {"status": status, "ts": T0 + minute * 60, **fields},
                                          T0 * 2 * 10**9)])


def _seed(store):
    shop = {"repo": "acme/shop", "pipeline": "ci"}
    for n, status in enumerate(["success", "failure", "success", "running"]):
        _build(store, f"shop-{n}", n, status, branch="main", **shop)
    _build(store, "shop-x", 1, "cancelled", branch="feature/x", **shop)
    _build(store, "api-1", 10, "failure", repo="acme/api", pipeline="release", branch="main")
    _build(store, "other", 20, "success", tenant="globex", repo="globex/app", pipeline="ci", branch="main")


def test_pipelines_list_each_branch_with_its_builds_newest_first(store):
    _seed(store)
    rows = pipelines(store, "default")
    assert [(p["repo"], p["pipeline"], p["branch"]) for p in rows] == [
        ("acme/api", "release", "main"), ("acme/shop", "ci", "main"), ("acme/shop", "ci", "feature/x")]
    shop = rows[1]
    assert [(b["id"], b["status"]) for b in shop["builds"]] == [
        ("shop-3", "running"), ("shop-2", "success"), ("shop-1", "failure"), ("shop-0", "success")]
    assert [p["repo"] for p in pipelines(store, "default", repos=("acme/shop",))] == ["acme/shop", "acme/shop"]
    assert [p["repo"] for p in pipelines(store, "globex")] == ["globex/app"]


async def test_the_page_draws_a_square_per_build_linking_to_its_page(client, store):
    html = await (await client.get("/pipelines")).text()
    assert "No pipelines yet" in html
    _seed(store)
    html = await (await client.get("/pipelines")).text()
    squares = re.findall(r'<a class="square status-(\w+)" href="/builds/([^"]+)"', html)
    assert squares[:1] == [("failure", "api-1")]
    assert squares[1:5] == [("running", "shop-3"), ("success", "shop-2"), ("failure", "shop-1"), ("success", "shop-0")]
    assert "globex" not in html
    filtered = await (await client.get("/pipelines", params={"repo": "acme/api"})).text()
    assert "shop-0" not in filtered and "api-1" in filtered
    index = await (await client.get("/", params={"pipeline": "release"})).text()
    assert "api-1" in index and "shop-0" not in index
