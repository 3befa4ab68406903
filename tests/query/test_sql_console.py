"""POST /api/v1/sql: answers one SELECT over the allowed tables; refuses everything else."""

from __future__ import annotations

import orjson
import pytest

from tests.query.data import insert, make_fleet, make_line


async def _sql(client, sql):
    resp = await client.post("/api/v1/sql", json={"sql": sql})
    return resp.status, await resp.json()


async def test_sql_answers_a_select_with_columns_and_rows(client, store):
    make_fleet(store, builds=3)
    status, body = await _sql(client, "SELECT build_id, count() AS n FROM logs GROUP BY build_id ORDER BY build_id")
    assert status == 200, body
    assert body["columns"] == ["build_id", "n"]
    assert body["rows"] == [["b000", 40], ["b001", 40], ["b002", 40]]
    assert body["truncated"] is False


async def test_sql_accepts_comments_ctes_joins_and_newlines(client, store):
    make_fleet(store, builds=2)
    status, body = await _sql(
        client,
        "-- builds\nWITH x AS (SELECT build_id FROM logs)\nSELECT count() FROM x /* all */\n"
        "JOIN (SELECT DISTINCT build_id FROM logs) AS y USING build_id",
    )
    assert status == 200, body
    assert body["rows"] == [[80]]


async def test_sql_marks_results_over_10000_rows_truncated(client, store):
    insert(store, [make_line(message=str(i)) for i in range(10_050)])
    status, body = await _sql(client, "SELECT message FROM logs")
    assert status == 200, body
    assert len(body["rows"]) == 10_000
    assert body["truncated"] is True


async def test_sql_sees_only_the_callers_tenant(client, store):
    insert(store, [make_line(message="mine"), make_line(message="theirs", tenant="other")])
    status, body = await _sql(client, "SELECT message FROM logs")
    assert body["rows"] == [["mine"]]
    status, body = await _sql(client, "SELECT count() FROM logs WHERE tenant = 'other'")
    assert body["rows"] == [[0]]


