"""The embedded backend: chDB, ClickHouse inside this process, over a data directory."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from flightlog.schema.store import (
    SETTINGS_QUERY,
    QueryResult,
    StoreError,
    first_line,
    param_text,
    parse_json_compact,
    settings_clause,
)

# How long closing waits for running statements (an insert of a large batch takes seconds).
CLOSE_WAIT_SECONDS = 120.0

# The engine's mark, index-mark and primary-index caches default to 5 GiB each, sized for a
# server that owns the machine; embedded beside the web server, they only hold memory.
DEFAULT_CACHE_BYTES = 128 * 1024 * 1024
CACHE_SETTINGS = ("mark_cache_size", "index_mark_cache_size", "primary_index_cache_size")

_open_dirs: set[str] = set()


def engine_arguments(memory_max_bytes: int, cache_bytes: int) -> str:
    """The engine's start-up arguments, as chDB takes them after the path."""
    args = [f"{name}={int(cache_bytes)}" for name in CACHE_SETTINGS]
    if memory_max_bytes:
        args.append(f"max_server_memory_usage={int(memory_max_bytes)}")
    return "&".join(args)
_open_lock = threading.Lock()


class EmbeddedStore:
    kind = "embedded"

    def __init__(self, data_dir: Path, memory_max_bytes: int = 0, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        """`memory_max_bytes`: the engine's memory ceiling (0: its default, 90% of RAM);
        `cache_bytes`: the size of each of its mark and index caches."""
        import chdb

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
            self._path = str(data_dir / "clickhouse")
            try:
                # The first connection owns the directory for the life of the store.
                # Server settings go to the first connection only: they are start-up arguments
                # of the one engine every later connection to this path shares.
                self._owner = chdb.connect(self._path + "?" + engine_arguments(memory_max_bytes, cache_bytes))
            except Exception as exc:
                raise StoreError(
                    f"cannot open the embedded store in {data_dir}: another process (a running "
                    "`flightlog serve`?) already owns this data directory, or it is not writable. "
                    f"Stop that process or pass another --data-dir. ({first_line(str(exc))})"
                ) from None
            _open_dirs.add(str(data_dir))
        self.data_dir = data_dir
        self._closed = False
        # chDB keeps query parameters on a connection: two parameterised queries on one
        # connection from two threads can swap values (measured: a query ran with another
        # thread's {p:String}), which across tenants would be a leak. Every thread gets a
        # connection of its own to the same engine, so reads never wait for an insert either.
        self._local = threading.local()
        self._connections: list[Any] = [self._owner]
        self._connections_lock = threading.Lock()
        self._idle = threading.Condition()
        self._running = 0

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import chdb

            conn = chdb.connect(self._path)
            with self._connections_lock:
                if self._closed:
                    conn.close()
                    raise StoreError("the store is closed")
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _run(self, sql: str, params: Mapping[str, Any] | None, fmt: str) -> Any:
        text_params = {k: param_text(v) for k, v in (params or {}).items()}
        with self._active():
            conn = self._connection()
            try:
                return conn.query(sql, fmt, params=text_params or None)
            except Exception as exc:  # chDB raises RuntimeError/ChdbError subclasses
                # A statement that fails after its output began (a memory refusal mid-way)
                # leaves that output on the connection, and the next answer on it arrives with
                # the dead statement's header in front (measured): start afresh.
                self._discard(conn)
                raise StoreError(first_line(str(exc)), _error_code(str(exc))) from None

    def _discard(self, conn: Any) -> None:
        """Close this thread's connection; its next statement opens a new one."""
        self._local.conn = None
        with self._connections_lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        """Count a running statement; `close` waits for them (closing a connection under a
        running query deadlocks chDB)."""
        with self._idle:
            if self._closed:
                raise StoreError("the store is closed")
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

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
        import chdb

        with self._active():
            # A stream gets a connection of its own: its chunks may be fetched from any
            # thread, and its connection must not serve another query meanwhile.
            conn = chdb.connect(self._path)
            try:
                try:
                    stream = conn.send_query(sql + settings_clause(merged), fmt, params=text_params or None)
                except Exception as exc:
                    raise StoreError(first_line(str(exc)), _error_code(str(exc))) from None
                try:
                    for chunk in stream:
                        data = chunk.bytes()
                        if data:
                            yield data
                except Exception as exc:
                    raise StoreError(first_line(str(exc)), _error_code(str(exc))) from None
                finally:
                    close = getattr(stream, "close", None)
                    if close:
                        close()
            finally:
                conn.close()

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
        fmt: str = "LineAsString",
        structure: str = "line String",
    ) -> None:
        path = str(Path(data_file).resolve()).replace("\\", "\\\\").replace("'", "\\'")
        structure = structure.replace("\\", "\\\\").replace("'", "\\'")
        source = f"file('{path}', {fmt}, '{structure}')"
        sql = select_template.replace("{source}", source).replace("{settings}", settings_clause(settings))
        self._run(sql, params, "CSV")

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        body = b"\n".join(orjson.dumps(row, default=str) for row in rows).decode()
        self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}", None, "CSV")

    def close(self, wait: float = CLOSE_WAIT_SECONDS) -> None:
        with self._idle:
            if self._closed:
                return
            self._closed = True
            if not self._idle.wait_for(lambda: self._running == 0, timeout=wait):
                raise StoreError(f"{self._running} statements still running after {wait:.0f}s; the store stays open")
        with self._connections_lock:
            connections, self._connections = self._connections, []
        try:
            # The owner last: closing it shuts the engine down.
            for conn in reversed(connections):
                conn.close()
        finally:
            with _open_lock:
                _open_dirs.discard(str(self.data_dir))


def _error_code(message: str) -> int | None:
    if message.startswith("Code: "):
        digits = message[6:].split(".", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None
