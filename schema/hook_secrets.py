"""Webhook secrets, per tenant: what GitHub signs its deliveries with, what GitLab sends as its token.

They live where API keys live (flightlog.schema.api_keys explains why): `<data_dir>/hooks.json`
(mode 0600, written under a lock and replaced atomically) with the embedded store, the
`hook_secrets` table (migration 0071) with a ClickHouse server. Unlike an API key a GitHub
secret is kept as given: checking an HMAC needs the secret itself, not a hash of it. A GitLab
token only has to be compared, so only its SHA-256 is kept.

A secret identifies its tenant: a delivery is checked against every active secret of the
provider, and the one that matches says whose build it is. So two tenants cannot share one.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from flightlog.schema.api_keys import KeyProblem, _now, check_new, hash_key
from flightlog.schema.record_file import RecordFile

PROVIDERS = ("github", "gitlab")
HOOK_FILE_NAME = "hooks.json"
MIN_SECRET_CHARS = 16
TABLE_RELOAD_SECONDS = 5.0


@dataclass(frozen=True)
class HookSecret:
    id: str
    tenant: str
    provider: str
    secret: str  # github: the secret; gitlab: sha256 of the token
    name: str
    created_at: str
    revoked_at: str = ""

    @property
    def active(self) -> bool:
        return not self.revoked_at

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("secret")
        return data


def new_hook_secret(tenant: str, provider: str, secret: str, name: str = "") -> HookSecret:
    check_new(tenant, "ingest")
    if provider not in PROVIDERS:
        raise KeyProblem(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    secret = secret.strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise KeyProblem(f"the secret is {len(secret)} characters; use at least {MIN_SECRET_CHARS} "
                         "(e.g. `openssl rand -hex 32`)")
    stored = hash_key(secret) if provider == "gitlab" else secret
    return HookSecret(secrets.token_hex(6), tenant, provider, stored, name, _now())


def _check_unique(records: list[HookSecret], record: HookSecret) -> None:
    for other in records:
        if other.active and other.provider == record.provider and other.secret == record.secret:
            raise KeyProblem(f"that {record.provider} secret is already registered (id {other.id}, tenant "
                             f"{other.tenant}); each tenant needs its own")


class HookFile(RecordFile[HookSecret]):
    """Secrets of an embedded deployment, in `<data_dir>/hooks.json` (mode 0600)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / HOOK_FILE_NAME, "secrets", lambda item: HookSecret(**item))

    def add(self, record: HookSecret) -> None:
        with self._locked():
            records = self.load()
            _check_unique(records, record)
            self._write([*records, record])

    def revoke(self, secret_id: str) -> HookSecret:
        with self._locked():
            records = self.load()
            index = _find(records, secret_id)
            records[index] = replace(records[index], revoked_at=records[index].revoked_at or _now())
            self._write(records)
            return records[index]


class HookTable:
    """Secrets of a server deployment, in the `hook_secrets` table (ReplacingMergeTree by id)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._loaded_at = 0.0

    def changed(self) -> bool:
        return time.monotonic() - self._loaded_at > TABLE_RELOAD_SECONDS

    def load(self) -> list[HookSecret]:
        result = self.store.query(
            "SELECT id, tenant, provider, secret, name, toString(created_at) AS created_at, "
            "ifNull(toString(revoked_at), '') AS revoked_at FROM hook_secrets FINAL ORDER BY created_at"
        )
        self._loaded_at = time.monotonic()
        return [HookSecret(**row) for row in result.dicts()]

    def _insert(self, record: HookSecret) -> None:
        row = asdict(record)
        row["created_at"] = record.created_at.rstrip("Z").replace("T", " ")
        row["revoked_at"] = record.revoked_at.rstrip("Z").replace("T", " ") if record.revoked_at else None
        row["version"] = time.time_ns()
        self.store.insert_rows("hook_secrets", [row])

    def add(self, record: HookSecret) -> None:
        _check_unique(self.load(), record)
        self._insert(record)

    def revoke(self, secret_id: str) -> HookSecret:
        records = self.load()
        record = records[_find(records, secret_id)]
        if not record.revoked_at:
            record = replace(record, revoked_at=_now())
            self._insert(record)
        return record


def _find(records: list[HookSecret], secret_id: str) -> int:
    for index, record in enumerate(records):
        if record.id == secret_id:
            return index
    raise KeyProblem(f"no webhook secret with id {secret_id!r}; `flightlog hooks list` shows them")


def hook_source(settings: Any, store: Any = None) -> HookFile | HookTable:
    if settings.clickhouse_url:
        if store is None:
            from flightlog.schema.open import open_store

            store = open_store(settings)
        return HookTable(store)
    return HookFile(settings.data_dir)


class HookSecrets:
    """The server's view of the secrets, reloaded when the source changes (a stat per delivery
    for the file; every few seconds for the table). Call `pairs` off the event loop."""

    def __init__(self, source: HookFile | HookTable) -> None:
        self.source = source
        self._records: list[HookSecret] = []
        self._loaded = False
        self._lock = threading.Lock()

    def pairs(self, provider: str) -> list[tuple[str, str]]:
        """(tenant, stored secret) of every active secret of a provider."""
        with self._lock:
            if not self._loaded or self.source.changed():
                try:
                    self._records = self.source.load()
                    self._loaded = True
                except Exception:
                    if not self._loaded:
                        raise
            return [(r.tenant, r.secret) for r in self._records if r.active and r.provider == provider]
