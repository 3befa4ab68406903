"""The server backend: clickhouse-connect to a ClickHouse server or cluster."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
from flightlog.schema.store import SETTINGS_QUERY, QueryResult, StoreError, first_line, parse_json_compact


class ServerStore:
    kind = "server"

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        parts = urlparse(url)
        if parts.scheme not in ("http", "https"):
            raise StoreError(f"--clickhouse-url must be http:// or https://, got {url!r}")
        self.database = (parts.path or "/").strip("/") or "default"
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=self.database,
                secure=parts.scheme == "https",
                autogenerate_session_id=False,
            )
        except Exception as exc:
            raise StoreError(f"cannot reach ClickHouse at {parts.hostname}:{parts.port}: {exc}") from None

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        merged = {**SETTINGS_QUERY, **(settings or {})}
        try:
            raw = self._client.raw_query(sql, parameters=dict(params or {}), settings=merged, fmt="JSONCompact")
        except Exception as exc:
            raise StoreError(first_line(str(exc))) from None
        return parse_json_compact(raw)

    def query_stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        fmt: str = "JSONCompactEachRow",
    ) -> Iterator[bytes]:
        merged = {**SETTINGS_QUERY, **(settings or {})}
        try:
            stream = self._client.raw_stream(sql, parameters=dict(params or {}), settings=merged, fmt=fmt)
            with stream:
                yield from stream
        except Exception as exc:
            raise StoreError(first_line(str(exc))) from None

    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            self._client.command(sql, parameters=dict(params or {}) or None, settings=dict(settings or {}))
        except Exception as exc:
            raise StoreError(first_line(str(exc))) from None

    def insert_lines(
        self,
        select_template: str,
        data_file: Path,
        params: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        fmt: str = "LineAsString",
        structure: str = "line String",
    ) -> None:
        # The server cannot read our files: the lines travel in the request body and the
        # same SELECT reads them through input().
        quoted = structure.replace("\\", "\\\\").replace("'", "\\'")
        sql = select_template.replace("{source}", f"input('{quoted}')").replace("{settings}", "")
        data = Path(data_file).read_bytes()
        try:
            self._client.command(
                sql + f" FORMAT {fmt}",
                parameters=dict(params),
                data=data,
                settings=dict(settings or {}),
            )
        except Exception as exc:
            raise StoreError(first_line(str(exc))) from None

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        body = b"\n".join(orjson.dumps(row, default=str) for row in rows)
        try:
            self._client.command(f"INSERT INTO {table} FORMAT JSONEachRow", data=body)
        except Exception as exc:
            raise StoreError(first_line(str(exc))) from None

    def close(self) -> None:
        self._client.close()
