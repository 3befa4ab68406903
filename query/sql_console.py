"""Ad-hoc SQL, guarded in layers (a foundation; a later issue hardens it further).

1. The engine normalises the text (`formatQuerySingleLine`, the SQL passed base64-encoded so no
   byte of it is ever parsed as our SQL): more than one statement is a syntax error there, and
   comments are gone from what we run.
2. `EXPLAIN AST` of that text: exactly one SELECT (SelectWithUnionQuery), no FORMAT or
   INTO OUTFILE, no SETTINGS clause, no table functions, no functions that reach outside.
3. `EXPLAIN QUERY TREE` (CTEs and subqueries resolved): every table read is on the allowlist.
4. It runs with `readonly=1`, a time limit and a row limit the user cannot override, and with
   `additional_table_filters` confining every allowlisted table to the caller's tenant.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from flightlog.schema.store import Store, StoreError, sql_literal
from flightlog.web.errors import ApiError

# Tables ad-hoc SQL may read, each with the column that holds its tenant.
ALLOWED_TABLES: dict[str, str] = {"logs": "tenant"}
# Tables with no tenant data that plain expressions read implicitly (`SELECT 1` reads system.one).
HARMLESS_TABLES = frozenset({"system.one"})
MAX_ROWS = 10_000
MAX_EXECUTION_SECONDS = 10
MAX_SQL_CHARS = 100_000
# Functions that read or write outside the allowlisted tables, refused wherever they appear
# (as table functions they are refused anyway; several also exist as plain functions).
DENIED_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "file",
        "url",
        "urlCluster",
        "s3",
        "s3Cluster",
        "gcs",
        "hdfs",
        "hdfsCluster",
        "remote",
        "remoteSecure",
        "cluster",
        "clusterAllReplicas",
        "executable",
        "executablePool",
        "input",
        "mysql",
        "postgresql",
        "jdbc",
        "odbc",
        "sqlite",
        "mongodb",
        "redis",
        "azureBlobStorage",
        "azureBlobStorageCluster",
        "deltaLake",
        "iceberg",
        "hudi",
        "fileCluster",
        "dictionary",
        "dictGet",
        "merge",
        "loop",
        "filesystem",
        "getSetting",
        "getServerSetting",
    )
)

# EXPLAIN in a subquery is refused under readonly=1; readonly=2 still forbids every write.
EXPLAIN_SETTINGS: dict[str, Any] = {"max_execution_time": MAX_EXECUTION_SECONDS, "readonly": 2}

_AST_LINE = re.compile(r"^( *)(\S+)(?: (.*?))?(?: \(children \d+\))?$")


@dataclass(frozen=True)
class AstNode:
    depth: int
    kind: str  # "SelectQuery", "Function", "TableIdentifier" …
    detail: str  # what follows the kind: a function's name, a table's name …


def guarded_settings(tenant: str) -> dict[str, Any]:
    filters = {table: f"{column} = {sql_literal(tenant)}" for table, column in ALLOWED_TABLES.items()}
    return {
        "additional_table_filters": filters,
        "max_execution_time": MAX_EXECUTION_SECONDS,
        "max_result_rows": MAX_ROWS + 1,
        "max_result_bytes": 256 * 1024 * 1024,
        "result_overflow_mode": "break",
        "readonly": 1,  # last: once read-only, no later setting in the clause could change
    }


def run_console_sql(store: Store, tenant: str, sql: str) -> dict[str, Any]:
    """Check and run one user SELECT; → {"columns", "types", "rows", "truncated"}.

    Raises ApiError(400) with the reason for anything refused or failed.
    """
    settings = guarded_settings(tenant)
    statement = check_sql(store, sql, settings)
    try:
        result = store.query(statement, settings=settings)
    except StoreError as exc:
        raise ApiError(400, f"sql: the query failed: {exc}") from None
    rows = result.rows
    return {
        "columns": result.columns,
        "types": result.types,
        "rows": rows[:MAX_ROWS],
        "truncated": len(rows) > MAX_ROWS,
    }


def check_sql(store: Store, sql: str, settings: dict[str, Any] | None = None) -> str:
    """The engine's normalised text of `sql` if it is one allowed SELECT; else ApiError(400)."""
    settings = settings or guarded_settings("")
    if not isinstance(sql, str) or not sql.strip():
        raise ApiError(400, "sql: empty; send one SELECT statement")
    if len(sql) > MAX_SQL_CHARS:
        raise ApiError(400, f"sql: longer than {MAX_SQL_CHARS} characters")
    encoded = base64.b64encode(sql.encode()).decode()
    try:
        statement = store.query(
            "SELECT formatQuerySingleLine(base64Decode({sql:String}))", {"sql": encoded}, settings=settings
        ).scalar()
    except StoreError as exc:
        message = str(exc)
        if "Multi-statements are not allowed" in message:
            raise ApiError(400, "sql: one statement only; remove everything after the first ';'") from None
        raise ApiError(400, f"sql: {_engine_reason(message)}") from None
    if not statement:
        raise ApiError(400, "sql: empty; send one SELECT statement")
    _check_ast(explain_ast(store, statement))
    _check_tables(store, statement)
    return statement


