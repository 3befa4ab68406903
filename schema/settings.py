"""Every setting flightlog has, declared once (the pydantic dataclass `Settings`): type, default, help.

Each is a command-line flag (`--data-dir`) and an environment variable (`FLIGHTLOG_DATA_DIR`);
the flag wins. `SETTINGS` lists them for the CLI; docs/settings.md is checked against it by a test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pydantic
from pydantic import ConfigDict, Field


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


@pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(validate_default=True))
class Settings:
    """Every setting flightlog has, declared once: type, default and help (the flags, the
    environment variables and docs/settings.md all come from here)."""

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(7777, description="port to listen on")
    data_dir: Path = Field("./flightlog-data", description="where the embedded store and the WAL live")
    retention_days: int = Field(30, description="days a line is kept (a TTL on the logs table)")
    clickhouse_url: str = Field(
        "",
        description="http://user:pass@host:8123/db of a ClickHouse server; empty: embedded "
        "chDB",
    )
    batch_max_lines: int = Field(
        400_000,
        description="lines in one insert at most (a batch grows past its age only while the "
        "inserts in flight are busy)",
    )
    batch_max_age_ms: int = Field(250, description="how long a line waits for its batch to fill, at most")
    max_body_bytes: int = Field(64 * 1024 * 1024, description="largest request body after decompression")
    max_line_bytes: int = Field(1024 * 1024, description="largest single line")
    max_attributes: int = Field(256, description="most attributes one line may carry")
    syslog_tcp: int = Field(
        0,
        description="port of a syslog TCP listener (RFC 5424/3164, octet counting or LF/NUL "
        "framing); 0: off",
    )
    syslog_udp: int = Field(0, description="port of a syslog UDP listener; 0: off")
    host_gone_after_s: int = Field(600, description="seconds of silence after which a host is shown as gone")
    wal_fsync: str = Field(
        "always",
        description="when the write-ahead log is fsync'd: always (before every 2xx, group "
        "commit), interval (every second), off",
    )
    wal_max_bytes: int = Field(
        1024 * 1024 * 1024,
        description="most bytes the write-ahead log holds; past it ingest answers 429",
    )
    ingest_max_inflight_bytes: int = Field(
        256 * 1024 * 1024,
        description="request bodies held in memory at once (bytes received, compressed ones at "
        "their inflated size); past it ingest answers 429",
    )
    inserts_in_flight: int = Field(
        1,
        description="batch inserts running at once (one, with batches that grow while it "
        "runs, was fastest on 2 cores)",
    )
    insecure: bool = Field(
        False,
        description="serve with no API keys on a non-loopback address (anyone who can reach "
        "it can read and write every line)",
    )
    header_timeout: float = Field(
        15.0,
        description="seconds a client has to send a request's headers (also how long an "
        "idle keep-alive connection stays open)",
    )
    body_timeout: float = Field(60.0, description="seconds a client has to send a request's body")
    key_lines_per_second: int = Field(
        500_000,
        description="lines per second one API key may send (a key can set its own); 0: no "
        "limit",
    )
    key_requests_per_second: int = Field(
        1000,
        description="requests per second one API key may make (a key can set its own); 0: "
        "no limit",
    )
    session_hours: int = Field(12, description="hours a UI login lasts")
    rules: str = Field("", description="a YAML file of alert rules loaded at start (read-only in the UI); empty: none")
    alertmanager_url: str = Field(
        "",
        description="base URL of an Alertmanager (http://host:9093) that receives every alert; empty: none",
    )
    public_url: str = Field(
        "",
        description="the URL people reach this server at, for links in notifications; empty: "
        "http://<host>:<port>",
    )
    query_slots: int = Field(
        8,
        description="store queries (search, trails, SQL, histogram, export, tail …) running at "
        "once for all tenants; also sizes the query thread pool",
    )
    query_slots_per_tenant: int = Field(
        4,
        description="of those, how many one tenant may hold (its fair share); past it, and past "
        "query_slots, a query waits query_slot_wait_ms, then is answered 429 with Retry-After",
    )
    query_slots_per_key: int = Field(
        4, description="how many one API key (or UI login) may hold, within its tenant's share"
    )
    query_slot_wait_ms: int = Field(2000, description="how long a query waits for a slot before it is answered 429")
    engine_memory_max_bytes: int = Field(
        0,
        description="memory the embedded engine may hold at once, its caches included; past it a "
        "statement fails with a memory error (an insert is retried from the WAL, and ingest answers "
        "429 once the WAL is full); 0: the engine's default, 90% of RAM. The process also holds up "
        "to ingest_max_inflight_bytes of request bodies",
    )
    engine_cache_bytes: int = Field(
        128 * 1024 * 1024,
        description="size of each of the embedded engine's mark, index-mark and primary-index "
        "caches (the engine's default is 5 GiB each)",
    )
    sql_max_memory_bytes: int = Field(
        2 * 1024**3,
        description="memory one SQL console statement may use, in its check (which evaluates "
        "scalar subqueries) and in its run",
    )
    github_build_id: str = Field(
        "{run_id}",
        description="the build id of a GitHub workflow run: a template over {run_id}, {run_number}, "
        "{run_attempt}, {repo}, {workflow} (docs/cicd.md)",
    )
    github_deploy_id: str = Field(
        "{deployment_id}",
        description="the deploy id of a GitHub deployment: a template over {deployment_id}, {repo}, {environment}",
    )
    gitlab_build_id: str = Field(
        "{pipeline_id}",
        description="the build id of a GitLab pipeline: a template over {pipeline_id}, {pipeline_iid}, "
        "{project}, {project_id}",
    )
    gitlab_deploy_id: str = Field(
        "{deployment_id}",
        description="the deploy id of a GitLab deployment: a template over {deployment_id}, "
        "{deployable_id}, {project}, {environment}",
    )
    deploy_diff_minutes: int = Field(
        15, description="a deploy's diff compares this many minutes after it with as many before"
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        description="base URL of the Slack Web API that ChatOps calls (chat.unfurl; docs/chatops.md)",
    )
    chatops_answer_within_ms: int = Field(
        2500,
        description="a Slack command whose answer takes longer is acknowledged at once and answered "
        "through its response_url (Slack waits 3 s)",
    )
    extra: dict[str, Any] = Field(default_factory=dict)

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


# How a flag's or environment variable's text becomes the setting's value, by declared type.
_PARSERS: dict[Any, Any] = {bool: flag, int: int, float: float, str: str, Path: str}

SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name, info.default, info.description or "", _PARSERS[info.annotation])
    for name, info in Settings.__pydantic_fields__.items()
    if name != "extra"
)


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
