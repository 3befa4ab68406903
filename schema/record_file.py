"""A list of records kept in one JSON file under the data dir: API keys, webhook secrets and
chat workspaces of an embedded deployment (a server keeps them in tables instead).

The file holds secrets or their hashes, so it is written with mode 0600, whole, to a temporary
file that is fsync'd and renamed over the old one (a crash leaves the old list or the new one,
never half of either). Writers take a lock file, so two `flightlog` commands cannot lose each
other's change; readers never lock and notice a change by the file's stamp.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")


class RecordFile(Generic[T]):
    """`{list_key: [record, …]}` in `path`; `from_dict` turns one stored object into a record."""

    def __init__(self, path: Path, list_key: str, from_dict: Callable[[dict[str, Any]], T]) -> None:
        self.path = Path(path)
        self._list_key = list_key
        self._from_dict = from_dict
        self._seen: tuple[int, int, int] | None = None

    def _stamp(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def changed(self) -> bool:
        """True when what `load` returns may differ from the last `load`."""
        return self._stamp() != self._seen

    def load(self) -> list[T]:
        stamp = self._stamp()
        records = self._read()
        self._seen = stamp
        return records

    def _read(self) -> list[T]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        doc = orjson.loads(raw) if raw.strip() else {}
        return [self._from_dict(item) for item in doc.get(self._list_key, [])]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, records: list[T]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = orjson.dumps({self._list_key: [asdict(r) for r in records]}, option=orjson.OPT_INDENT_2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
