"""A chunk: the valid lines of one request, with what they default from, on their way to a batch."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class LineError:
    line: int  # 1-based, as the client numbered them
    error: str
    reason: str = ""  # the metric label (flightlog.ingest.metrics); empty: told from the message

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error}


@dataclass
class Chunk:
    """Wire lines: JSON objects, each starting with `{`, joined by `\\n`, no trailing newline.

    The engine maps them to `logs` rows (flightlog.ingest.insert_sql); `defaults` fill the
    fields a line lacks; `observed_ns` is the arrival time, used when a line has no timestamp.
    """

    lines: bytes
    count: int
    tenant: str = "default"
    defaults: dict[str, str] = field(default_factory=dict)
    observed_ns: int = field(default_factory=time.time_ns)
    # Every line is simple (insert_sql.is_simple_line): the engine may read the chunk with its
    # JSON reader instead of the general per-key path. False is always safe.
    simple: bool = False
    # The request's Idempotency-Key (flightlog.ingest.idempotency), kept in the chunk's WAL
    # header so a replay still knows the request was stored.
    idempotency_key: str = ""

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        tenant: str = "default",
        defaults: Mapping[str, str] | None = None,
    ) -> Chunk:
        """A chunk of rows a protocol parser built (canonical field names, `attrs` a dict)."""
        from flightlog.ingest.insert_sql import is_simple_line

        rows = [row for row in rows if row]
        encoded = [orjson.dumps(row) for row in rows]
        simple = all(is_simple_line(line, row) for line, row in zip(encoded, rows))
        return cls(b"\n".join(encoded), len(encoded), tenant, dict(defaults or {}), simple=simple)


@dataclass
class ParseResult:
    chunk: Chunk
    errors: list[LineError]
    rejected: int

    @property
    def accepted(self) -> int:
        return self.chunk.count
