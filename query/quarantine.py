"""Lines the store refused for their content (flightlog.ingest.batcher quarantines them):
read back per tenant at `GET /api/v1/quarantine` and on the /quarantine page."""

from __future__ import annotations

from typing import Any

from flightlog.schema.store import Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def parse_limit(text: str | None) -> int:
    try:
        return max(1, min(int(text or DEFAULT_LIMIT), MAX_LIMIT))
    except ValueError:
        return DEFAULT_LIMIT


def quarantined(store: Store, tenant: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The tenant's newest quarantined lines (a replay may quarantine a line twice before the
    table merges: LIMIT 1 BY keeps one) and how many there are."""
    rows = store.query(
        "SELECT toString(ts) AS ts, segment, line_no, raw, reason FROM quarantine "
        "WHERE tenant = {tenant:String} ORDER BY ts DESC, segment, line_no "
        "LIMIT 1 BY segment, line_no LIMIT {limit:UInt32}",
        {"tenant": tenant, "limit": limit},
    ).dicts()
    total = store.query(
        "SELECT count() FROM (SELECT DISTINCT segment, line_no FROM quarantine WHERE tenant = {tenant:String})",
        {"tenant": tenant},
    ).scalar()
    return {"total": int(total or 0), "lines": rows}
