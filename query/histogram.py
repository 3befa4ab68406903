"""Counts of matching lines per time bucket, split by level: the search page's bar chart.

The bucket width is the smallest "nice" step (1 s, 2 s, 5 s … 1 day, 1 week) that covers the
window in at most the requested number of buckets; buckets start on multiples of the step
(epoch-aligned), so the edges read as round times and stay put as the window slides.
"""

from __future__ import annotations

from typing import Any

from flightlog.query.search import ParsedQuery, match_condition
from flightlog.query.timefmt import NS_PER_S, format_ns
from flightlog.schema.fields import LEVELS
from flightlog.schema.store import Store

DEFAULT_BUCKETS = 60
MAX_BUCKETS = 1000
_NICE_STEPS_S = (
    1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 365 * 86400,
)  # fmt: skip


def nice_step_ns(span_ns: int, buckets: int) -> int:
    """The smallest nice step (ns) that covers `span_ns` in at most `buckets` buckets."""
    for step in _NICE_STEPS_S:
        if step * NS_PER_S * buckets >= span_ns:
            return step * NS_PER_S
    return -(-span_ns // buckets)  # wider than any nice step: an even split


def histogram(
    store: Store,
    tenant: str,
    parsed: ParsedQuery,
    *,
    since_ns: int | None,
    until_ns: int,
    buckets: int = DEFAULT_BUCKETS,
) -> dict[str, Any]:
    """→ {from, to, step_seconds, levels, buckets: [{ts, total, counts: {level: n}}], total, max}."""
    if since_ns is None:
        # all retained time (an id query): the chart spans the matches themselves
        params: dict[str, Any] = {}
        where = match_condition(tenant, parsed, None, until_ns, params)
        first = store.query(f"SELECT toUnixTimestamp64Nano(min(ts)), count() FROM logs WHERE {where}", params).rows
        if first and first[0][1]:
            since_ns = int(first[0][0])
        else:
            since_ns = until_ns - 3600 * NS_PER_S
    span = max(until_ns - since_ns, 1)
    step = nice_step_ns(span, buckets)
    start = since_ns // step * step
    params = {"step": step}
    where = match_condition(tenant, parsed, since_ns, until_ns, params)
    result = store.query(
        "SELECT intDiv(toUnixTimestamp64Nano(ts), {step:Int64}) AS b, level, count() AS n "
        f"FROM logs WHERE {where} GROUP BY b, level ORDER BY b",
        params,
    )
    count = max(1, -(-(until_ns - start) // step))
    slots: list[dict[str, Any]] = [{"ts": format_ns(start + i * step), "total": 0, "counts": {}} for i in range(count)]
    first_bucket = start // step
    others: list[str] = []
    for b, level, n in result.rows:
        i = int(b) - first_bucket
        if 0 <= i < count:
            slot = slots[i]
            slot["counts"][level] = slot["counts"].get(level, 0) + int(n)
            slot["total"] += int(n)
            if level not in LEVELS and level not in others:
                others.append(level)
    return {
        "from": format_ns(since_ns),
        "to": format_ns(until_ns),
        "step_seconds": step / NS_PER_S,
        "levels": list(LEVELS) + sorted(others),
        "buckets": slots,
        "total": sum(s["total"] for s in slots),
        "max": max((s["total"] for s in slots), default=0),
    }
