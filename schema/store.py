"""The one interface every part of flightlog talks to ClickHouse through.

Two backends run the same SQL: `EmbeddedStore` (chDB, in-process, the default) and
`ServerStore` (clickhouse-connect to a ClickHouse server or cluster).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson


def first_line(message: str) -> str:
    """The part of an engine error a user can act on: its first line (drivers append stack traces)."""
    return message.strip().split("\n", 1)[0]


class StoreError(Exception):
    """ClickHouse refused or failed a statement; the message is the engine's own."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    statistics: Mapping[str, Any] = field(default_factory=dict)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


# Settings every read runs with unless the caller overrides them:
SETTINGS_QUERY: dict[str, Any] = {
    # Interactive API reads: long enough for a scan of a day, short enough for a page view.
    "max_execution_time": 30,
    "output_format_json_quote_64bit_integers": 0,
}


class Store(Protocol):
    """What flightlog needs from ClickHouse: run a query, run a command, insert, close."""

    kind: str

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult: ...

    def query_stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        fmt: str = "JSONCompactEachRow",
    ) -> Iterator[bytes]: ...

    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None: ...

    def insert_lines(
        self,
        select_template: str,
        data_file: Path,
        params: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        fmt: str = "LineAsString",
        structure: str = "line String",
    ) -> None:
        """Run `select_template` (an INSERT … SELECT with a `{source}` hole) over the lines
        of `data_file`, exposed to SQL as a table with one String column `line` (or read in
        format `fmt` with columns `structure`)."""
        ...

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


def parse_json_compact(payload: bytes) -> QueryResult:
    if not payload.strip():
        return QueryResult(columns=[], types=[], rows=[])
    doc = orjson.loads(payload)
    meta = doc.get("meta", [])
    return QueryResult(
        columns=[m["name"] for m in meta],
        types=[m["type"] for m in meta],
        rows=doc.get("data", []),
        statistics=doc.get("statistics", {}),
    )


def sql_literal(value: Any) -> str:
    """A ClickHouse literal for one of our own values (used for chDB query parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        return sql_literal(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{sql_literal(k)}:{sql_literal(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


_ESCAPED = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"})


def param_text(value: Any) -> str:
    """The text form ClickHouse expects for a `{name:Type}` parameter value."""
    if isinstance(value, str):
        # ClickHouse reads a String parameter in its "escaped" text format.
        return value.translate(_ESCAPED)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    return sql_literal(value)


def settings_clause(settings: Mapping[str, Any] | None) -> str:
    if not settings:
        return ""
    return " SETTINGS " + ", ".join(f"{k} = {sql_literal(v)}" for k, v in settings.items())
