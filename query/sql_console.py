"""Ad-hoc SQL, governed in layers, and audited.

1. The engine normalises the text (`formatQuerySingleLine`, the SQL passed base64-encoded so no
   byte of it is ever parsed as our SQL): more than one statement is a syntax error there, and
   comments are gone from what we run.
2. An `EXPLAIN [AST|SYNTAX|QUERY TREE|PLAN|PIPELINE] [option = n, …]` prefix of that normalised
   text is taken apart (kind and options from fixed lists, values whole numbers) and the
   statement under it is checked like any other; what runs is rebuilt from those pieces.
3. `EXPLAIN AST` of the statement: exactly one SELECT (SelectWithUnionQuery), no FORMAT or
   INTO OUTFILE, no SETTINGS clause, no table functions but a few generators (numbers, zeros,
   generate_series, values), no functions that reach outside (file, url, dictionaries …).
4. `EXPLAIN QUERY TREE` (CTEs, views and subqueries resolved): every table read is on the
   allowlist — flightlog's tenant tables that exist, and a few harmless system tables.
   Resolving the tree *evaluates scalar subqueries* (`(SELECT groupArray(message) FROM logs)`
   is run and folded into a constant), so this step reads data: it runs under the same tenant
   filter, memory and time limits as step 5 (all but the result-size cut, which would hide the
   end of the tree from the check).
5. It runs with `readonly=1` last in the settings (nothing after it can change a setting), a
   time limit, result row and byte limits (`truncated: true` when the rows were cut), a memory
   limit, and `additional_table_filters` confining every allowlisted table to the caller's
   tenant.
6. The engine quotes values in its errors, and prints a failing expression with its scalar
   subqueries folded in, so an error from a step that touches data (4 and 5) is told by its
   kind and code only (flightlog.schema.engine_errors); the whole text goes to the server log.
   Errors of steps 1-3 only parse, and quote nothing but the caller's own SQL.
7. Every statement sent — run, refused or failed — is recorded in `sql_audit` (who, when, the
   SQL, rows, milliseconds, outcome, the error as the caller saw it). If the record cannot be
   written, the answer is withheld.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from flightlog.schema.engine_errors import error_code, error_kind, log_engine_error, public_reason
from flightlog.schema.refusal import Refusal
from flightlog.schema.settings import Settings
from flightlog.schema.store import Store, StoreError, sql_literal

# Tables ad-hoc SQL may read, each with the column that holds its tenant: the log lines, and
# the correlation index and summaries (flightlog.query.trails) where this store has them.
TENANT_TABLES: dict[str, str] = {
    "logs": "tenant",
    "trail_lines": "tenant",
    "id_summary": "tenant",
    "id_hosts": "tenant",
    "host_ids": "tenant",
    "host_summary": "tenant",
    "build_events": "tenant",  # CI/CD records (migration 0070); hook_secrets is never readable
}
# Tables with no tenant data: what plain expressions read implicitly (`SELECT 1` reads
# system.one), number generators, and the engine's own reference lists.
HARMLESS_TABLES = frozenset(
    {
        "system.one",
        "system.numbers",
        "system.numbers_mt",
        "system.zeros",
        "system.zeros_mt",
        "system.functions",
        "system.data_type_families",
        "system.time_zones",
    }
)
HARMLESS_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "values"}
)
EXPLAIN_KINDS = ("AST", "SYNTAX", "QUERY TREE", "PLAN", "PIPELINE")
EXPLAIN_OPTIONS = frozenset(
    {
        "header", "description", "indexes", "actions", "json", "sorting", "distributed", "projections",
        "keep_logical_steps", "graph", "compact", "oneline", "dump_tree", "dump_passes", "dump_ast",
        "passes", "run_passes", "optimize", "query_tree_passes", "run_query_tree_passes",
    }
)  # fmt: skip
MAX_ROWS = 10_000
MAX_RESULT_BYTES = 256 * 1024 * 1024
MAX_MEMORY_BYTES = 2 * 1024**3
MAX_EXECUTION_SECONDS = 10
MAX_SQL_CHARS = 100_000
AUDIT_DEFAULT_LIMIT = 100
AUDIT_MAX_LIMIT = 10_000
TIMEOUT_CODES = frozenset({159, 160, 209})  # TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT
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
        "joinGet",
        "joinGetOrNull",
        "hasColumnInTable",
        "getMacro",
        "getClientHTTPHeader",
        "currentProfiles",
        "currentRoles",
        "enabledRoles",
        "defaultRoles",
        "filesystemAvailable",
        "filesystemCapacity",
        "filesystemUnreserved",
        "generateRandom",
    )
)
# Every dictionary function (dictGet, dictGetString, dictHas, dictGetHierarchy …).
DENIED_FUNCTION_PREFIXES = ("dict",)

# For EXPLAIN AST only, which parses and reads nothing. EXPLAIN in a subquery is refused
# under readonly=1; readonly=2 still forbids every write.
EXPLAIN_SETTINGS: dict[str, Any] = {"max_execution_time": MAX_EXECUTION_SECONDS, "readonly": 2}

_AST_LINE = re.compile(r"^( *)(\S+)(?: (.*?))?(?: \(children \d+\))?$")


@dataclass(frozen=True)
class AstNode:
    depth: int
    kind: str  # "SelectQuery", "Function", "TableIdentifier" …
    detail: str  # what follows the kind: a function's name, a table's name …


class InvalidSql(Refusal):
    """The engine could not make sense of the statement (syntax, unknown column …): it failed,
    as opposed to being refused by the console's rules."""


