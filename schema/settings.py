"""Every setting flightlog has, in one list: name, default, help.

Each is a command-line flag (`--data-dir`) and an environment variable (`FLIGHTLOG_DATA_DIR`);
the flag wins. docs/settings.md is checked against this list by a test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    type: type = str


def flag(value: Any) -> bool:
    """An on/off setting: true/yes/on/1 (any case) is on."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "address to listen on"),
    Setting("port", 7777, "port to listen on", int),
    Setting("data_dir", "./flightlog-data", "where the embedded store and the WAL live"),
    Setting("retention_days", 30, "days a line is kept (a TTL on the logs table)", int),
    Setting("clickhouse_url", "", "http://user:pass@host:8123/db of a ClickHouse server; empty: embedded chDB"),
    Setting("batch_max_lines", 400_000, "lines in one insert at most (a batch grows past its age only while "
            "the inserts in flight are busy)", int),
    Setting("batch_max_age_ms", 250, "how long a line waits for its batch to fill, at most", int),
    Setting("max_body_bytes", 64 * 1024 * 1024, "largest request body after decompression", int),
    Setting("max_line_bytes", 1024 * 1024, "largest single line", int),
    Setting("max_attributes", 256, "most attributes one line may carry", int),
    Setting("syslog_tcp", 0, "port of a syslog TCP listener (RFC 5424/3164, octet counting or LF/NUL framing); 0: off", int),
    Setting("syslog_udp", 0, "port of a syslog UDP listener; 0: off", int),
    Setting("host_gone_after_s", 600, "seconds of silence after which a host is shown as gone", int),
    Setting("wal_fsync", "always", "when the write-ahead log is fsync'd: always (before every 2xx, group commit), "
            "interval (every second), off", str),
    Setting("wal_max_bytes", 1024 * 1024 * 1024, "most bytes the write-ahead log holds; past it ingest answers 429", int),
    Setting("ingest_max_inflight_bytes", 256 * 1024 * 1024, "request bodies held in memory at once (bytes received, compressed ones at their inflated size); "
            "past it ingest answers 429", int),
    Setting("inserts_in_flight", 1, "batch inserts running at once (one, with batches that grow while it "
            "runs, was fastest on 2 cores)", int),
    Setting("insecure", False, "serve with no API keys on a non-loopback address (anyone who can reach it "
            "can read and write every line)", flag),
    Setting("header_timeout", 15.0, "seconds a client has to send a request's headers (also how long an idle "
            "keep-alive connection stays open)", float),
    Setting("body_timeout", 60.0, "seconds a client has to send a request's body", float),
    Setting("key_lines_per_second", 500_000, "lines per second one API key may send (a key can set its own); "
            "0: no limit", int),
    Setting("key_requests_per_second", 1000, "requests per second one API key may make (a key can set its own); "
            "0: no limit", int),
    Setting("session_hours", 12, "hours a UI login lasts", int),
    Setting("query_slots", 8, "store queries (search, trails, SQL, histogram, export, tail …) running at once for "
            "all tenants; also sizes the query thread pool", int),
    Setting("query_slots_per_tenant", 4, "of those, how many one tenant may hold (its fair share); past it, and "
            "past query_slots, a query waits query_slot_wait_ms, then is answered 429 with Retry-After", int),
    Setting("query_slots_per_key", 4, "how many one API key (or UI login) may hold, within its tenant's share", int),
    Setting("query_slot_wait_ms", 2000, "how long a query waits for a slot before it is answered 429", int),
    Setting("engine_memory_max_bytes", 0, "memory the embedded engine may hold at once, its caches included; past "
            "it a statement fails with a memory error (an insert is retried from the WAL, and ingest answers 429 "
            "once the WAL is full); 0: the engine's default, 90% of RAM. The process also holds up to "
            "ingest_max_inflight_bytes of request bodies", int),
    Setting("engine_cache_bytes", 128 * 1024 * 1024, "size of each of the embedded engine's mark, index-mark and "
            "primary-index caches (the engine's default is 5 GiB each)", int),
    Setting("sql_max_memory_bytes", 2 * 1024**3, "memory one SQL console statement may use, in its check "
            "(which evaluates scalar subqueries) and in its run", int),
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7777
    data_dir: Path = Path("./flightlog-data")
    retention_days: int = 30
    clickhouse_url: str = ""
    batch_max_lines: int = 400_000
    batch_max_age_ms: int = 250
    max_body_bytes: int = 64 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024
    max_attributes: int = 256
    syslog_tcp: int = 0
    syslog_udp: int = 0
    host_gone_after_s: int = 600
    wal_fsync: str = "always"
    wal_max_bytes: int = 1024 * 1024 * 1024
    ingest_max_inflight_bytes: int = 256 * 1024 * 1024
    inserts_in_flight: int = 1
    insecure: bool = False
    header_timeout: float = 15.0
    body_timeout: float = 60.0
    key_lines_per_second: int = 500_000
    key_requests_per_second: int = 1000
    session_hours: int = 12
    query_slots: int = 8
    query_slots_per_tenant: int = 4
    query_slots_per_key: int = 4
    query_slot_wait_ms: int = 2000
    engine_memory_max_bytes: int = 0
    engine_cache_bytes: int = 128 * 1024 * 1024
    sql_max_memory_bytes: int = 2 * 1024**3
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Settings:
        """Settings from parsed flags; a flag left unset falls back to FLIGHTLOG_<NAME>."""
        known = {f.name for f in fields(cls)} - {"extra"}
        resolved: dict[str, Any] = {}
        for setting in SETTINGS:
            value = values.get(setting.name)
            if value is None:
                env = os.environ.get(env_name(setting.name))
                value = _from_env(setting, env) if env not in (None, "") else setting.default
            resolved[setting.name] = value
        resolved["data_dir"] = Path(resolved["data_dir"])
        extra = {k: v for k, v in values.items() if k not in known}
        settings = cls(**{k: v for k, v in resolved.items() if k in known}, extra=extra)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values the store would turn into silent data loss."""
        # The TTL is computed in DateTime, which ends in 2106: a longer retention would wrap
        # and expire every line at once.
        if not 1 <= self.retention_days <= MAX_RETENTION_DAYS:
            raise SettingsError(f"--retention-days must be between 1 and {MAX_RETENTION_DAYS}, got {self.retention_days}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"--port must be between 0 and 65535, got {self.port}")
        for name in ("query_slots", "query_slots_per_tenant", "query_slots_per_key"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.query_slot_wait_ms < 0:
            raise SettingsError(f"--query-slot-wait-ms must be 0 or more, got {self.query_slot_wait_ms}")
        if self.engine_memory_max_bytes and self.engine_memory_max_bytes < MIN_ENGINE_MEMORY:
            raise SettingsError(
                f"--engine-memory-max-bytes must be 0 (the engine's default) or at least {MIN_ENGINE_MEMORY}, "
                f"got {self.engine_memory_max_bytes}"
            )
        if self.engine_cache_bytes < 0:
            raise SettingsError(f"--engine-cache-bytes must be 0 or more, got {self.engine_cache_bytes}")
        if self.sql_max_memory_bytes < 1024 * 1024:
            raise SettingsError(f"--sql-max-memory-bytes must be at least 1048576, got {self.sql_max_memory_bytes}")


class SettingsError(ValueError):
    """A setting's value cannot work; the message names the flag."""


MAX_RETENTION_DAYS = 25_000
# Below this the engine cannot hold one insert of a default batch with its views' blocks.
MIN_ENGINE_MEMORY = 256 * 1024 * 1024


def _from_env(setting: Setting, text: str) -> Any:
    try:
        return setting.type(text)
    except ValueError:
        raise SettingsError(f"{env_name(setting.name)}={text!r} is not a valid {setting.name}") from None


def env_name(name: str) -> str:
    return "FLIGHTLOG_" + name.upper()
