"""The pipelines overview: each (repo, pipeline, branch) CI told of, with its last builds' statuses."""

from __future__ import annotations

from typing import Any

from flightlog.query.build_records import ROLLUP_SQL
from flightlog.query.timefmt import format_ns
from flightlog.schema.store import Store

BUILDS_SHOWN = 20
PIPELINES_SHOWN = 500


def pipelines(
    store: Store, tenant: str, *, repos: tuple[str, ...] = (), builds: int = BUILDS_SHOWN
) -> list[dict[str, Any]]:
    """One row per (repo, pipeline, branch), most recently built first, with its last `builds`
    builds newest first: id, status (CI's), start."""
    params: dict[str, Any] = {"tenant": tenant, "builds": builds, "limit": PIPELINES_SHOWN}
    where = "(r_repo != '' OR r_pipeline != '')"
    if repos:
        params["repos"] = list(repos)
        where += " AND r_repo IN {repos:Array(String)}"
    result = store.query(
        "SELECT r_repo, r_pipeline, r_branch, max(start) AS latest, count() AS total, "
        "arraySlice(arrayReverseSort(b -> b.3, groupArray((id, if(ci_status != '', ci_status, 'unknown'), start))), "
        "1, {builds:UInt32}) AS last "
        f"FROM (SELECT id, {ROLLUP_SQL}, if(started_ns > 0, started_ns, r_first) AS start FROM build_events "
        "WHERE tenant = {tenant:String} AND kind = 'build' GROUP BY id) "
        f"WHERE {where} GROUP BY r_repo, r_pipeline, r_branch ORDER BY latest DESC, r_repo, r_pipeline, r_branch "
        "LIMIT {limit:UInt32}",
        params,
    )
    return [
        {
            "repo": repo,
            "pipeline": pipeline,
            "branch": branch,
            "latest_ts": format_ns(int(latest)),
            "total": int(total),
            "builds": [{"id": b[0], "status": b[1], "started_ts": format_ns(int(b[2]))} for b in last],
        }
        for repo, pipeline, branch, latest, total, last in result.rows
    ]