class SqlTimedOut(Refusal):
    """The statement (or its check) ran past the time limit."""


_tables_lock = threading.Lock()
_tables_cache: dict[int, tuple[float, dict[str, str]]] = {}
TABLES_CACHE_SECONDS = 30.0


def allowed_tables(store: Store) -> dict[str, str]:
    """The tenant tables this store has (name → tenant column), rechecked every 30 s."""
    now = time.monotonic()
    with _tables_lock:
        cached = _tables_cache.get(id(store))
        if cached and now - cached[0] < TABLES_CACHE_SECONDS:
            return cached[1]
    result = store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        {"names": list(TENANT_TABLES)},
    )
    present = {row[0] for row in result.rows}
    tables = {name: column for name, column in TENANT_TABLES.items() if name in present or name == "logs"}
    with _tables_lock:
        _tables_cache[id(store)] = (now, tables)
    return tables


def memory_limit(settings: Settings | None) -> int:
    """The memory one console statement may use: the `sql_max_memory_bytes` setting."""
    return MAX_MEMORY_BYTES if settings is None else settings.sql_max_memory_bytes


def guarded_settings(tenant: str, tables: dict[str, str] | None = None, max_memory: int | None = None) -> dict[str, Any]:
    """The settings a console statement runs with (and, but for the result cut, is checked with)."""
    tables = TENANT_TABLES if tables is None else tables
    filters = {table: f"{column} = {sql_literal(tenant)}" for table, column in tables.items()}
    return {
        "additional_table_filters": filters,
        "max_execution_time": MAX_EXECUTION_SECONDS,
        "max_result_rows": MAX_ROWS + 1,
        "max_result_bytes": MAX_RESULT_BYTES,
        "result_overflow_mode": "break",
        "max_memory_usage": MAX_MEMORY_BYTES if max_memory is None else max_memory,
        "readonly": 1,  # last: once read-only, no later setting in the clause could change
    }


@dataclass
class Outcome:
    """What happened to one console statement, as the audit records it."""

    outcome: str = "ok"  # ok | refused | failed | timeout
    error: str = ""
    rows: int = 0
    truncated: bool = False


