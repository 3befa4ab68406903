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


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "address to listen on"),
    Setting("port", 7777, "port to listen on", int),
    Setting("data_dir", "./flightlog-data", "where the embedded store and the WAL live"),
    Setting("retention_days", 30, "days a line is kept (a TTL on the logs table)", int),
    Setting("clickhouse_url", "", "http://user:pass@host:8123/db of a ClickHouse server; empty: embedded chDB"),
    Setting("batch_max_lines", 100_000, "lines in one insert at most", int),
    Setting("batch_max_age_ms", 250, "how long a line waits for its batch to fill, at most", int),
    Setting("max_body_bytes", 64 * 1024 * 1024, "largest request body after decompression", int),
    Setting("max_line_bytes", 1024 * 1024, "largest single line", int),
    Setting("max_attributes", 256, "most attributes one line may carry", int),
    Setting("syslog_tcp", 0, "port of a syslog TCP listener (RFC 5424/3164, octet counting or LF/NUL framing); 0: off", int),
    Setting("syslog_udp", 0, "port of a syslog UDP listener; 0: off", int),
    Setting("host_gone_after_s", 600, "seconds of silence after which a host is shown as gone", int),
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7777
    data_dir: Path = Path("./flightlog-data")
    retention_days: int = 30
    clickhouse_url: str = ""
    batch_max_lines: int = 100_000
    batch_max_age_ms: int = 250
    max_body_bytes: int = 64 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024
    max_attributes: int = 256
    syslog_tcp: int = 0
    syslog_udp: int = 0
    host_gone_after_s: int = 600
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
                value = setting.type(env) if env not in (None, "") else setting.default
            resolved[setting.name] = value
        resolved["data_dir"] = Path(resolved["data_dir"])
        extra = {k: v for k, v in values.items() if k not in known}
        return cls(**{k: v for k, v in resolved.items() if k in known}, extra=extra)


def env_name(name: str) -> str:
    return "FLIGHTLOG_" + name.upper()