@pytest.mark.parametrize(
    "sql, words",
    [
        ("INSERT INTO logs (message) VALUES ('x')", "only SELECT"),
        ("DROP TABLE logs", "only SELECT"),
        ("ALTER TABLE logs DELETE WHERE 1", "only SELECT"),
        ("TRUNCATE TABLE logs", "only SELECT"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
        ("SELECT file('/etc/passwd')", "function file()"),
        ("SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')", "table function url()"),
        ("SELECT count() FROM logs WHERE message IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))", "file()"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELECT 1; DROP TABLE logs", "one statement"),
        ("SELECT count() FROM logs SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT count() FROM logs SETTINGS max_threads = 1", "SETTINGS"),
        ("SELECT * FROM (SELECT count() FROM logs SETTINGS max_execution_time = 1000)", "SETTINGS"),
        ("SELECT count() FROM logs FORMAT CSV", "FORMAT"),
        ("SELECT * FROM logs INTO OUTFILE '/tmp/x'", "FORMAT"),
        ("SELECT * FROM system.tables", "system.tables"),
        ("SELECT * FROM schema_migrations", "schema_migrations"),
        ("SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')", "url()"),
        ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "remote()"),
        ("SELECT * FROM remoteSecure('127.0.0.1:9440', default.logs)", "remotesecure()"),
        ("SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')", "executable()"),
        ("SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV', 'a String')", "s3()"),
        ("SELECT * FROM cluster('default', system.one)", "cluster()"),
        ("SELECT * FROM merge('', '^logs$')", "merge()"),
        ("SELECT * FROM generateRandom('a String')", "generaterandom()"),
        ("SELECT * FROM dictionary('d')", "dictionary()"),
        ("SELECT dictGet('d', 'x', toUInt64(1))", "dictget()"),
        ("SELECT dictGetStringOrDefault('d', 'x', toUInt64(1), '')", "dictionary function"),
        ("SELECT joinGet('j', 'x', 1)", "joinget()"),
        ("SELECT hasColumnInTable('default', 'api_keys', 'secret')", "hascolumnintable()"),
        ("SELECT 1 -- harmless\n; DROP TABLE logs", "one statement"),
        ("SELECT 1 /* ; */; DROP TABLE logs", "one statement"),
        ("SELECT 1 /* hidden */ ; /* second */ INSERT INTO logs (message) VALUES ('x')", "one statement"),
        ("SELECT * FROM system.parts", "system.parts"),
        ("SELECT * FROM system.users", "system.users"),
        ("SELECT * FROM sql_audit", "sql_audit"),
        ("WITH x AS (SELECT * FROM system.tables) SELECT * FROM x", "system.tables"),
        ("SELECT * FROM logs WHERE message IN (SELECT name FROM system.databases)", "system.databases"),
        ("SELECT count() FROM logs SETTINGS readonly = 0, max_result_rows = 0", "SETTINGS"),
        ("EXPLAIN ESTIMATE SELECT count() FROM logs", "EXPLAIN ESTIMATE"),
        ("EXPLAIN AST INSERT INTO logs (message) VALUES ('x')", "only SELECT"),
        ("EXPLAIN SELECT * FROM file('/etc/passwd', 'LineAsString')", "file()"),
        ("EXPLAIN PLAN SELECT count() FROM logs SETTINGS readonly = 0", "SETTINGS"),
        ("CREATE TABLE x (a UInt8) ENGINE = Memory", "only SELECT"),
        ("OPTIMIZE TABLE logs FINAL", "only SELECT"),
        ("KILL QUERY WHERE 1", "only SELECT"),
        ("SYSTEM DROP DNS CACHE", "only SELECT"),
        ("GRANT ALL ON *.* TO default", "only SELECT"),
        ("SET readonly = 0", "only SELECT"),
        ("SELEC 1", "Syntax error"),
        ("", "empty"),
    ],
)
async def test_sql_refuses_anything_but_one_plain_select_and_leaves_data_intact(client, store, sql, words):
    make_fleet(store, builds=1)
    status, body = await _sql(client, sql)
    assert status == 400, body
    assert body["error"].startswith("sql: ")
    assert words in body["error"]
    assert store.query("SELECT count() FROM logs").scalar() == 40
    assert store.query("EXISTS TABLE logs").scalar() == 1
    assert store.query("SELECT count() FROM system.tables WHERE name = 'x'").scalar() == 0


async def test_sql_body_must_be_json_with_a_sql_string(client, store):
    resp = await client.post("/api/v1/sql", data=b"SELECT 1")
    assert resp.status == 400
    resp = await client.post("/api/v1/sql", json={"query": "SELECT 1"})
    assert resp.status == 400
    assert "sql" in (await resp.json())["error"]


async def test_sql_over_numbers_1e12_is_cut_by_the_row_limit(client, store):
    make_fleet(store, builds=1)
    status, body = await _sql(client, "SELECT * FROM numbers(1e12)")
    assert status == 200, body
    assert len(body["rows"]) == 10_000
    assert body["truncated"] is True
    assert store.query("SELECT count() FROM logs").scalar() == 40


async def test_sql_that_runs_too_long_is_stopped_by_the_time_limit(client, store, monkeypatch):
    from flightlog.query import sql_console

    make_fleet(store, builds=1)
    monkeypatch.setattr(sql_console, "MAX_EXECUTION_SECONDS", 1)
    status, body = await _sql(client, "SELECT sum(number) FROM numbers(1e12)")
    assert status == 400, body
    assert "stopped after the 1 s limit" in body["error"]
    assert store.query("SELECT count() FROM logs").scalar() == 40
    audit = await (await client.get("/api/v1/sql/audit")).json()
    assert audit["entries"][0]["outcome"] == "timeout"


@pytest.mark.parametrize(
    "sql, first",
    [
        ("EXPLAIN SELECT count() FROM logs", None),
        ("EXPLAIN PLAN indexes = 1 SELECT count() FROM logs WHERE service = 'api'", None),
        ("EXPLAIN AST SELECT 1", "SelectWithUnionQuery (children 1)"),
        ("EXPLAIN SYNTAX SELECT 1", "SELECT 1"),
        ("EXPLAIN QUERY TREE WITH x AS (SELECT 1) SELECT * FROM x", "QUERY id: 0"),
        ("EXPLAIN PIPELINE SELECT count() FROM logs", None),
    ],
)
async def test_sql_explains_a_select(client, store, sql, first):
    status, body = await _sql(client, sql)
    assert status == 200, body
    assert body["columns"] == ["explain"]
    assert body["rows"]
    if first:
        assert body["rows"][0][0].startswith(first)


async def test_sql_reads_the_correlation_tables_of_its_own_tenant_only(client, store):
    make_fleet(store, builds=2)
    make_fleet(store, builds=3, tenant="other")
    tables = {row[0] for row in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()").rows}
    for table in ("id_summary", "trail_lines", "host_summary"):
        if table not in tables:
            continue
        status, body = await _sql(client, f"SELECT DISTINCT tenant FROM {table}")
        assert status == 200, body
        assert body["rows"] == [["default"]], table


async def test_every_statement_is_audited_with_who_rows_time_and_outcome(client, store):
    make_fleet(store, builds=1)
    await _sql(client, "SELECT message FROM logs LIMIT 3")
    await _sql(client, "DROP TABLE logs")
    await _sql(client, "SELECT no_such_column FROM logs")
    resp = await client.get("/api/v1/sql/audit")
    assert resp.status == 200
    entries = (await resp.json())["entries"]
    assert [(e["sql"], e["outcome"], e["rows"]) for e in entries] == [
        ("SELECT no_such_column FROM logs", "failed", 0),
        ("DROP TABLE logs", "refused", 0),
        ("SELECT message FROM logs LIMIT 3", "ok", 3),
    ]
    assert all(e["who"].startswith("open") and e["ts"].endswith("Z") and e["ms"] >= 0 for e in entries)
    assert "only SELECT" in entries[1]["error"]
    assert store.query("SELECT count() FROM sql_audit WHERE tenant = 'default'").scalar() == 3


async def test_sql_answers_download_as_csv_and_ndjson(client, store):
    insert(store, [make_line(message='say "hi", ok', attrs={"k": "v"}), make_line(message="two")])
    sql = "SELECT message, attrs FROM logs ORDER BY seq"
    resp = await client.post("/api/v1/sql", json={"sql": sql, "format": "csv"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert await resp.text() == 'message,attrs\r\n"say ""hi"", ok","{""k"":""v""}"\r\ntwo,{}\r\n'
    resp = await client.post("/api/v1/sql?format=ndjson", json={"sql": sql})
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    assert [orjson.loads(line) for line in (await resp.read()).splitlines()] == [
        {"message": 'say "hi", ok', "attrs": {"k": "v"}},
        {"message": "two", "attrs": {}},
    ]
    assert resp.headers["X-Flightlog-Truncated"] == "false"