def run_console_sql(
    store: Store, tenant: str, sql: str, outcome: Outcome | None = None, max_memory: int | None = None
) -> dict[str, Any]:
    """Check and run one user statement; → {"columns", "types", "rows", "truncated"}.

    Raises Refusal(400) with the reason for anything refused or failed (and fills `outcome`).
    """
    outcome = outcome if outcome is not None else Outcome()
    tables = allowed_tables(store)
    settings = guarded_settings(tenant, tables, max_memory)
    try:
        statement = check_sql(store, sql, settings, tables)
    except Refusal as exc:
        outcome.outcome = _outcome_of(exc)
        outcome.error = exc.message
        raise
    try:
        result = store.query(statement, settings=settings)
    except StoreError as exc:
        error = _failed(exc, statement)
        outcome.outcome, outcome.error = _outcome_of(error), error.message
        raise error from None
    rows = result.rows
    outcome.rows = min(len(rows), MAX_ROWS)
    # The engine stops after the block that crosses max_result_rows (result_overflow_mode=break),
    # so a cut answer always holds more than MAX_ROWS rows.
    outcome.truncated = len(rows) > MAX_ROWS
    return {
        "columns": result.columns,
        "types": result.types,
        "rows": rows[:MAX_ROWS],
        "truncated": outcome.truncated,
    }


def run_audited(store: Store, tenant: str, caller: str, sql: str, max_memory: int | None = None) -> dict[str, Any]:
    """run_console_sql, with an audit record of the statement whatever happens to it."""
    outcome = Outcome()
    started = time.perf_counter()
    try:
        return_value = run_console_sql(store, tenant, sql, outcome, max_memory)
    except Refusal:
        _audit(store, tenant, caller, sql, outcome, started)
        raise
    except Exception as exc:
        reason = error_kind(exc) if isinstance(exc, StoreError) else type(exc).__name__
        outcome.outcome, outcome.error = "failed", f"sql: {reason}"
        _audit(store, tenant, caller, sql, outcome, started)
        raise
    _audit(store, tenant, caller, sql, outcome, started)
    return return_value


def _audit(store: Store, tenant: str, caller: str, sql: str, outcome: Outcome, started: float) -> None:
    record = {
        "tenant": tenant,
        "who": caller,
        "sql": sql if isinstance(sql, str) else repr(sql),
        "outcome": outcome.outcome,
        "error": outcome.error,
        "rows": outcome.rows,
        "ms": round((time.perf_counter() - started) * 1000, 3),
        "truncated": int(outcome.truncated),
    }
    try:
        store.insert_rows("sql_audit", [record])
    except StoreError as exc:
        log_engine_error("sql console audit record", exc)
        raise Refusal(
            503, f"sql: the audit record could not be written, so no answer is given ({error_kind(exc)})"
        ) from None


