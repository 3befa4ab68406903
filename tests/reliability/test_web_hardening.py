"""The web face under attack: open redirects through the login, cross-site posts to an open
server, ids made of URL syntax, and /metrics read with another tenant's key."""

from __future__ import annotations

import asyncio
import html
import re
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import pytest
from flightlog.schema.api_keys import KeyFile, new_key
from flightlog.schema.app_state import BATCHER
from flightlog.schema.id_paths import id_segment
from flightlog.web.server import create_app


def make_key(settings, tenant: str, scope: str) -> str:
    record, text = new_key(tenant, scope)
    KeyFile(settings.data_dir).add(record)
    return text


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- open redirect ------------------------------------------------------------------------

HOSTILE_NEXT = [
    "/%09/evil.com",
    "/%0A/evil.com",
    "/%0D/evil.com",
    "/%0D%0A/evil.com",
    "/%09%09/evil.com",
    "%09//evil.com",
    "/%5Cevil.com",
    "%5C%5Cevil.com",
    "/%5C/evil.com",
    "//evil.com",
    "///evil.com",
    "/%2F/evil.com",
    "https://evil.com",
    "https:evil.com",
    "javascript:alert(1)",
    "%20//evil.com",
    "/%00/evil.com",
    "/%E2%80%8B/evil.com",
]


def browser_target(base: str, location: str) -> str:
    """Where a browser goes for `location`: tabs and newlines dropped, backslashes read as slashes."""
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/").strip(" \x00")
    return urljoin(base, cleaned)


@pytest.fixture
async def keyed_client(aiohttp_client, settings, store):
    read = make_key(settings, "acme", "read")
    client = await aiohttp_client(create_app(settings, store=store))
    return client, read


async def log_in(client, key: str, next_value: str):
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', await page.text()).group(1)
    return await client.post(
        "/login", data={"key": key, "csrf_token": token, "next": next_value}, allow_redirects=False
    )


@pytest.mark.parametrize("payload", HOSTILE_NEXT)
async def test_login_never_redirects_to_another_host(keyed_client, payload):
    client, key = keyed_client
    base = str(client.make_url("/"))
    page = await client.get(f"/login?next={payload}")
    assert page.status == 200
    rendered = html.unescape(re.search(r'name="next" value="([^"]*)"', await page.text()).group(1))
    assert rendered == "/", (payload, rendered)
    answer = await log_in(client, key, unquote(payload))
    assert answer.status == 303
    location = answer.headers["Location"]
    assert urlsplit(browser_target(base, location)).netloc == urlsplit(base).netloc, (payload, location)
    assert location == "/", (payload, location)


@pytest.mark.parametrize("target", ["/", "/builds/b-1", "/search?q=level%3Aerror", "/builds/%7Bx%7D"])
async def test_login_keeps_a_path_on_this_server(keyed_client, target):
    client, key = keyed_client
    answer = await log_in(client, key, target)
    assert answer.status == 303 and unquote(answer.headers["Location"]) == unquote(target)


# --- cross-site posts to an open server ---------------------------------------------------

CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost:1"},  # another port on this machine is another origin
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.fixture
async def open_client(aiohttp_client, settings, store):
    # no keys, loopback: the server runs open
    return await aiohttp_client(create_app(settings, store=store))


@pytest.mark.parametrize("path", ["/api/v1/logs", "/_bulk", "/v1/logs", "/loki/api/v1/push"])
@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_a_cross_site_post_to_an_open_server_is_refused(open_client, store, path, headers):
    body = b'{"msg": "forged"}' if path != "/_bulk" else b'{"index": {}}\n{"msg": "forged"}\n'
    resp = await open_client.post(path, data=body, headers={"Content-Type": "text/plain", **headers})
    assert resp.status == 403, (path, headers, resp.status, await resp.text())
    await open_client.app[BATCHER].flush()
    assert store.query("SELECT count() FROM logs").scalar() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, flightlog send, most shippers
        {"User-Agent": "node", "Sec-Fetch-Mode": "cors", "Accept-Language": "*"},  # Node's fetch
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ],
)
async def test_shippers_and_same_origin_posts_still_get_in(open_client, store, headers):
    resp = await open_client.post(
        "/api/v1/logs", data=b'{"msg": "shipped"}', headers={"Content-Type": "application/x-ndjson", **headers}
    )
    assert resp.status == 200, await resp.text()
    same_origin = {"Origin": str(open_client.make_url("/")).rstrip("/")}
    resp = await open_client.post("/api/v1/logs", data=b'{"msg": "page"}', headers=same_origin)
    assert resp.status == 200, await resp.text()


# --- hostile ids --------------------------------------------------------------------------

HOSTILE_IDS = [
    "{a}",
    "x}{y",
    "a/b",
    "a/trail",
    "50%",
    "a%2Fb",
    "%7B",
    "with space",
    "ünï©ødé-🚀",
    ".",
    "..",
    ".~",
    "...",
    "a?b#c",
    "a+b&c=d",
    "back\\slash",
    "<b>'\"",
    "tab\there",
]


