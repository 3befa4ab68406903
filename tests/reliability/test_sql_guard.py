"""The SQL console's check phase reads data too: it must read only the caller's, within limits,
and no error of any read path may carry a line.

`EXPLAIN QUERY TREE` evaluates scalar subqueries. Run without the tenant filter, it let tenant
alpha read bravo's lines from the 400 of `SELECT toUInt64(arrayStringConcat((SELECT
groupArray(message) FROM logs), ','))`, and run without the memory limit it let a subquery grow
to 4.9 GB against a 2 GiB limit. Tenants here are real keys over real HTTP on a real chDB store.
"""

from __future__ import annotations

import dataclasses

import pytest
from flightlog.query import search, sql_console
from flightlog.schema.store import StoreError
from flightlog.web.server import create_app

from tests.query.data import insert, make_line
from tests.security.conftest import bearer, make_key  # noqa: F401  (make_key: a fixture)

MARKERS = {"alpha": "SECRETA", "bravo": "SECRETB"}
LINES = {"alpha": 6, "bravo": 4}
SMALL_MEMORY = 32 * 1024 * 1024  # the console's memory limit in these tests, so the probe is quick

# Statements whose scalar subqueries are evaluated while the console checks them. Each either
# fails (the engine's message would quote what the subquery read) or answers from it.
SCALAR_PROBES = [
    "SELECT toUInt64(arrayStringConcat((SELECT groupArray(message) FROM logs), ','))",
    "SELECT toUInt64((SELECT any(message) FROM logs WHERE position(message, 'SECRET') > 0))",
    "SELECT toDate((SELECT max(message) FROM logs))",
    "SELECT CAST((SELECT min(message) FROM logs) AS Enum8('x' = 1))",
    "SELECT 1 FROM logs WHERE ts > toDateTime((SELECT max(message) FROM logs))",
    "SELECT (SELECT groupArray(message) FROM logs) AS a, no_such_column",
    "SELECT throwIf(1, (SELECT arrayStringConcat(groupArray(message), ',') FROM logs))",
    "WITH (SELECT groupArray(service) FROM logs) AS s SELECT toUInt64(arrayStringConcat(s, ','))",
    "SELECT 1 UNION ALL SELECT toUInt64(arrayStringConcat((SELECT groupArray(host) FROM logs), ','))",
    "EXPLAIN QUERY TREE SELECT toUInt64(arrayStringConcat((SELECT groupArray(message) FROM logs), ','))",
    "SELECT toUInt64(arrayStringConcat((SELECT groupArray(message) FROM trail_lines), ','))",
]


@pytest.fixture
def console_settings(settings):
    return dataclasses.replace(settings, sql_max_memory_bytes=SMALL_MEMORY)


@pytest.fixture
async def tenants(aiohttp_client, console_settings, store, make_key):  # noqa: F811
    """alpha and bravo, each with lines carrying its marker (message, service, host) and a read key."""
    for tenant, marker in MARKERS.items():
        insert(
            store,
            [
                make_line(
                    tenant=tenant,
                    message=f"{tenant} {marker} line {i}",
                    service=f"svc-{marker}",
                    host=f"host-{marker}",
                    build_id="build-shared",
                )
                for i in range(LINES[tenant])
            ],
        )
    keys = {tenant: make_key(tenant, "read") for tenant in MARKERS}
    client = await aiohttp_client(create_app(console_settings, store=store))
    return client, keys


def _other(tenant: str) -> str:
    return "bravo" if tenant == "alpha" else "alpha"


async def _console(client, key: str, sql: str) -> list[tuple[str, int, str]]:
    """(how, status, body text) of one statement sent every way the console takes it."""
    answers = []
    for how, path, body in (
        ("json", "/api/v1/sql", {"json": {"sql": sql}}),
        ("ndjson", "/api/v1/sql", {"json": {"sql": sql, "format": "ndjson"}}),
        ("page", "/sql", {"data": {"sql": sql, "format": "html"}}),
    ):
        resp = await client.post(path, **body, headers=bearer(key))
        answers.append((how, resp.status, await resp.text()))
    return answers


async def test_scalar_subqueries_in_the_check_never_show_another_tenants_lines(tenants):
    client, keys = tenants
    failures = []
    for tenant, key in keys.items():
        other = MARKERS[_other(tenant)]
        for sql in SCALAR_PROBES:
            for how, status, text in await _console(client, key, sql):
                if other in text:
                    failures.append(f"{tenant} ({how}) {sql!r} → {status} shows {_other(tenant)}'s lines")
                if status >= 500:
                    failures.append(f"{tenant} ({how}) {sql!r} → {status}")
        audit = await (await client.get("/api/v1/sql/audit", headers=bearer(key))).text()
        if other in audit:
            failures.append(f"{tenant}'s audit shows {_other(tenant)}'s lines")
    assert not failures, "\n".join(failures)


async def test_console_errors_carry_no_row_data_not_even_the_callers_own(tenants):
    client, keys = tenants
    failures = []
    for tenant, key in keys.items():
        for sql in SCALAR_PROBES:
            resp = await client.post("/api/v1/sql", json={"sql": sql}, headers=bearer(key))
            body = await resp.json()
            if resp.status != 400:
                continue  # an answer may hold the caller's own rows; only errors must not
            if any(marker in body["error"] for marker in MARKERS.values()):
                failures.append(f"{tenant}: {sql!r} → {body['error']}")
            if "(code " not in body["error"]:
                failures.append(f"{tenant}: {sql!r} → the error does not name its kind: {body['error']}")
    assert not failures, "\n".join(failures)
    # and the kind of error, with the name the caller typed, is still there to act on
    resp = await client.post(
        "/api/v1/sql", json={"sql": "SELECT no_such_column FROM logs"}, headers=bearer(keys["alpha"])
    )
    error = (await resp.json())["error"]
    assert resp.status == 400 and "UNKNOWN_IDENTIFIER" in error and "`no_such_column`" in error, error


