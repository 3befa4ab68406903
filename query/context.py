"""Context: the lines around one line, from the same host and service.

Every line the API returns carries `ref` = `<ts_ns>-<seq>` (flightlog.query.lines.line_ref). The
line is found under logs' key by its exact time; its neighbours are read in widening time windows
(an hour, a day, then all retained time) so a busy host answers from one window and a quiet one
still finds its previous line.
"""

from __future__ import annotations

import re
from typing import Any

from flightlog.query.lines import LINE_COLUMNS, parse_limit, shape_line
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

CONTEXT_DEFAULT = 20
CONTEXT_MAX = 500
_REF = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_WINDOWS_NS = (3600 * 10**9, 86400 * 10**9, None)
_AT = "fromUnixTimestamp64Nano({ts:Int64}, 'UTC')"


def parse_ref(ref: str | None) -> tuple[int, int]:
    match = _REF.match(ref or "")
    if not match:
        raise Refusal(400, f"ref: {ref!r} is not a line reference like 1795867200123456789-42 (the ref of a line)")
    return int(match.group(1)), int(match.group(2))


def parse_count(value: str | None, name: str) -> int:
    if value == "0":
        return 0
    return parse_limit(value, CONTEXT_DEFAULT, CONTEXT_MAX, name)


def find_line(store: Store, tenant: str, ts_ns: int, seq: int) -> dict[str, Any]:
    result = store.query(
        f"SELECT {LINE_COLUMNS} FROM logs WHERE tenant = {{tenant:String}} AND ts = {_AT} AND seq = {{seq:UInt64}} "
        "LIMIT 1",
        {"tenant": tenant, "ts": ts_ns, "seq": seq},
    )
    if not result.rows:
        raise Refusal(404, f"ref: no line {ts_ns}-{seq}")
    return shape_line(result.rows[0])


def _side(store: Store, tenant: str, line: dict[str, Any], ts_ns: int, seq: int, n: int, before: bool):
    if n == 0:
        return []
    params: dict[str, Any] = {
        "tenant": tenant, "service": line["service"], "host": line["host"], "ts": ts_ns, "seq": seq, "n": n,
    }
    if before:
        near = f"ts <= {_AT} AND (ts < {_AT} OR seq < {{seq:UInt64}})"
        order = "ts DESC, seq DESC"
    else:
        near = f"ts >= {_AT} AND (ts > {_AT} OR seq > {{seq:UInt64}})"
        order = "ts, seq"
    rows: list = []
    for window in _WINDOWS_NS:
        where = f"tenant = {{tenant:String}} AND service = {{service:String}} AND host = {{host:String}} AND {near}"
        if window is not None:
            params["edge"] = ts_ns - window if before else ts_ns + window
            where += " AND ts >= fromUnixTimestamp64Nano({edge:Int64}, 'UTC')" if before else (
                " AND ts <= fromUnixTimestamp64Nano({edge:Int64}, 'UTC')"
            )
        rows = store.query(f"SELECT {LINE_COLUMNS} FROM logs WHERE {where} ORDER BY {order} LIMIT {{n:UInt32}}",
                           params).rows
        if len(rows) >= n:
            break
    lines = [shape_line(r) for r in rows]
    return lines[::-1] if before else lines


def context(store: Store, tenant: str, ref: str, before: int = CONTEXT_DEFAULT, after: int = CONTEXT_DEFAULT):
    """{"line", "before" (oldest first), "after"}: neighbours from the line's own host and service."""
    ts_ns, seq = parse_ref(ref)
    line = find_line(store, tenant, ts_ns, seq)
    return {
        "ref": line["ref"],
        "host": line["host"],
        "service": line["service"],
        "line": line,
        "before": _side(store, tenant, line, ts_ns, seq, before, True),
        "after": _side(store, tenant, line, ts_ns, seq, after, False),
    }
