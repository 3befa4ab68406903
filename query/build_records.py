"""Build and deploy records: what CI said about one (repo, branch, commit, author, pipeline, link,
status and its history), merged with what its lines say (flightlog.query.trails).

A record is the `build_events` rows of one (tenant, kind, id) rolled up: each field's latest
non-empty value, the status of the latest event that has one (a final status wins a tie with
running, running with queued). The status shown for a build is that CI status when there is one,
else what the lines say (`failed` with an error line, else `ok`; trails.STATUS_SQL) — never a
line's generic `status` attribute. Both are returned: a CI "success" with error lines shows both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flightlog.query import trails
from flightlog.query.kinds import kind_of
from flightlog.query.timefmt import format_ns
from flightlog.query.trails import RECENT_HOSTS_SHOWN, STATUS_SQL, ListCursor
from flightlog.schema.build_status import FINAL_STATUSES
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

RECORD_FIELDS = ("repo", "branch", "commit", "author", "pipeline", "url", "environment", "version")
HISTORY_MAX = 500
# the order of statuses at one instant: a final one is later than running, running than queued
_RANK = "multiIf(status = 'queued', 0, status = 'running', 1, 2)"
ROLLUP_SQL = (
    "toUnixTimestamp64Nano(min(ts)) AS r_first, toUnixTimestamp64Nano(max(ts)) AS r_last, "
    f"argMaxIf(status, (ts, {_RANK}, received_ts), status != '') AS ci_status, "
    "toUnixTimestamp64Nano(minIf(ts, status = 'running')) AS started_ns, "
    + ", ".join(f"argMaxIf({f}, (ts, received_ts), {f} != '') AS r_{f}" for f in RECORD_FIELDS)
)
_WHERE = "tenant = {tenant:String} AND kind = {kind:String}"


def rollup(store: Store, tenant: str, kind: str, entity_id: str) -> dict[str, Any] | None:
    """The record's fields and status without its history (what `neighbour` needs); None when CI
    never said anything about it."""
    k = kind_of(kind)
    rows = store.query(
        f"SELECT {ROLLUP_SQL} FROM build_events WHERE {_WHERE} AND id = {{id:String}}",
        {"tenant": tenant, "kind": k.name, "id": entity_id},
    ).dicts()
    if not rows or not rows[0]["r_first"]:
        return None
    row = rows[0]
    return {
        **{f: row[f"r_{f}"] for f in RECORD_FIELDS},
        "status": row["ci_status"],
        "started_ts": format_ns(row["started_ns"] or row["r_first"]),
        "last_event_ts": format_ns(row["r_last"]),
    }


def record(store: Store, tenant: str, kind: str, entity_id: str) -> dict[str, Any] | None:
    """The CI record of one build or deploy, with its status history and jobs; None when CI never
    said anything about it."""
    k = kind_of(kind)
    params = {"tenant": tenant, "kind": k.name, "id": entity_id}
    rec = rollup(store, tenant, kind, entity_id)
    if rec is None:
        return None
    events = store.query(
        "SELECT toUnixTimestamp64Nano(ts) AS ts_ns, source, event, status, job, job_status, detail "
        f"FROM build_events WHERE {_WHERE} AND id = {{id:String}} "
        "ORDER BY ts, received_ts LIMIT 1 BY event_key LIMIT {limit:UInt32}",
        {**params, "limit": HISTORY_MAX},
    ).dicts()
    events.sort(key=lambda e: e["ts_ns"])
    history: list[dict[str, Any]] = []
    jobs: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["status"] and (not history or history[-1]["status"] != e["status"]):
            history.append({"status": e["status"], "ts": format_ns(e["ts_ns"]), "source": e["source"], "event": e["event"]})
        if e["job"]:
            job = jobs.setdefault(e["job"], {"name": e["job"], "status": "", "ts": ""})
            if e["job_status"]:
                job.update(status=e["job_status"], ts=format_ns(e["ts_ns"]))
    finished = next((h["ts"] for h in reversed(history) if h["status"] in FINAL_STATUSES), None)
    return {
        **rec,
        "finished_ts": finished if rec["status"] in FINAL_STATUSES else None,
        "history": history,
        "jobs": list(jobs.values()),
        "detail": next((e["detail"] for e in reversed(events) if e["detail"]), ""),
    }


def neighbour(
    store: Store, tenant: str, kind: str, entity_id: str, rec: dict[str, Any], *, success_only: bool = False
) -> str | None:
    """The build before this one in the same repo, pipeline and branch (by start); with
    `success_only`, the last one that succeeded. None without a record or a predecessor."""
    if not rec or not (rec["pipeline"] or rec["repo"]):
        return None
    k = kind_of(kind)
    params = {"tenant": tenant, "kind": k.name, "id": entity_id, "repo": rec["repo"], "pipeline": rec["pipeline"],
              "branch": rec["branch"], "environment": rec["environment"]}
    same = "r_repo = {repo:String} AND r_pipeline = {pipeline:String} AND r_branch = {branch:String}"
    if k.name == "deploy":
        same += " AND r_environment = {environment:String}"
    result = store.query(
        f"SELECT id, {ROLLUP_SQL} FROM build_events WHERE {_WHERE} GROUP BY id "
        f"HAVING {same} AND id != {{id:String}} "
        + ("AND ci_status = 'success' " if success_only else "")
        + "AND if(started_ns > 0, started_ns, r_first) <= {started:Int64} "
        "ORDER BY if(started_ns > 0, started_ns, r_first) DESC, id DESC LIMIT 1",
        {**params, "started": _ns(rec["started_ts"])},
    )
    return result.rows[0][0] if result.rows else None


def _ns(ts: str) -> int:
    from flightlog.query.timefmt import parse_ns

    return parse_ns(ts)


def summary(
    store: Store, tenant: str, kind: str, entity_id: str, gone_after_s: int = trails.HOST_GONE_AFTER_S
) -> dict[str, Any]:
    """trails.summary (what the lines say) with the CI record, the status from CI when it has
    one, and the previous build of the same pipeline and branch. 404 when neither exists."""
    k = kind_of(kind)
    rec = record(store, tenant, kind, entity_id)
    try:
        body = trails.summary(store, tenant, kind, entity_id, gone_after_s)
    except Refusal as exc:
        if exc.status != 404 or rec is None:
            raise
        body = {k.column: entity_id, "status": "", "first_ts": rec["started_ts"], "last_ts": rec["last_event_ts"],
                "lines": 0, "levels": {}, "services": [], "hosts": [], "host_count": 0, "gone_hosts": 0,
                k.other_key: []}
    log_status = body["status"] if body["lines"] else ""
    body["log_status"] = log_status
    body["errors"] = body["levels"].get("error", 0) + body["levels"].get("fatal", 0)
    body["status"] = (rec or {}).get("status") or log_status or "unknown"
    body["record"] = rec
    body["previous"] = neighbour(store, tenant, kind, entity_id, rec) if rec else None
    return body


def listing(
    store: Store,
    tenant: str,
    kind: str,
    limit: int = trails.RECENT_DEFAULT_LIMIT,
    *,
    cursor: ListCursor | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    services: Sequence[str] = (),
    statuses: Sequence[str] = (),
    repos: Sequence[str] = (),
    branches: Sequence[str] = (),
    pipelines: Sequence[str] = (),
) -> dict[str, Any]:
    """A page of builds (or deploys) — those with lines, those CI told of, or both — active in
    [since, until], newest first. Filters: any of the given services, statuses, repos, branches,
    pipelines."""
    k = kind_of(kind)
    params: dict[str, Any] = {"tenant": tenant, "kind": k.name, "limit": limit + 1}
    where = []
    if since_ns is not None:
        params["since"] = since_ns
        where.append("last_ns >= {since:Int64}")
    if until_ns is not None:
        params["until"] = until_ns
        where.append("first_ns <= {until:Int64}")
    for name, column, values in (("services", "", services), ("statuses", "status", statuses),
                                 ("repos", "repo", repos), ("branches", "branch", branches),
                                 ("pipelines", "pipeline", pipelines)):
        if values:
            params[name] = list(values)
            where.append(f"hasAny(svcs, {{{name}:Array(String)}})" if name == "services"
                         else f"{column} IN {{{name}:Array(String)}}")
    if cursor is not None:
        params["c_last"] = cursor.last_ns
        params["c_id"] = cursor.id
        where.append("(last_ns < {c_last:Int64} OR (last_ns = {c_last:Int64} AND eid > {c_id:String}))")
    # records only: no need to read the line summaries of builds CI never told of first
    join = "RIGHT" if repos or branches or pipelines else "FULL OUTER"
    result = store.query(
        "SELECT * FROM (SELECT if(l.id != '', l.id, r.id) AS eid, "
        "if(l_first = 0, r_first, if(r_first = 0, l_first, least(l_first, r_first))) AS first_ns, "
        "greatest(l_last, r_last) AS last_ns, svcs, all_hosts, n, lv, oth, "
        f"if(n = 0, '', {STATUS_SQL}) AS log_status, if(ci_status != '', ci_status, "
        "if(log_status != '', log_status, 'unknown')) AS status, ci_status, "
        + ", ".join(f"r_{f} AS {f}" for f in RECORD_FIELDS)
        + " FROM (SELECT id, toUnixTimestamp64Nano(min(first_ts)) AS l_first, "
        "toUnixTimestamp64Nano(max(last_ts)) AS l_last, groupUniqArrayArray(services) AS svcs, "
        "groupUniqArrayArray(hosts) AS all_hosts, sum(lines) AS n, sumMap(levels) AS lv, "
        f"groupUniqArrayArray(others) AS oth FROM id_summary WHERE {_WHERE} GROUP BY id) AS l "
        f"{join} JOIN (SELECT id, {ROLLUP_SQL} FROM build_events WHERE {_WHERE} GROUP BY id) AS r ON l.id = r.id) "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY last_ns DESC, eid LIMIT {limit:UInt32}",
        params,
    )
    items = []
    for row in result.dicts()[:limit]:
        levels = {lv: int(row["lv"][lv]) for lv in sorted(row["lv"], key=trails._level_order) if int(row["lv"][lv])}
        hosts = sorted(row["all_hosts"])
        items.append({
            "id": row["eid"],
            k.column: row["eid"],
            "status": row["status"],
            "ci_status": row["ci_status"],
            "log_status": row["log_status"],
            "first_ts": format_ns(row["first_ns"]),
            "last_ts": format_ns(row["last_ns"]),
            "services": sorted(row["svcs"]),
            "hosts": hosts[:RECENT_HOSTS_SHOWN],
            "host_count": len(hosts),
            "lines": int(row["n"]),
            "levels": levels,
            "errors": levels.get("error", 0) + levels.get("fatal", 0),
            k.other_key: sorted(row["oth"]),
            **{f: row[f] for f in RECORD_FIELDS},
        })
    next_cursor = None
    if len(result.rows) > limit and items:
        last = items[-1]
        next_cursor = ListCursor(_ns(last["last_ts"]), last["id"]).encode()
    return {"items": items, "next_cursor": next_cursor}


def record_filters(query: Any) -> dict[str, tuple[str, ...]]:
    """`?repo=&branch=&pipeline=` (each repeatable or comma-separated) for `listing`."""
    out = {}
    for param, name in (("repo", "repos"), ("branch", "branches"), ("pipeline", "pipelines")):
        values: list[str] = []
        for raw in query.getall(param, []) if hasattr(query, "getall") else ([query[param]] if param in query else []):
            values.extend(v for v in raw.split(",") if v)
        out[name] = tuple(dict.fromkeys(values))
    return out
