"""Plain text on /api/v1/logs: one message a line; the other fields come from the request.

`?service=` / `X-Flightlog-Service` and the other request defaults fill service, host,
build_id and deploy_id; `?level=` (or `X-Flightlog-Level`) sets the level of every line.
Lines keep their order (the store's sequence column) and get the arrival time.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from flightlog.ingest.chunk import Chunk, LineError, ParseResult
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols.common import level_name


def parse(
    body: bytes,
    limits: Limits,
    tenant: str = "default",
    defaults: Mapping[str, str] | None = None,
    level: str = "",
) -> ParseResult:
    lines: list[bytes] = []
    errors: list[LineError] = []
    prefix = b'{"level":' + orjson.dumps(level_name(level)) + b',"message":' if level else b'{"message":'
    for number, raw in enumerate(body.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        if len(line) > limits.max_line_bytes:
            errors.append(LineError(number, f"line is {len(line)} bytes; the limit is {limits.max_line_bytes}"))
            continue
        lines.append(prefix + orjson.dumps(line.decode("utf-8", "replace")) + b"}")
    chunk = Chunk(b"\n".join(lines), len(lines), tenant, dict(defaults or {}))
    return ParseResult(chunk, errors, len(errors))
