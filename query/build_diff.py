"""What is new in this build: two builds' lines compared by message template; a deploy's N minutes
after against the N minutes before.

A template is a message with its variable parts masked — quoted strings, UUIDs, hex, numbers and
paths become `<*>` — computed in the engine (one replaceRegexpAll over the first
TEMPLATE_PREFIX characters), so `retry 3 of /var/run/a.sock failed` and `retry 4 of
/tmp/b.sock failed` are one template. A build's lines come from trail_lines (one primary-key
range each); a deploy's windows from logs (its time-ordered key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flightlog.query import build_records
from flightlog.query.kinds import kind_of
from flightlog.query.timefmt import format_ns, now_ns, parse_ns
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

TEMPLATE_PREFIX = 400
DIFF_DEFAULT_LIMIT = 50
DIFF_MAX_LIMIT = 500
DEPLOY_MAX_MINUTES = 24 * 60
ERROR_LEVELS = "('error', 'fatal')"

# One pass, leftmost alternative first: a path, a quoted string, a UUID, 0x-hex, a hex run with
# digits and letters, a number. No capture group: with one, RE2 has to track submatches and the
# pass cost three times as much (measured: 200 ms against 63 ms for 100k lines); the price is
# that `a/b` inside a word is masked from its slash, the same way in every build.
_MASK = (
    r"""(?:/[^\s/'"]+)+/?"""
    r"""|"[^"]*"|'[^']*'"""
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b"
    r"|\d+(?:\.\d+)*"
)


def template_sql(column: str = "message") -> str:
    """The engine expression turning a message into its template (constants only, no user text)."""
    pattern = _MASK.replace("\\", "\\\\").replace("'", "\\'")
    return f"replaceRegexpAll(substring({column}, 1, {TEMPLATE_PREFIX}), '{pattern}', '<*>')"


def resolve_against(store: Store, tenant: str, kind: str, entity_id: str, against: str) -> str:
    """The baseline build: `previous` (same pipeline and branch), `last-success`, or an id."""
    if against not in ("previous", "last-success"):
        if not against:
            raise Refusal(400, "against: previous, last-success or a build id")
        return against
    rec = build_records.rollup(store, tenant, kind, entity_id)
    if rec is None:
        raise Refusal(400, f"{kind} {entity_id!r} has no CI record, so no pipeline and branch to find its "
                            f"{against} build by; pass against=<{kind} id>")
    found = build_records.neighbour(store, tenant, kind, entity_id, rec, success_only=against == "last-success")
    if found is None:
        what = "successful build" if against == "last-success" else "build"
        raise Refusal(404, f"no earlier {what} of {rec['pipeline'] or rec['repo']} on {rec['branch'] or 'its branch'}")
    return found


def build_diff(
    store: Store, tenant: str, entity_id: str, against: str = "previous", limit: int = DIFF_DEFAULT_LIMIT
) -> dict[str, Any]:
    """Templates new in `entity_id` against the baseline (with counts and the first line of each),
    templates gone, error counts per template and per service, new hosts and services."""
    k = kind_of("build")
    baseline = resolve_against(store, tenant, "build", entity_id, against)
    params = {"tenant": tenant, "kind": k.name, "cur": entity_id, "base": baseline}
    rows = store.query(
        f"SELECT {template_sql()} AS tpl, countIf(id = {{cur:String}}) AS n_cur, countIf(id = {{base:String}}) AS n_base, "
        f"countIf(id = {{cur:String}} AND level IN {ERROR_LEVELS}) AS e_cur, "
        f"countIf(id = {{base:String}} AND level IN {ERROR_LEVELS}) AS e_base, "
        "argMinIf((message, toUnixTimestamp64Nano(ts), seq, service, host, level), (ts, seq), id = {cur:String}) AS first_cur, "
        "argMinIf((message, toUnixTimestamp64Nano(ts), seq, service, host, level), (ts, seq), id = {base:String}) AS first_base "
        "FROM trail_lines WHERE tenant = {tenant:String} AND kind = {kind:String} AND id IN ({cur:String}, {base:String}) "
        "GROUP BY tpl",
        params,
    ).dicts()
    for which, side in ((entity_id, "n_cur"), (baseline, "n_base")):
        if not any(r[side] for r in rows):
            raise Refusal(404, f"no build {which!r}: no line carries build_id={which}")
    new = sorted((r for r in rows if r["n_base"] == 0), key=lambda r: (-r["n_cur"], r["first_cur"][1]))
    gone = sorted((r for r in rows if r["n_cur"] == 0), key=lambda r: (-r["n_base"], r["first_base"][1]))
    errors = sorted((r for r in rows if r["e_cur"] != r["e_base"]),
                    key=lambda r: (-(r["e_cur"] - r["e_base"]), r["tpl"]))
    sides = _sides(store, tenant, k.name, entity_id, baseline)
    return {
        "build_id": entity_id,
        "against": baseline,
        "against_mode": against if against in ("previous", "last-success") else "id",
        "templates": {"this": sum(1 for r in rows if r["n_cur"]), "against": sum(1 for r in rows if r["n_base"])},
        "lines": {"this": sum(r["n_cur"] for r in rows), "against": sum(r["n_base"] for r in rows)},
        "new_count": len(new),
        "gone_count": len(gone),
        "new": [_template(r, "cur", "build", entity_id) for r in new[:limit]],
        "gone": [_template(r, "base", "build", baseline) for r in gone[:limit]],
        "errors_by_template": [
            {"template": r["tpl"], "errors": r["e_cur"], "against": r["e_base"], "new": r["n_base"] == 0}
            for r in errors[:limit]
        ],
        **sides,
    }


def _template(row: dict[str, Any], side: str, kind: str, entity_id: str) -> dict[str, Any]:
    message, ts_ns, seq, service, host, level = row[f"first_{side}"]
    count = row["n_cur"] if side == "cur" else row["n_base"]
    errors = row["e_cur"] if side == "cur" else row["e_base"]
    return {
        "template": row["tpl"],
        "count": int(count),
        "errors": int(errors),
        "first": {"message": message, "ts": format_ns(int(ts_ns)), "ref": f"{int(ts_ns)}-{int(seq)}",
                  "service": service, "host": host, "level": level, kind + "_id": entity_id},
    }


def _sides(store: Store, tenant: str, kind: str, cur: str, base: str) -> dict[str, Any]:
    """Per service errors of both, and the hosts and services only this one has (from id_hosts)."""
    result = store.query(
        "SELECT id, service, host, sumMap(levels) FROM id_hosts WHERE tenant = {tenant:String} "
        "AND kind = {kind:String} AND id IN ({cur:String}, {base:String}) GROUP BY id, service, host",
        {"tenant": tenant, "kind": kind, "cur": cur, "base": base},
    )
    errors: dict[str, dict[str, int]] = {}
    hosts: dict[str, set[str]] = {cur: set(), base: set()}
    services: dict[str, set[str]] = {cur: set(), base: set()}
    for entity_id, service, host, levels in result.rows:
        side = "this" if entity_id == cur else "against"
        count = int(levels.get("error", 0)) + int(levels.get("fatal", 0))
        errors.setdefault(service, {"this": 0, "against": 0})[side] += count
        hosts[entity_id].add(host)
        services[entity_id].add(service)
    return {
        "errors_by_service": [{"service": s, **counts} for s, counts in sorted(errors.items())],
        "new_services": sorted(services[cur] - services[base]),
        "gone_services": sorted(services[base] - services[cur]),
        "new_hosts": sorted(hosts[cur] - hosts[base]),
    }


def deploy_diff(
    store: Store,
    tenant: str,
    entity_id: str,
    minutes: int = 15,
    services: Sequence[str] = (),
    limit: int = DIFF_DEFAULT_LIMIT,
    now: int | None = None,
) -> dict[str, Any]:
    """The `minutes` after the deploy against the `minutes` before it, per service: line and error
    rates, and the templates only seen after. The deploy's time is when CI said it started (else
    its first line); the services are the deploy's own (else `services`, else every service)."""
    if not 1 <= minutes <= DEPLOY_MAX_MINUTES:
        raise Refusal(400, f"minutes: 1 to {DEPLOY_MAX_MINUTES}")
    rec = build_records.record(store, tenant, "deploy", entity_id)
    own = store.query(
        "SELECT groupUniqArray(service), toUnixTimestamp64Nano(min(first_ts)) FROM id_hosts "
        "WHERE tenant = {tenant:String} AND kind = 'deploy' AND id = {id:String}",
        {"tenant": tenant, "id": entity_id},
    ).rows
    own_services, first_line_ns = (own[0][0], int(own[0][1])) if own and own[0][0] else ([], 0)
    if rec is None and not first_line_ns:
        raise Refusal(404, f"no deploy {entity_id!r}: no CI event and no line carries deploy_id={entity_id}")
    at = parse_ns(rec["started_ts"]) if rec else first_line_ns
    chosen = list(services) or sorted(own_services)
    window = minutes * 60 * 1_000_000_000
    now = now_ns() if now is None else now
    after_ns = max(0, min(window, now - at))
    params: dict[str, Any] = {"tenant": tenant, "at": at, "from": at - window, "to": at + window}
    where = "tenant = {tenant:String} AND ts >= fromUnixTimestamp64Nano({from:Int64}) AND ts < fromUnixTimestamp64Nano({to:Int64})"
    if chosen:
        params["services"] = chosen
        where += " AND service IN {services:Array(String)}"
    after = "ts >= fromUnixTimestamp64Nano({at:Int64})"
    rates = store.query(
        f"SELECT service, countIf(NOT ({after})) AS n_before, countIf({after}) AS n_after, "
        f"countIf(NOT ({after}) AND level IN {ERROR_LEVELS}) AS e_before, countIf({after} AND level IN {ERROR_LEVELS}) AS e_after "
        f"FROM logs WHERE {where} GROUP BY service ORDER BY service",
        params,
    ).dicts()
    rows = store.query(
        f"SELECT service, {template_sql()} AS tpl, countIf(NOT ({after})) AS n_before, countIf({after}) AS n_after, "
        f"countIf({after} AND level IN {ERROR_LEVELS}) AS e_after, "
        f"argMinIf((message, toUnixTimestamp64Nano(ts), seq, host, level), (ts, seq), {after}) AS first_after "
        f"FROM logs WHERE {where} GROUP BY service, tpl HAVING n_before = 0 "
        "ORDER BY e_after DESC, n_after DESC, service, tpl LIMIT {limit:UInt32}",
        {**params, "limit": limit},
    ).dicts()
    before_min, after_min = minutes, after_ns / 60e9
    return {
        "deploy_id": entity_id,
        "at": format_ns(at),
        "at_from": "ci" if rec else "first line",
        "minutes": minutes,
        "after_minutes": round(after_min, 2),
        "partial": after_ns < window,
        "services": [
            {
                "service": r["service"],
                "before": {"lines": r["n_before"], "errors": r["e_before"],
                           "lines_per_min": round(r["n_before"] / before_min, 3),
                           "errors_per_min": round(r["e_before"] / before_min, 3)},
                "after": {"lines": r["n_after"], "errors": r["e_after"],
                          "lines_per_min": round(r["n_after"] / after_min, 3) if after_min else 0.0,
                          "errors_per_min": round(r["e_after"] / after_min, 3) if after_min else 0.0},
            }
            for r in rates
        ],
        "new": [
            {
                "service": r["service"], "template": r["tpl"], "count": int(r["n_after"]), "errors": int(r["e_after"]),
                "first": {"message": r["first_after"][0], "ts": format_ns(int(r["first_after"][1])),
                          "ref": f"{int(r['first_after'][1])}-{int(r['first_after'][2])}",
                          "host": r["first_after"][3], "level": r["first_after"][4]},
            }
            for r in rows
        ],
    }


FAILED = frozenset({"failure", "failed"})
PANEL_LIMIT = 10


def failure_panel(
    store: Store, tenant: str, kind: str, summary: dict[str, Any], deploy_minutes: int
) -> dict[str, Any] | None:
    """What the "New in this build" panel shows on a failed build's (or deploy's) page: the diff
    against the last successful build (else the previous one), or the deploy's before/after;
    `{"unavailable": reason}` when there is nothing to compare with; None unless it failed."""
    if summary["status"] not in FAILED:
        return None
    entity_id = summary[kind_of(kind).column]
    try:
        if kind == "deploy":
            return deploy_diff(store, tenant, entity_id, deploy_minutes, limit=PANEL_LIMIT)
        try:
            return build_diff(store, tenant, entity_id, "last-success", PANEL_LIMIT)
        except Refusal as exc:
            if exc.status != 404:
                raise
            return build_diff(store, tenant, entity_id, "previous", PANEL_LIMIT)
    except Refusal as exc:
        return {"unavailable": exc.message}
