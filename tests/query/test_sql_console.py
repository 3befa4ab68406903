"""POST /api/v1/sql: answers one SELECT over the allowed tables; refuses everything else."""

from __future__ import annotations

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
        ("SELECT * FROM numbers(10)", "numbers()"),
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


async def test_sql_body_must_be_json_with_a_sql_string(client, store):
    resp = await client.post("/api/v1/sql", data=b"SELECT 1")
    assert resp.status == 400
    resp = await client.post("/api/v1/sql", json={"query": "SELECT 1"})
    assert resp.status == 400
    assert "sql" in (await resp.json())["error"]
