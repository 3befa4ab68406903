"""The embedded backend: chDB, ClickHouse inside this process, over a data directory."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from flightlog.schema.store import (
    SETTINGS_QUERY,
    QueryResult,
    StoreError,
    param_text,
    parse_json_compact,
    settings_clause,
)

_open_dirs: set[str] = set()
_open_lock = threading.Lock()


class EmbeddedStore:
    kind = "embedded"

    def __init__(self, data_dir: Path) -> None:
        from chdb import session

        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        with _open_lock:
            # chDB lets one process own one data directory; a second session on it would
            # corrupt state, so say so instead.
            if _open_dirs:
                raise StoreError(
                    f"this process already has an embedded store open at {sorted(_open_dirs)[0]}; "
                    "chDB allows one data directory per process"
                )
            try:
                self._session = session.Session(str(data_dir / "clickhouse"))
            except Exception as exc:
                raise StoreError(
                    f"cannot open the embedded store in {data_dir}: another process (a running "
                    "`flightlog serve`?) already owns this data directory, or it is not writable. "
                    f"Stop that process or pass another --data-dir. ({_clean_message(str(exc))})"
                ) from None
            _open_dirs.add(str(data_dir))
        self.data_dir = data_dir
        self._closed = False
        # chDB keeps query parameters on the session: two parameterised queries from two threads
        # can swap values (measured: a query ran with another thread's {p:String}, or failed with
        # "Substitution `p` is not set"), which across tenants would be a leak. Parameterised
        # calls take turns; queries without parameters still run alongside them.
        self._params_lock = threading.Lock()

    def _run(self, sql: str, params: Mapping[str, Any] | None, fmt: str) -> Any:
        if self._closed:
            raise StoreError("the store is closed")
        text_params = {k: param_text(v) for k, v in (params or {}).items()}
        try:
            if not text_params:
                return self._session.query(sql, fmt)
            with self._params_lock:
                return self._session.query(sql, fmt, params=text_params)
        except Exception as exc:  # chDB raises RuntimeError/ChdbError subclasses
            raise StoreError(_clean_message(str(exc)), _error_code(str(exc))) from None

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        merged = {**SETTINGS_QUERY, **(settings or {})}
        result = self._run(sql + settings_clause(merged), params, "JSONCompact")
        return parse_json_compact(result.bytes())

    def query_stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        fmt: str = "JSONCompactEachRow",
    ) -> Iterator[bytes]:
        merged = {**SETTINGS_QUERY, **(settings or {})}
        text_params = {k: param_text(v) for k, v in (params or {}).items()}
        try:
            with self._params_lock:  # parameters are bound when the query is sent
                stream = self._session.send_query(sql + settings_clause(merged), fmt, params=text_params or None)
        except TypeError:
            stream = None
        except Exception as exc:
            raise StoreError(_clean_message(str(exc)), _error_code(str(exc))) from None
        if stream is None:
            yield self._run(sql + settings_clause(merged), params, fmt).bytes()
            return
        try:
            for chunk in stream:
                data = chunk.bytes()
                if data:
                    yield data
        except Exception as exc:
            raise StoreError(_clean_message(str(exc)), _error_code(str(exc))) from None
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._run(sql + settings_clause(settings), params, "CSV")

    def insert_lines(
        self,
        select_template: str,
        data_file: Path,
        params: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        path = str(Path(data_file).resolve()).replace("\\", "\\\\").replace("'", "\\'")
        source = f"file('{path}', LineAsString, 'line String')"
        sql = select_template.replace("{source}", source).replace("{settings}", settings_clause(settings))
        self._run(sql, params, "CSV")

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        body = b"\n".join(orjson.dumps(row, default=str) for row in rows).decode()
        self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}", None, "CSV")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._session.close()
        finally:
            with _open_lock:
                _open_dirs.discard(str(self.data_dir))


def _error_code(message: str) -> int | None:
    if message.startswith("Code: "):
        digits = message[6:].split(".", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None


def _clean_message(message: str) -> str:
    # chDB appends a stack trace on some builds; the first line is what a user can act on.
    return message.strip().split("\n", 1)[0]
