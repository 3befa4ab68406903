"""Export: every line matching a search, streamed as NDJSON or CSV with bounded memory.

The engine formats the rows (JSONEachRow / CSV) and hands them over block by block
(`Store.query_stream`); Python only moves bytes. One thread per export pulls blocks from the
engine and passes them to the event loop through a window of a few blocks, so a slow client
slows the query down instead of piling blocks up in memory.

Newest first needs a sort, and a sort holds what it sorts: measured in chDB, one query
`ORDER BY ts DESC` over a million lines held the whole export in memory (reading in key order
hour by hour did too when an hour held them all; with no ORDER BY the stream stayed at ~60 MB).
So the export is cut into time slices of at most SLICE_LINES lines each — planned from counts
per minute, and per second inside a minute that alone holds more — and each slice is one
sorted query, newest slice first. Memory is bounded by a slice, not by the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flightlog.query.search import ParsedQuery, match_condition
from flightlog.query.timefmt import NS_PER_S
from flightlog.schema.store import Store

FORMATS = {
    "ndjson": ("JSONEachRow", "application/x-ndjson", "ndjson"),
    "csv": ("CSVWithNames", "text/csv; charset=utf-8", "csv"),
}
MAX_CONCURRENT_EXPORTS = 4
SLICE_LINES = 20_000
BLOCKS_IN_FLIGHT = 4
EXPORT_SETTINGS: dict[str, Any] = {
    # An export runs as long as the client keeps reading; a stalled client holds it open.
    "max_execution_time": 3600,
    # Output columns are named like the table's (ts, attrs); WHERE and ORDER BY mean the columns.
    "prefer_column_name_to_alias": 1,
    "output_format_json_quote_64bit_integers": 0,
}



def export_sql(fmt: str) -> str:
    attrs = "attrs" if fmt == "ndjson" else "toJSONString(attrs) AS attrs"
    return (
        "SELECT concat(replaceOne(toString(ts), ' ', 'T'), 'Z') AS ts, service, host, level, message, "
        f"build_id, deploy_id, trace_id, span_id, request_id, {attrs}, "
        "concat(toString(toUnixTimestamp64Nano(ts)), '-', toString(seq)) AS ref "
        "FROM logs WHERE {where} ORDER BY ts DESC, seq DESC"
    )


def plan_slices(
    store: Store, tenant: str, parsed: ParsedQuery, since_ns: int | None, until_ns: int
) -> list[tuple[int, int]]:
    """[lo, hi) time ranges, newest first, each holding at most SLICE_LINES matches (or one
    second's worth, if a single second holds more)."""
    counts = _counts(store, tenant, parsed, since_ns, until_ns, "toStartOfMinute(ts)", 60)
    fine: list[tuple[int, int, int]] = []
    for lo, hi, n in counts:
        if n > SLICE_LINES:
            fine.extend(_counts(store, tenant, parsed, lo, hi, "toStartOfSecond(ts)", 1))
        else:
            fine.append((lo, hi, n))
    slices: list[tuple[int, int]] = []
    current: list[int] | None = None
    for lo, hi, n in fine:  # newest first
        if current is not None and current[2] + n <= SLICE_LINES:
            current[0], current[2] = lo, current[2] + n
            continue
        if current is not None:
            slices.append((current[0], current[1]))
        current = [lo, hi, n]
    if current is not None:
        slices.append((current[0], current[1]))
    return slices


def _counts(
    store: Store, tenant: str, parsed: ParsedQuery, since_ns: int | None, until_ns: int, unit: str, seconds: int
) -> list[tuple[int, int, int]]:
    params: dict[str, Any] = {}
    where = match_condition(tenant, parsed, since_ns, until_ns, params)
    rows = store.query(
        f"SELECT toUInt32({unit}) AS u, count() FROM logs WHERE {where} GROUP BY u ORDER BY u DESC", params
    ).rows
    out = []
    for start_s, n in rows:
        lo = int(start_s) * NS_PER_S
        hi = lo + seconds * NS_PER_S
        if since_ns is not None:
            lo = max(lo, since_ns)
        out.append((lo, min(hi, until_ns), int(n)))
    return out


def export_chunks(
    store: Store, tenant: str, parsed: ParsedQuery, fmt: str, *, since_ns: int | None, until_ns: int
) -> Iterator[bytes]:
    """The export's bytes, block by block (blocking: run it off the event loop)."""
    slices = plan_slices(store, tenant, parsed, since_ns, until_ns) or [(since_ns, until_ns)]
    engine_format = FORMATS[fmt][0]
    for i, (lo, hi) in enumerate(slices):
        params: dict[str, Any] = {}
        where = match_condition(tenant, parsed, lo, hi, params)
        sql = export_sql(fmt).replace("{where}", where)
        # the header once, on the first slice
        slice_format = engine_format if i == 0 else engine_format.removesuffix("WithNames")
        yield from store.query_stream(sql, params, settings=EXPORT_SETTINGS, fmt=slice_format)