def explain_ast(store: Store, statement: str) -> list[AstNode]:
    try:
        # As a subquery, so the SETTINGS the store appends attach to our SELECT, not the user's.
        result = store.query(f"SELECT explain FROM (EXPLAIN AST {statement})", settings=EXPLAIN_SETTINGS)
    except StoreError as exc:
        message = str(exc)
        if "cannot have output options" in message:
            raise ApiError(400, "sql: FORMAT and INTO OUTFILE are not allowed; results come back as JSON") from None
        if "supports only SELECT" in message:
            kind = statement.split(" ", 1)[0].upper()
            raise ApiError(400, f"sql: only SELECT is allowed here, not {kind}") from None
        if "Cannot modify" in message and "readonly mode" in message:
            raise ApiError(400, "sql: a SETTINGS clause is not allowed; the console's settings are fixed") from None
        raise ApiError(400, f"sql: {_engine_reason(str(exc))}") from None
    nodes = []
    for (line,) in result.rows:
        match = _AST_LINE.match(line)
        if match:
            nodes.append(AstNode(len(match.group(1)), match.group(2), (match.group(3) or "").strip()))
    return nodes


def _check_ast(nodes: list[AstNode]) -> None:
    if not nodes:
        raise ApiError(400, "sql: the engine could not explain this statement")
    root = nodes[0]
    if root.kind != "SelectWithUnionQuery":
        kind = root.kind.removesuffix("Query") or root.kind
        raise ApiError(400, f"sql: only SELECT is allowed here, this is a {kind} statement")
    if sum(1 for n in nodes if n.depth == 1) != 1:
        raise ApiError(400, "sql: FORMAT and INTO OUTFILE are not allowed; results come back as JSON")
    for i, node in enumerate(nodes):
        if node.kind == "Set":
            raise ApiError(400, "sql: a SETTINGS clause is not allowed; the console's settings are fixed")
        if node.kind in ("InsertQuery", "DropQuery", "AlterQuery", "CreateQuery", "RenameQuery"):
            raise ApiError(400, "sql: only SELECT is allowed here")
        if node.kind == "Function":
            name = node.detail.split(" ", 1)[0].lower()
            parent = _parent(nodes, i)
            if parent is not None and parent.kind == "TableExpression":
                raise ApiError(400, f"sql: table function {name}() is not allowed; read from {_allowed()}")
            if name in DENIED_FUNCTIONS:
                raise ApiError(400, f"sql: function {name}() is not allowed")


def _parent(nodes: list[AstNode], index: int) -> AstNode | None:
    depth = nodes[index].depth
    for j in range(index - 1, -1, -1):
        if nodes[j].depth < depth:
            return nodes[j]
    return None


_TREE_TABLE = re.compile(r"^\s*TABLE id: \d+.*?, table_name: ([^,\s]+)")
_TREE_TABLE_FUNCTION = re.compile(r"^\s*TABLE_FUNCTION id: \d+.*?, table_function_name: ([^,\s]+)")


def _check_tables(store: Store, statement: str) -> None:
    try:
        result = store.query(f"SELECT explain FROM (EXPLAIN QUERY TREE {statement})", settings=EXPLAIN_SETTINGS)
        database = store.query("SELECT currentDatabase()").scalar()
    except StoreError as exc:
        raise ApiError(400, f"sql: {_engine_reason(str(exc))}") from None
    allowed = set(ALLOWED_TABLES) | {f"{database}.{t}" for t in ALLOWED_TABLES} | HARMLESS_TABLES
    for (line,) in result.rows:
        function = _TREE_TABLE_FUNCTION.match(line)
        if function:
            raise ApiError(400, f"sql: table function {function.group(1)}() is not allowed; read from {_allowed()}")
        table = _TREE_TABLE.match(line)
        if table and table.group(1) not in allowed:
            raise ApiError(400, f"sql: table {table.group(1)} is not readable here; read from {_allowed()}")


def _allowed() -> str:
    return ", ".join(sorted(ALLOWED_TABLES))


def _engine_reason(message: str) -> str:
    # "Code: 62. DB::Exception: Syntax error: … (SYNTAX_ERROR)" → the part a user can act on.
    text = message.split("DB::Exception: ", 1)[-1]
    text = re.sub(r"\s*In scope SELECT formatQuerySingleLine\(.*$", "", text)
    return text.strip()
