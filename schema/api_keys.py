"""API keys: created once, shown once, stored only as a SHA-256 hash.

Where keys live, and why:

- **Embedded store (the default):** in `<data_dir>/keys.json`. chDB lets one process own a data
  directory, so `flightlog keys create` run next to a running `flightlog serve` could never open
  the store; a small file it can write (under a lock, replaced atomically) and the server
  re-reads when it changes (one `stat` per request) needs no running server, no admin key to
  bootstrap the first admin key, and works whether the server is up or not.
- **ClickHouse server (`--clickhouse-url`):** in the `api_keys` table (migration 0040), because
  the `ingest` and `query` processes of a scale-out deployment share the server, not a disk.
  Servers re-read the table every few seconds.

A key is `flk_<id>_<secret>`: the id (public, shown by `keys list`, used by `keys revoke`) and
32 random bytes. Only `sha256(key)` is kept; a key that is lost is revoked and replaced.
Because the secret is 256 random bits, a fast hash is enough (no password stretching needed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from flightlog.schema.record_file import RecordFile

SCOPES = ("ingest", "read", "alerts", "admin")
KEY_PREFIX = "flk_"
KEY_FILE_NAME = "keys.json"


class KeyProblem(Exception):
    """A key operation the caller asked for cannot be done (unknown id, bad scope …)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tenant: str
    scope: str
    hash: str
    created_at: str
    revoked_at: str = ""
    lines_per_second: int = 0  # 0: the server's default limit
    requests_per_second: int = 0

    @property
    def active(self) -> bool:
        return not self.revoked_at

    def allows(self, needed: str) -> bool:
        """admin may do everything; alerts reads and manages alert rules and silences; ingest and
        read only their own."""
        if self.scope == "alerts" and needed == "read":
            return True
        return self.scope == "admin" or self.scope == needed

    def public(self) -> dict[str, Any]:
        """Everything but the hash (what `keys list` shows)."""
        data = asdict(self)
        data.pop("hash")
        return data


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key(
    tenant: str, scope: str, name: str = "", lines_per_second: int = 0, requests_per_second: int = 0
) -> tuple[ApiKey, str]:
    """A fresh key record and the key text (the only time the text exists)."""
    check_new(tenant, scope)
    key_id = secrets.token_hex(6)
    text = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=key_id,
        name=name,
        tenant=tenant,
        scope=scope,
        hash=hash_key(text),
        created_at=_now(),
        lines_per_second=int(lines_per_second),
        requests_per_second=int(requests_per_second),
    )
    return record, text


def check_new(tenant: str, scope: str) -> None:
    if scope not in SCOPES:
        raise KeyProblem(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if not tenant or len(tenant) > 128 or not all(c.isalnum() or c in "-_." for c in tenant):
        raise KeyProblem("tenant: 1 to 128 letters, digits, '-', '_' or '.'")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class KeySource(Protocol):
    def load(self) -> list[ApiKey]: ...
    def add(self, record: ApiKey) -> None: ...
    def revoke(self, id_or_name: str) -> ApiKey: ...
    def changed(self) -> bool:
        """True when what `load` returns may differ from the last `load`."""
        ...


class KeyFile(RecordFile[ApiKey]):
    """Keys of an embedded deployment, in `<data_dir>/keys.json` (mode 0600)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / KEY_FILE_NAME, "keys", lambda item: ApiKey(**item))

    def add(self, record: ApiKey) -> None:
        with self._locked():
            self._write([*self._read(), record])

    def revoke(self, id_or_name: str) -> ApiKey:
        with self._locked():
            records = self._read()
            index = _find(records, id_or_name)
            records[index] = replace(records[index], revoked_at=records[index].revoked_at or _now())
            self._write(records)
            return records[index]


class KeyTable:
    """Keys of a server deployment, in the `api_keys` table (ReplacingMergeTree by id)."""

    COLUMNS = (
        "id, name, tenant, scope, hash, created_at, ifNull(toString(revoked_at), '') AS revoked_at, "
        "lines_per_second, requests_per_second"
    )

    def __init__(self, store: Any, reload_seconds: float = 5.0) -> None:
        self.store = store
        self.reload_seconds = reload_seconds

    def changed(self) -> bool:
        # A query is not for the event loop: servers reload the table from a background task
        # (flightlog.web.auth) every `reload_seconds`, not on requests.
        return False

    def load(self) -> list[ApiKey]:
        result = self.store.query(f"SELECT {self.COLUMNS} FROM api_keys FINAL ORDER BY created_at")
        records = []
        for row in result.dicts():
            row["created_at"] = str(row["created_at"])
            row["revoked_at"] = str(row["revoked_at"] or "")
            records.append(ApiKey(**row))
        return records

    def _insert(self, record: ApiKey) -> None:
        row = asdict(record)
        row["created_at"] = record.created_at.rstrip("Z").replace("T", " ")
        row["revoked_at"] = record.revoked_at.rstrip("Z").replace("T", " ") if record.revoked_at else None
        row["version"] = time.time_ns()
        self.store.insert_rows("api_keys", [row])

    def add(self, record: ApiKey) -> None:
        self._insert(record)

    def revoke(self, id_or_name: str) -> ApiKey:
        records = self.load()
        record = records[_find(records, id_or_name)]
        if record.revoked_at:
            return record
        revoked = replace(record, revoked_at=_now())
        self._insert(revoked)
        return revoked


def _find(records: list[ApiKey], id_or_name: str) -> int:
    matches = [i for i, r in enumerate(records) if r.id == id_or_name]
    if not matches:
        matches = [i for i, r in enumerate(records) if r.name and r.name == id_or_name and r.active]
    if not matches:
        raise KeyProblem(f"no key with id or name {id_or_name!r}; `flightlog keys list` shows them")
    if len(matches) > 1:
        raise KeyProblem(f"{len(matches)} active keys are named {id_or_name!r}; revoke by id")
    return matches[0]


def key_source(settings: Any, store: Any = None) -> KeySource:
    """Where this deployment's keys live (see the module docstring)."""
    if settings.clickhouse_url:
        if store is None:
            from flightlog.schema.open import open_store

            store = open_store(settings)
        return KeyTable(store)
    return KeyFile(settings.data_dir)


@dataclass
class KeyRing:
    """The server's view of the keys: lookup by hash, reloaded when the source changes."""

    source: KeySource
    _by_hash: dict[str, ApiKey] = field(default_factory=dict)
    _active: int = 0
    _ever: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loaded: bool = False

    def reload(self) -> None:
        records = self.source.load()
        with self._lock:
            self._by_hash = {r.hash: r for r in records if r.active}
            self._active = len(self._by_hash)
            self._ever = len(records)
            self._loaded = True

    def refresh(self) -> None:
        """Reload when the source says it may have changed; errors keep the last view."""
        if self._loaded and not self.source.changed():
            return
        try:
            self.reload()
        except Exception:
            if not self._loaded:
                raise

    def lookup(self, key: str) -> ApiKey | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        return self._by_hash.get(hash_key(key))

    @property
    def active_count(self) -> int:
        return self._active

    @property
    def ever_had_keys(self) -> bool:
        """Once a key was created, auth stays on: revoking the last key must not open the server."""
        return self._ever > 0
