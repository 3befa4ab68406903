"""Top values of one field among the lines matching a query, with counts: the search sidebar.

`field` is one of the search fields or `attrs.<key>`; the column comes from that allowlist and
an attrs key travels as a parameter. Lines without the field count under the empty value,
which the page shows as "(none)" and links to `-field:*`.
"""

from __future__ import annotations

from typing import Any

from flightlog.query.querylang import ATTRS_PREFIX, FIELDS
from flightlog.query.search import ParsedQuery, match_condition
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

DEFAULT_FACET_VALUES = 10
MAX_FACET_VALUES = 1000


def facet_column(field: str, params: dict[str, Any]) -> str:
    """The SQL expression for a facet field (from the allowlist); Refusal(400) for others."""
    if field in FIELDS:
        return field
    if field.startswith(ATTRS_PREFIX) and len(field) > len(ATTRS_PREFIX):
        params["facet_key"] = field[len(ATTRS_PREFIX) :]
        return "attrs[{facet_key:String}]"
    raise Refusal(400, f"field: {field!r} is not one of {', '.join(FIELDS)} or attrs.<key>")


def facets(
    store: Store,
    tenant: str,
    parsed: ParsedQuery,
    field: str,
    *,
    since_ns: int | None,
    until_ns: int,
    limit: int = DEFAULT_FACET_VALUES,
) -> dict[str, Any]:
    """→ {field, values: [{value, count}], total, other}: the `limit` commonest values first."""
    params: dict[str, Any] = {"facet_limit": limit}
    column = facet_column(field, params)
    where = match_condition(tenant, parsed, since_ns, until_ns, params)
    result = store.query(
        "SELECT value, n, sum(n) OVER () AS total FROM "
        f"(SELECT {column} AS value, count() AS n FROM logs WHERE {where} GROUP BY value) "
        "ORDER BY n DESC, value LIMIT {facet_limit:UInt32}",
        params,
    )
    values = [{"value": value, "count": int(n)} for value, n, _ in result.rows]
    total = int(result.rows[0][2]) if result.rows else 0
    return {
        "field": field,
        "values": values,
        "total": total,
        "other": total - sum(v["count"] for v in values),
    }
