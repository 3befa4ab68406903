"""One log line as the API returns it, and the keyset cursor that pages through lines.

Every reader of lines (trails, search, later context and tail) selects `LINE_COLUMNS`, shapes
rows with `shape_line`, and pages with `Cursor`: the position (ts, seq) of the last line
returned. `seq` is unique per line, so (ts, seq) is a total order that is stable across pages.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from flightlog.query.timefmt import format_ns
from flightlog.schema.refusal import Refusal

LINE_COLUMNS = (
    "toUnixTimestamp64Nano(ts) AS ts_ns, seq, service, host, level, message, "
    "build_id, deploy_id, trace_id, span_id, request_id, attrs"
)


def shape_line(row: list[Any]) -> dict[str, Any]:
    """A row selected with LINE_COLUMNS → the API's line object."""
    ts_ns, seq, service, host, level, message, build_id, deploy_id, trace_id, span_id, request_id, attrs = row
    return {
        "ts": format_ns(ts_ns),
        "service": service,
        "host": host,
        "level": level,
        "message": message,
        "build_id": build_id,
        "deploy_id": deploy_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "request_id": request_id,
        "attrs": attrs or {},
        "ref": line_ref(ts_ns, seq),
    }


def line_ref(ts_ns: int, seq: int) -> str:
    """A stable reference to one line: `<ts_ns>-<seq>`."""
    return f"{int(ts_ns)}-{int(seq)}"


def bad_cursor() -> Refusal:
    return Refusal(400, "cursor: not a cursor this server handed out; pass next_cursor back unchanged")


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended; opaque to clients (urlsafe base64 of `ts_ns:seq`)."""

    ts_ns: int
    seq: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.ts_ns}:{self.seq}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            ts_text, seq_text = raw.split(":")
            cursor = cls(int(ts_text), int(seq_text))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise bad_cursor() from None
        if cursor.seq < 0:
            raise bad_cursor()
        return cursor

    @classmethod
    def after(cls, row: list[Any]) -> Cursor:
        return cls(int(row[0]), int(row[1]))


def cursor_condition(cursor: Cursor | None, params: dict[str, Any], descending: bool = False) -> str:
    """SQL (with its parameters added to `params`) for "strictly after the cursor" in (ts, seq) order.

    Written as a range on ts plus a tie-break, so the primary key and partitions still prune.
    """
    if cursor is None:
        return ""
    params["cursor_ts"] = cursor.ts_ns
    params["cursor_seq"] = cursor.seq
    at = "fromUnixTimestamp64Nano({cursor_ts:Int64}, 'UTC')"
    if descending:
        return f" AND ts <= {at} AND (ts < {at} OR seq < {{cursor_seq:UInt64}})"
    return f" AND ts >= {at} AND (ts > {at} OR seq > {{cursor_seq:UInt64}})"


def page(rows: list[list[Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Rows fetched as limit+1 → (lines, next_cursor or None at the end)."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = Cursor.after(rows[-1]).encode() if more and rows else None
    return [shape_line(r) for r in rows], next_cursor


def parse_limit(value: str | None, default: int, maximum: int, name: str = "limit") -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise Refusal(400, f"{name}: {value!r} is not a whole number") from None
    if limit < 1:
        raise Refusal(400, f"{name}: must be at least 1, got {limit}")
    if limit > maximum:
        raise Refusal(400, f"{name}: at most {maximum}, got {limit}")
    return limit