def audit_entries(store: Store, tenant: str, limit: int = AUDIT_DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The tenant's console statements, newest first."""
    result = store.query(
        "SELECT concat(replaceOne(toString(ts), ' ', 'T'), 'Z') AS at, who, sql, outcome, error, rows, ms, truncated "
        "FROM sql_audit WHERE tenant = {tenant:String} ORDER BY sql_audit.ts DESC LIMIT {limit:UInt32}",
        {"tenant": tenant, "limit": limit},
    )
    return [
        {
            "ts": at,
            "who": who_,
            "sql": sql,
            "outcome": outcome,
            "error": error,
            "rows": int(rows),
            "ms": float(ms),
            "truncated": bool(truncated),
        }
        for at, who_, sql, outcome, error, rows, ms, truncated in result.rows
    ]


_EXPLAIN = re.compile(
    r"^EXPLAIN(?: (AST|SYNTAX|QUERY TREE|PLAN|PIPELINE|ESTIMATE|TABLE OVERRIDE|CURRENT TRANSACTION))?"
    r"((?: [a-z_]+ = [^ ,]+,)*(?: [a-z_]+ = [^ ,]+))? (.*)$",
    re.S,
)


def _split_explain(statement: str) -> tuple[str | None, str]:
    """(the EXPLAIN prefix to run, the statement under it), or (None, statement)."""
    if not statement.startswith("EXPLAIN"):
        return None, statement
    match = _EXPLAIN.match(statement)
    if not match:
        raise Refusal(400, "sql: this EXPLAIN is not one the console can check; write EXPLAIN [PLAN] SELECT …")
    kind, options, inner = match.group(1), match.group(2), match.group(3)
    if kind is not None and kind not in EXPLAIN_KINDS:
        raise Refusal(400, f"sql: EXPLAIN {kind} is not allowed; use one of {', '.join(EXPLAIN_KINDS)}")
    prefix = "EXPLAIN" + (f" {kind}" if kind else "")
    if options:
        parts = []
        for option in options.strip().split(", "):
            name, _, value = option.partition(" = ")
            if name not in EXPLAIN_OPTIONS or not value.isdigit():
                raise Refusal(400, f"sql: EXPLAIN option {option.strip()!r} is not allowed")
            parts.append(f"{name} = {int(value)}")
        prefix += " " + ", ".join(parts)
    return prefix, inner


def check_sql(
    store: Store, sql: str, settings: dict[str, Any] | None = None, tables: dict[str, str] | None = None
) -> str:
    """The statement to run for `sql` if it is one allowed SELECT (or EXPLAIN of one); else Refusal(400)."""
    tables = TENANT_TABLES if tables is None else tables
    # With no caller's settings, the check still reads under a filter: one no tenant passes.
    settings = settings or guarded_settings("", tables)
    if not isinstance(sql, str) or not sql.strip():
        raise Refusal(400, "sql: empty; send one SELECT statement")
    if len(sql) > MAX_SQL_CHARS:
        raise Refusal(400, f"sql: longer than {MAX_SQL_CHARS} characters")
    encoded = base64.b64encode(sql.encode()).decode()
    try:
        statement = store.query(
            "SELECT formatQuerySingleLine(base64Decode({sql:String}))", {"sql": encoded}, settings=settings
        ).scalar()
    except StoreError as exc:
        message = str(exc)
        if "Multi-statements are not allowed" in message:
            raise Refusal(400, "sql: one statement only; remove everything after the first ';'") from None
        raise InvalidSql(400, f"sql: {_engine_reason(message)}") from None
    if not statement:
        raise Refusal(400, "sql: empty; send one SELECT statement")
    explain, statement = _split_explain(statement)
    _check_ast(explain_ast(store, statement))
    _check_tables(store, statement, tables, settings)
    return f"{explain} {statement}" if explain else statement


def explain_ast(store: Store, statement: str) -> list[AstNode]:
    try:
        # As a subquery, so the SETTINGS the store appends attach to our SELECT, not the user's.
        result = store.query(f"SELECT explain FROM (EXPLAIN AST {statement})", settings=EXPLAIN_SETTINGS)
    except StoreError as exc:
        message = str(exc)
        if "cannot have output options" in message:
            raise Refusal(400, "sql: FORMAT and INTO OUTFILE are not allowed; results come back as JSON") from None
        if "supports only SELECT" in message:
            kind = statement.split(" ", 1)[0].upper()
            raise Refusal(400, f"sql: only SELECT is allowed here, not {kind}") from None
        if "Cannot modify" in message and "readonly mode" in message:
            raise Refusal(400, "sql: a SETTINGS clause is not allowed; the console's settings are fixed") from None
        raise InvalidSql(400, f"sql: {_engine_reason(str(exc))}") from None
    nodes = []
    for (line,) in result.rows:
        match = _AST_LINE.match(line)
        if match:
            nodes.append(AstNode(len(match.group(1)), match.group(2), (match.group(3) or "").strip()))
    return nodes


def _check_ast(nodes: list[AstNode]) -> None:
    if not nodes:
        raise Refusal(400, "sql: the engine could not explain this statement")
    root = nodes[0]
    if root.kind != "SelectWithUnionQuery":
        kind = root.kind.removesuffix("Query") or root.kind
        raise Refusal(400, f"sql: only SELECT is allowed here, this is a {kind} statement")
    if sum(1 for n in nodes if n.depth == 1) != 1:
        raise Refusal(400, "sql: FORMAT and INTO OUTFILE are not allowed; results come back as JSON")
    for i, node in enumerate(nodes):
        if node.kind == "Set":
            raise Refusal(400, "sql: a SETTINGS clause is not allowed; the console's settings are fixed")
        if node.kind in ("InsertQuery", "DropQuery", "AlterQuery", "CreateQuery", "RenameQuery"):
            raise Refusal(400, "sql: only SELECT is allowed here")
        if node.kind == "Function":
            name = node.detail.split(" ", 1)[0].lower()
            parent = _parent(nodes, i)
            if parent is not None and parent.kind == "TableExpression" and name not in HARMLESS_TABLE_FUNCTIONS:
                raise Refusal(400, f"sql: table function {name}() is not allowed; read from {_allowed()}")
            if name.startswith(DENIED_FUNCTION_PREFIXES):
                raise Refusal(400, f"sql: dictionary function {name}() is not allowed")
            if name in DENIED_FUNCTIONS:
                raise Refusal(400, f"sql: function {name}() is not allowed")


def _parent(nodes: list[AstNode], index: int) -> AstNode | None:
    depth = nodes[index].depth
    for j in range(index - 1, -1, -1):
        if nodes[j].depth < depth:
            return nodes[j]
    return None


_TREE_TABLE = re.compile(r"^\s*TABLE id: \d+.*?, table_name: ([^,\s]+)")
_TREE_TABLE_FUNCTION = re.compile(r"^\s*TABLE_FUNCTION id: \d+.*?, table_function_name: ([^,\s]+)")


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's settings for the check's EXPLAIN QUERY TREE: the same filter, memory and time
    limits and readonly, without the result-size cut (a cut tree would hide tables from the check)."""
    kept = {k: v for k, v in settings.items() if k not in ("max_result_rows", "max_result_bytes", "result_overflow_mode")}
    readonly = kept.pop("readonly", 1)
    kept["readonly"] = readonly  # still last
    return kept


def _check_tables(store: Store, statement: str, tables: dict[str, str], settings: dict[str, Any]) -> None:
    # Top level, like the run (the store appends the SETTINGS clause, as it does to the run), so
    # the scalar subqueries it evaluates read through the caller's filter and limits.
    try:
        result = store.query(f"EXPLAIN QUERY TREE {statement}", settings=check_settings(settings))
    except StoreError as exc:
        raise _failed(exc, statement, invalid=True) from None
    database = store.query("SELECT currentDatabase()").scalar()
    allowed = set(tables) | {f"{database}.{t}" for t in tables} | HARMLESS_TABLES
    for (line,) in result.rows:
        function = _TREE_TABLE_FUNCTION.match(line)
        if function and function.group(1).lower() not in HARMLESS_TABLE_FUNCTIONS:
            raise Refusal(400, f"sql: table function {function.group(1)}() is not allowed; read from {_allowed()}")
        table = _TREE_TABLE.match(line)
        if table and table.group(1) not in allowed:
            raise Refusal(400, f"sql: table {table.group(1)} is not readable here; read from {_allowed()}")


def _allowed() -> str:
    return ", ".join(sorted(TENANT_TABLES))


def _failed(exc: StoreError, statement: str, invalid: bool = False) -> InvalidSql | SqlTimedOut:
    """The 400 for an engine error of a step that reads data: its kind, never its text."""
    log_engine_error(f"sql console statement {statement[:200]!r}", exc)
    reason = public_reason(exc, statement)
    if error_code(exc) in TIMEOUT_CODES:
        return SqlTimedOut(400, f"sql: stopped after the {MAX_EXECUTION_SECONDS} s limit: {reason}")
    return InvalidSql(400, f"sql: {reason}" if invalid else f"sql: the query failed: {reason}")


def _outcome_of(exc: Refusal) -> str:
    if isinstance(exc, SqlTimedOut):
        return "timeout"
    return "failed" if isinstance(exc, InvalidSql) else "refused"


def _engine_reason(message: str) -> str:
    # "Code: 62. DB::Exception: Syntax error: … (SYNTAX_ERROR)" → the part a user can act on.
    text = message.split("DB::Exception: ", 1)[-1]
    text = re.sub(r"\s*In scope SELECT formatQuerySingleLine\(.*$", "", text)
    return text.strip()