async def test_a_check_that_depends_on_another_tenants_rows_answers_as_if_they_were_not_there(tenants):
    # An oracle: the engine folds toUInt8('x') while checking, so on an unfiltered check the
    # mere existence of bravo's lines would turn alpha's answer into an error.
    client, keys = tenants
    sql = "SELECT toUInt8(if((SELECT countIf(position(message, 'SECRETB') > 0) FROM logs) > 0, 'x', '1')) AS v"
    resp = await client.post("/api/v1/sql", json={"sql": sql}, headers=bearer(keys["alpha"]))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["rows"] == [[1]]
    resp = await client.post("/api/v1/sql", json={"sql": sql}, headers=bearer(keys["bravo"]))
    assert resp.status == 400  # bravo sees its own lines, so its check folds toUInt8('x')


async def test_a_scalar_subquery_past_the_memory_limit_is_refused_in_the_check(tenants, store):
    client, keys = tenants
    # ~160 MB of UInt64 (more as the array grows): five times the 32 MiB limit of this test
    sql = "SELECT length((SELECT groupArray(number) FROM numbers(20000000)))"
    resp = await client.post("/api/v1/sql", json={"sql": sql}, headers=bearer(keys["alpha"]))
    body = await resp.json()
    assert resp.status == 400, body
    assert "MEMORY_LIMIT_EXCEEDED" in body["error"] and "more memory" in body["error"]
    audit = (await (await client.get("/api/v1/sql/audit", headers=bearer(keys["alpha"]))).json())["entries"]
    assert audit[0]["sql"] == sql and audit[0]["outcome"] == "failed"


class RecordingStore:
    """The real store, with every statement and its settings written down."""

    def __init__(self, store) -> None:
        self.store = store
        self.calls: list[tuple[str, dict]] = []

    def query(self, sql, params=None, settings=None):
        self.calls.append((sql, dict(settings or {})))
        return self.store.query(sql, params, settings)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT toUInt64(arrayStringConcat((SELECT groupArray(message) FROM logs), ','))",
        "SELECT count() FROM logs WHERE message IN (SELECT message FROM trail_lines)",
        "EXPLAIN PLAN SELECT (SELECT max(message) FROM logs)",
        "SELECT no_such_column FROM logs",
    ],
)
def test_every_console_step_that_reads_data_runs_under_the_tenant_filter_and_limits(store, sql):
    recording = RecordingStore(store)
    try:
        sql_console.run_console_sql(recording, "alpha", sql, max_memory=SMALL_MEMORY)
    except sql_console.Refusal:
        pass
    reads = [(text, settings) for text, settings in recording.calls if "logs" in text or "trail_lines" in text]
    # the statement is parsed (EXPLAIN AST reads nothing), checked (EXPLAIN QUERY TREE) and run
    assert any("EXPLAIN QUERY TREE" in text for text, _ in reads), recording.calls
    for text, settings in reads:
        if text.startswith("SELECT explain FROM (EXPLAIN AST "):
            continue  # only parses: no subquery is evaluated, no table read
        assert settings.get("additional_table_filters", {}).get("logs") == "tenant = 'alpha'", text
        assert settings.get("additional_table_filters", {}).get("trail_lines") == "tenant = 'alpha'", text
        assert settings.get("max_memory_usage") == SMALL_MEMORY, text
        assert settings.get("max_execution_time") == sql_console.MAX_EXECUTION_SECONDS, text
        assert list(settings)[-1] == "readonly" and settings["readonly"] == 1, text


def _engine_error_with(store, tenant: str) -> StoreError:
    """A real engine error whose message quotes one of `tenant`'s lines."""
    try:
        store.query(f"SELECT toUInt64(any(message)) FROM logs WHERE tenant = '{tenant}'")
    except StoreError as exc:
        assert MARKERS[tenant] in str(exc)  # the engine does quote it
        return exc
    raise AssertionError("the engine took a message as a number")


@pytest.mark.parametrize(
    "path, html",
    [
        ("/api/v1/search?q=&from=1d", False),
        ("/search?q=&from=1d", True),
        ("/api/v1/search?q=&from=1d&format=ndjson", False),
        ("/api/v1/builds/build-shared/trail", False),
        ("/builds/build-shared", True),
        ("/api/v1/histogram?q=&from=1d", False),
    ],
)
async def test_engine_errors_on_other_read_paths_name_their_kind_not_their_text(
    tenants, store, monkeypatch, path, html
):
    client, keys = tenants
    error = _engine_error_with(store, "bravo")

    def failing(*args, **kwargs):
        raise error

    from flightlog.query import export, histogram, trails

    monkeypatch.setattr(search, "search", failing)
    monkeypatch.setattr(export, "plan_slices", failing)
    monkeypatch.setattr(trails, "trail_json", failing)
    monkeypatch.setattr(trails, "summary", failing)
    monkeypatch.setattr(histogram, "histogram", failing)
    headers = bearer(keys["alpha"]) | ({"Accept": "text/html"} if html else {})
    resp = await client.get(path, headers=headers)
    text = await resp.text()
    assert resp.status in (400, 503), text
    assert "SECRETB" not in text
    assert "CANNOT_PARSE_TEXT" in text
