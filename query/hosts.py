"""Hosts: when each was first and last heard from, its services, builds and deploys, and `gone`.

A host is `gone` once it has sent nothing for `host_gone_after_s` (default 10 minutes); its lines,
and the trails it took part in, stay. Reads host_summary and host_ids (migration 0021), never logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flightlog.query.timefmt import format_ns, now_ns
from flightlog.schema.store import Store

HOSTS_MAX = 5000
RECENT_IDS_PER_HOST = 5


def hosts(
    store: Store,
    tenant: str,
    gone_after_s: int = 600,
    *,
    services: Sequence[str] = (),
    gone: bool | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Every host of the tenant (at most HOSTS_MAX), by service then name."""
    now = now_ns() if now is None else now
    params: dict[str, Any] = {"tenant": tenant, "max": HOSTS_MAX, "n": RECENT_IDS_PER_HOST}
    result = store.query(
        "SELECT host, arraySort(groupArray(service)), toUnixTimestamp64Nano(min(f)), toUnixTimestamp64Nano(max(l)), "
        "sum(n), sum(e) FROM (SELECT host, service, min(first_ts) AS f, max(last_ts) AS l, sum(lines) AS n, "
        "sum(errors) AS e FROM host_summary WHERE tenant = {tenant:String} GROUP BY host, service) "
        "GROUP BY host ORDER BY host LIMIT {max:UInt32}",
        params,
    )
    ids = store.query(
        "SELECT host, kind, count(), arrayMap(x -> x.2, arraySlice(arrayReverseSort(groupArray((l, id))), 1, {n:UInt32})) "
        "FROM (SELECT host, kind, id, max(last_ts) AS l FROM host_ids WHERE tenant = {tenant:String} "
        "GROUP BY host, kind, id) GROUP BY host, kind",
        params,
    )
    by_host: dict[tuple[str, str], tuple[int, list[str]]] = {
        (host, kind): (int(count), recent) for host, kind, count, recent in ids.rows
    }
    gone_before = now - gone_after_s * 1_000_000_000
    out = []
    for host, svcs, first, last, lines, errors in result.rows:
        is_gone = int(last) < gone_before
        if services and not set(services) & set(svcs):
            continue
        if gone is not None and is_gone != gone:
            continue
        builds = by_host.get((host, "build"), (0, []))
        deploys = by_host.get((host, "deploy"), (0, []))
        out.append(
            {
                "host": host,
                "services": sorted(set(svcs)),
                "first_ts": format_ns(first),
                "last_ts": format_ns(last),
                "lines": int(lines),
                "errors": int(errors),
                "gone": is_gone,
                "build_count": builds[0],
                "builds": builds[1],
                "deploy_count": deploys[0],
                "deploys": deploys[1],
            }
        )
    out.sort(key=lambda h: (h["services"][0] if h["services"] else "", h["host"]))
    return {"hosts": out, "gone_after_s": gone_after_s, "now": format_ns(now)}


def parse_filters(query) -> tuple[tuple[str, ...], bool | None]:
    """`?service=a,b` and `?gone=1|0` of the hosts list."""
    from flightlog.query.params import _getall
    from flightlog.schema.refusal import Refusal

    gone_text = query.get("gone", "")
    if gone_text not in ("", "0", "1", "true", "false"):
        raise Refusal(400, f"gone: {gone_text!r} is not 1 or 0")
    gone = None if gone_text == "" else gone_text in ("1", "true")
    return _getall(query, "service"), gone