async def listed(client, kind: str) -> set[str]:
    resp = await client.get(f"/api/v1/{kind}s?limit=100")
    assert resp.status == 200
    return {item["id"] for item in (await resp.json())[f"{kind}s"]}


async def test_every_stored_id_is_reachable_by_api_and_page(open_client):
    client = open_client
    lines = b"\n".join(
        orjson.dumps({"msg": f"line of {i}", "build_id": bid, "deploy_id": bid, "service": "svc", "host": "h"})
        for i, bid in enumerate(HOSTILE_IDS)
    )
    resp = await client.post("/api/v1/logs", data=lines)
    assert resp.status == 200 and (await resp.json())["accepted"] == len(HOSTILE_IDS)
    await client.app[BATCHER].flush()
    for _ in range(100):  # the derived tables follow the insert
        if await listed(client, "build") >= set(HOSTILE_IDS) and await listed(client, "deploy") >= set(HOSTILE_IDS):
            break
        await asyncio.sleep(0.1)
    for kind in ("build", "deploy"):
        assert await listed(client, kind) == set(HOSTILE_IDS)
        for entity_id in HOSTILE_IDS:
            segment = id_segment(entity_id)
            summary = await client.get(f"/api/v1/{kind}s/{segment}")
            assert summary.status == 200, (kind, entity_id, await summary.text())
            assert (await summary.json())[f"{kind}_id"] == entity_id
            trail = await client.get(f"/api/v1/{kind}s/{segment}/trail")
            assert trail.status == 200, (kind, entity_id)
            trail_lines = (await trail.json())["lines"]
            assert [line[f"{kind}_id"] for line in trail_lines] == [entity_id]
            page = await client.get(f"/{kind}s/{segment}", headers={"Accept": "text/html"})
            assert page.status == 200, (kind, entity_id)
            assert entity_id in html.unescape(await page.text())

    # every link the pages build to an id leads to that id's page
    index = await (await client.get("/", headers={"Accept": "text/html"})).text()
    hrefs = {html.unescape(h) for h in re.findall(r'href="(/(?:builds|deploys)/[^"]*)"', index)}
    assert len(hrefs) == 2 * len(HOSTILE_IDS), sorted(hrefs)
    for href in hrefs:
        page = await client.get(href, headers={"Accept": "text/html"})
        assert page.status == 200, href
        title = re.search(r"<h1[^>]*>(.*?)</h1>", await page.text(), re.S)
        assert title is not None, href


async def test_an_unknown_id_with_url_syntax_is_a_404_not_a_routing_miss(open_client):
    resp = await open_client.get("/api/v1/builds/%7Bnope%7D")
    assert resp.status == 404
    assert "nope" in (await resp.json())["error"]


# --- /metrics per tenant ------------------------------------------------------------------

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? \S+$')


def assert_prometheus_text(text: str) -> list[str]:
    samples = []
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), line
        samples.append(line)
    return samples


async def test_a_tenant_read_key_sees_only_its_own_tenant_in_metrics(aiohttp_client, settings, store):
    keys = {
        "alpha_ingest": make_key(settings, "alpha", "ingest"),
        "bravo_ingest": make_key(settings, "bravo", "ingest"),
        "alpha_read": make_key(settings, "alpha", "read"),
        "admin": make_key(settings, "ops", "admin"),
    }
    client = await aiohttp_client(create_app(settings, store=store))
    for tenant in ("alpha", "bravo"):
        resp = await client.post(
            "/api/v1/logs", data=b'{"msg": "ok"}\n{broken', headers=bearer(keys[f"{tenant}_ingest"])
        )
        assert resp.status == 200

    alpha = await client.get("/metrics", headers=bearer(keys["alpha_read"]))
    assert alpha.status == 200
    alpha_text = await alpha.text()
    alpha_samples = assert_prometheus_text(alpha_text)
    assert 'flightlog_tenant_lines_accepted_total{tenant="alpha"} 1' in alpha_samples
    assert 'flightlog_tenant_lines_rejected_total{tenant="alpha",reason="invalid_json"} 1' in alpha_samples
    assert "bravo" not in alpha_text
    # the process totals add up every tenant: not for one tenant's key
    assert not [s for s in alpha_samples if s.startswith("flightlog_ingest_lines_accepted_total")]
    assert not [s for s in alpha_samples if 'tenant="' in s and 'tenant="alpha"' not in s]

    admin = await client.get("/metrics", headers=bearer(keys["admin"]))
    admin_samples = assert_prometheus_text(await admin.text())
    assert 'flightlog_tenant_lines_accepted_total{tenant="alpha"} 1' in admin_samples
    assert 'flightlog_tenant_lines_accepted_total{tenant="bravo"} 1' in admin_samples
    assert "flightlog_ingest_lines_accepted_total 2" in admin_samples


async def test_an_open_server_shows_every_series(open_client):
    resp = await open_client.post("/api/v1/logs", data=b'{"msg": "ok"}')
    assert resp.status == 200
    samples = assert_prometheus_text(await (await open_client.get("/metrics")).text())
    assert "flightlog_ingest_lines_accepted_total 1" in samples
    assert 'flightlog_tenant_lines_accepted_total{tenant="default"} 1' in samples
