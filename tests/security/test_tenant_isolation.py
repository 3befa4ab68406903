"""Two tenants, the same ids, every read path: no line, value or count crosses from one to the other.

Tenant A ("alpha") sends 30 lines and tenant B ("bravo") 7, over HTTP with their own ingest keys,
sharing build, deploy, trace and request ids. Every value A sends carries the marker SECRETA
(message, service, host, an attribute), every value B sends SECRETB. Each probe below is run
as B and must not show SECRETA, and as A and must not show SECRETB; probes marked `own` must show
the caller's own marker (so a broken path cannot pass by showing nothing).

To cover a new read path, add a Probe to PROBES (or SQL_PROBES); `test_every_read_route_has_a_probe`
fails until every GET route that needs a read key is covered or listed in NOT_TENANT_DATA.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

import orjson
import pytest
from flightlog.query import sql_console
from flightlog.schema.route_table import declared_routes
from flightlog.web.server import create_app

from tests.security.conftest import bearer, wait_for_rows

SHARED = {"build_id": "build-shared", "deploy_id": "deploy-shared", "trace_id": "trace-shared",
          "request_id": "req-shared"}
TENANTS = {"alpha": ("SECRETA", 30), "bravo": ("SECRETB", 7)}


@dataclass(frozen=True)
class Probe:
    name: str
    path: str  # may use {ref} (a line of the *other* tenant), {own_ref}, {q}
    own: bool = False  # the caller's own marker must show
    html: bool = False


PROBES = [
    Probe("search", "/api/v1/search?q=&from=1d&limit=1000", own=True),
    Probe("search words", "/api/v1/search?q={q}&from=1d", own=False),
    Probe("search by shared build", "/api/v1/search?q=build_id:build-shared&from=1d", own=True),
    Probe("export ndjson", "/api/v1/search?q=&from=1d&format=ndjson", own=True),
    Probe("export csv", "/api/v1/search?q=&from=1d&format=csv", own=True),
    Probe("histogram", "/api/v1/histogram?q=&from=1d"),
    Probe("facets service", "/api/v1/facets?q=&from=1d&field=service", own=True),
    Probe("facets host", "/api/v1/facets?q=&from=1d&field=host", own=True),
    Probe("facets attrs", "/api/v1/facets?q=&from=1d&field=attrs.who", own=True),
    Probe("builds", "/api/v1/builds"),
    Probe("build summary", "/api/v1/builds/build-shared", own=True),
    Probe("build trail", "/api/v1/builds/build-shared/trail", own=True),
    Probe("deploys", "/api/v1/deploys"),
    Probe("deploy summary", "/api/v1/deploys/deploy-shared", own=True),
    Probe("deploy trail", "/api/v1/deploys/deploy-shared/trail", own=True),
    Probe("context of the other tenant's line", "/api/v1/context?ref={ref}"),
    Probe("context of an own line", "/api/v1/context?ref={own_ref}", own=True),
    Probe("hosts", "/api/v1/hosts", own=True),
    Probe("sql audit", "/api/v1/sql/audit"),
    Probe("quarantine", "/api/v1/quarantine"),
    Probe("page index", "/", html=True),
    Probe("page build", "/builds/build-shared", own=True, html=True),
    Probe("page deploy", "/deploys/deploy-shared", own=True, html=True),
    Probe("page search", "/search?q=&from=1d", own=True, html=True),
    Probe("page search words", "/search?q={q}&from=1d", html=True),
    Probe("page context", "/context?ref={ref}", html=True),
    Probe("page hosts", "/hosts", own=True, html=True),
    Probe("page tail", "/tail?q=", html=True),
    Probe("page sql", "/sql", html=True),
    Probe("page quarantine", "/quarantine", html=True),
    Probe("build diff", "/api/v1/builds/build-shared/diff?against=build-shared"),
    Probe("build diff against previous", "/api/v1/builds/build-shared/diff?against=previous"),
    Probe("deploy diff", "/api/v1/deploys/deploy-shared/diff", own=True),
    Probe("builds by repo", "/api/v1/builds?repo={own_repo}", own=True),
    Probe("page pipelines", "/pipelines", own=True, html=True),
    Probe("alert rules", "/api/v1/alerts/rules", own=True),
    Probe("alert rule", "/api/v1/alerts/rules/shared-rule", own=True),
    Probe("alert rule values", "/api/v1/alerts/rules/shared-rule/values"),
    Probe("active alerts", "/api/v1/alerts"),
    Probe("alert silences", "/api/v1/alerts/silences", own=True),
    Probe("page alerts", "/alerts", own=True, html=True),
    Probe("page alert rule", "/alerts/rules/shared-rule", own=True, html=True),
    Probe("page new alert rule", "/alerts/new", html=True),
]
# The alert previews are POSTs (a rule in the body): test_alert_preview_shows_only_the_callers_lines.
ALERT_PREVIEWS = {"/api/v1/alerts/preview", "/alerts/preview"}

# GET routes that need a read key but hold no tenant's lines (with the reason).
NOT_TENANT_DATA = {
    "/metrics": "ingest counters of the whole server, no line content",
}

# Ad-hoc SQL that tries to get around the tenant filter. Each must fail or show only the caller's rows.
SQL_PROBES = [
    "SELECT message, service, host, attrs FROM logs",
    "SELECT message FROM default.logs",
    "SELECT l.message FROM logs AS l",
    "SELECT message FROM logs AS logs2",
    "SELECT message FROM `logs`",
    "SELECT message FROM (SELECT * FROM logs)",
    "WITH x AS (SELECT * FROM logs) SELECT message FROM x",
    "SELECT a.message FROM logs AS a INNER JOIN logs AS b ON a.seq = b.seq",
    "SELECT a.message FROM logs AS a CROSS JOIN (SELECT 1) AS b",
    "SELECT message FROM logs UNION ALL SELECT message FROM logs",
    "SELECT message FROM logs WHERE tenant = 'alpha' OR tenant = 'bravo' OR 1 = 1",
    "SELECT message FROM logs SETTINGS additional_table_filters = {'logs': '1'}",
    "SELECT message FROM logs SETTINGS readonly = 0",
    "SELECT message FROM logs FINAL",
    "SELECT groupArray(message) FROM logs",
    "SELECT (SELECT groupArray(message) FROM logs)",
    "SELECT 1 WHERE (SELECT count() FROM logs WHERE position(message, 'SECRE') > 0) > 1000",
    "SELECT message FROM merge('default', '^logs$')",
    "SELECT message FROM merge(currentDatabase(), 'logs')",
    "SELECT message FROM remote('127.0.0.1', default.logs)",
    "SELECT message FROM cluster('default', default.logs)",
    "SELECT message FROM view(SELECT * FROM logs)",
    "SELECT * FROM file('keys.json', 'LineAsString')",
    "SELECT * FROM api_keys",
    "SELECT * FROM hook_secrets",
    "SELECT * FROM system.tables",
    "SELECT * FROM system.parts",
    "SELECT * FROM system.query_log",
    "SELECT * FROM system.processes",
    "SELECT * FROM system.settings WHERE name = 'additional_table_filters'",
    "SELECT * FROM sql_audit",
    "SELECT * FROM schema_migrations",
    "SELECT message FROM logs; SELECT message FROM logs",
    "CREATE VIEW leak AS SELECT * FROM logs",
    "SELECT message FROM logs INTO OUTFILE 'x'",
    "SELECT currentUser(), getSetting('additional_table_filters')",
    "EXPLAIN SELECT message FROM logs",
]


async def _ingest(client, key, tenant):
    marker, count = TENANTS[tenant]
    body = b"\n".join(
        orjson.dumps({
            "msg": f"{tenant} {marker} line {i}",
            "service": f"svc-{marker}",
            "host": f"host-{marker}",
            "level": "error" if i % 3 == 0 else "info",
            "who": marker,
            **SHARED,
        })
        for i in range(count)
    )
    resp = await client.post("/api/v1/logs", data=body, headers=bearer(key))
    assert resp.status == 200, await resp.text()
    # a CI record for the shared build id, its repo named after the tenant's marker
    resp = await client.post("/api/v1/builds/build-shared/events", headers=bearer(key),
                             json={"status": "failure", "repo": f"{marker}/repo", "pipeline": "ci", "branch": "main"})
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def two_tenants(aiohttp_client, settings, store, make_key):
    keys = {
        tenant: {"ingest": make_key(tenant, "ingest"), "read": make_key(tenant, "read"),
                 "alerts": make_key(tenant, "alerts")}
        for tenant in ("alpha", "bravo")
    }
    client = await aiohttp_client(create_app(settings, store=store))
    for tenant in TENANTS:
        await _ingest(client, keys[tenant]["ingest"], tenant)
    total = sum(count for _, count in TENANTS.values())
    assert await wait_for_rows(store, "SELECT count() FROM logs", total) == total
    # correlation summaries (materialized views) may land a moment later
    await asyncio.sleep(0.2)
    refs = {}
    for tenant in TENANTS:
        resp = await client.get("/api/v1/search?q=&from=1d&limit=1", headers=bearer(keys[tenant]["read"]))
        refs[tenant] = (await resp.json())["lines"][0]["ref"]
    # each tenant has an alert rule of the same name, and a silence, both naming its marker
    for tenant, (marker, _) in TENANTS.items():
        rule = {"name": "shared-rule", "query": f"attrs.who:{marker}", "condition": "count > 0",
                "group_by": ["attrs.who"], "interval": "5s"}
        resp = await client.post("/api/v1/alerts/rules", json=rule, headers=bearer(keys[tenant]["alerts"]))
        assert resp.status == 201, await resp.text()
        resp = await client.post("/api/v1/alerts/silences", json={"rule": "shared-rule", "for": "1h",
                                 "comment": marker}, headers=bearer(keys[tenant]["alerts"]))
        assert resp.status == 201, await resp.text()
    # each tenant runs one SQL query, so the audit has entries of both
    for tenant in TENANTS:
        await client.post("/api/v1/sql", json={"sql": f"SELECT '{TENANTS[tenant][0]}-audit'"},
                          headers=bearer(keys[tenant]["read"]))
    return client, keys, refs


def _other(tenant: str) -> str:
    return "bravo" if tenant == "alpha" else "alpha"


async def test_no_read_path_shows_another_tenants_lines(two_tenants):
    client, keys, refs = two_tenants
    failures = []
    for probe in PROBES:
        for tenant in TENANTS:
            other = _other(tenant)
            path = probe.path.format(ref=refs[other], own_ref=refs[tenant], q=quote(TENANTS[other][0].lower()),
                                     own_repo=quote(f"{TENANTS[tenant][0]}/repo", safe=""))
            headers = bearer(keys[tenant]["read"])
            if probe.html:
                headers["Accept"] = "text/html"
            resp = await client.get(path, headers=headers)
            text = await resp.text()
            if TENANTS[other][0] in text:
                failures.append(f"{probe.name} as {tenant}: {path} shows {other}'s lines")
            if resp.status >= 500:
                failures.append(f"{probe.name} as {tenant}: {path} → {resp.status} {text[:200]}")
            if probe.own and TENANTS[tenant][0] not in text:
                failures.append(f"{probe.name} as {tenant}: {path} → {resp.status} without its own lines")
    assert not failures, "\n".join(failures)


async def test_alert_preview_shows_only_the_callers_lines(two_tenants):
    client, keys, _ = two_tenants
    for tenant in TENANTS:
        other = _other(tenant)
        for path, body in (("/api/v1/alerts/preview", {"json": {"query": "", "group_by": ["host"]}}),
                           ("/alerts/preview", {"data": {"query": "", "group_by": "host", "window": "1d"}})):
            resp = await client.post(path, **body, headers=bearer(keys[tenant]["read"]))
            text = await resp.text()
            assert resp.status == 200, text
            assert TENANTS[tenant][0] in text and TENANTS[other][0] not in text, (tenant, path)


async def test_histogram_counts_only_the_callers_lines(two_tenants):
    client, keys, _ = two_tenants
    for tenant, (_, count) in TENANTS.items():
        resp = await client.get("/api/v1/histogram?q=&from=1d", headers=bearer(keys[tenant]["read"]))
        assert resp.status == 200
        body = await resp.json()
        assert body["total"] == count, (tenant, body)
        assert sum(bucket["total"] for bucket in body["buckets"]) == count, (tenant, body)
        assert sum(n for bucket in body["buckets"] for n in bucket["counts"].values()) == count, (tenant, body)


async def test_sql_cannot_get_around_the_tenant_filter(two_tenants, store):
    client, keys, _ = two_tenants
    tables = sql_console.allowed_tables(store)
    assert {"logs", "trail_lines"} <= set(tables)
    statements = list(SQL_PROBES)
    for table in tables:
        statements += [f"SELECT * FROM {table}", f"SELECT * FROM default.{table}", f"SELECT * FROM {table} AS t"]
    failures = []
    for tenant in TENANTS:
        other = _other(tenant)
        for sql in statements:
            for path, body in (("/api/v1/sql", {"json": {"sql": sql}}),
                               ("/api/v1/sql", {"json": {"sql": sql, "format": "ndjson"}}),
                               ("/sql", {"data": {"sql": sql, "format": "html"}})):
                resp = await client.post(path, **body, headers=bearer(keys[tenant]["read"]))
                text = await resp.text()
                if TENANTS[other][0] in text:
                    failures.append(f"as {tenant} ({path}): {sql!r} → {resp.status} shows {other}'s data")
                if resp.status >= 500:
                    failures.append(f"as {tenant}: {sql!r} → {resp.status} {text[:200]}")
        # and the plain query sees exactly its own lines
        resp = await client.post("/api/v1/sql", json={"sql": "SELECT count(), uniqExact(tenant) FROM logs"},
                                 headers=bearer(keys[tenant]["read"]))
        assert (await resp.json())["rows"] == [[TENANTS[tenant][1], 1]]
    assert not failures, "\n".join(failures)


async def test_live_tail_shows_only_the_callers_lines(two_tenants):
    client, keys, _ = two_tenants
    resp = await client.get("/api/v1/tail?q=", headers={**bearer(keys["bravo"]["read"]), "Accept": "text/event-stream"})
    assert resp.status == 200
    seen = bytearray()

    async def read_until_bravo():
        while b"SECRETB" not in seen:
            chunk = await resp.content.readany()
            if not chunk:
                return
            seen.extend(chunk)

    reader = asyncio.create_task(read_until_bravo())
    await asyncio.sleep(0.3)
    await _ingest(client, keys["alpha"]["ingest"], "alpha")
    await _ingest(client, keys["bravo"]["ingest"], "bravo")
    try:
        await asyncio.wait_for(reader, 10)
    finally:
        resp.close()
    assert b"SECRETB" in seen
    assert b"SECRETA" not in seen


def test_every_read_route_has_a_probe(settings):
    app = create_app(settings)
    covered = {p.path.split("?", 1)[0] for p in PROBES} | {"/api/v1/tail", "/api/v1/sql", "/sql"} | set(NOT_TENANT_DATA)
    covered |= ALERT_PREVIEWS
    missing = []
    for (method, path), needs in declared_routes(app).items():
        if method == "HEAD" or needs is None or needs.scope != "read":
            continue  # ingest routes stamp the key's tenant: tested in test_keys_and_auth
        if path == "/logout":
            continue
        concrete = path.replace("{build_id}", "build-shared").replace("{deploy_id}", "deploy-shared")
        concrete = concrete.replace("{id}", "build-shared" if path.startswith("/builds") else "deploy-shared")
        concrete = concrete.replace("{name}", "shared-rule")
        if concrete not in covered:
            missing.append(f"{method} {path}")
    assert not missing, f"read routes with no isolation probe (add one to PROBES): {missing}"
