"""Builds and deploys: the summary of one, its trail (every line in time order), recent ones.

A build and a deploy are the same shape of question over a different column, so each function
takes a `kind` ("build" or "deploy"); the column names come from `KINDS`, never from the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flightlog.query.lines import LEVELS, LINE_COLUMNS, Cursor, cursor_condition, page
from flightlog.query.timefmt import format_ns
from flightlog.schema.store import Store
from flightlog.web.errors import ApiError

TRAIL_DEFAULT_LIMIT = 1000
TRAIL_MAX_LIMIT = 10_000
RECENT_DEFAULT_LIMIT = 50
RECENT_MAX_LIMIT = 1000
RECENT_HOSTS_SHOWN = 100


@dataclass(frozen=True)
class Kind:
    name: str  # "build"
    column: str  # the logs column holding its id: "build_id"
    other_column: str  # the id it correlates with: "deploy_id"
    other_key: str  # where a summary lists those: "deploys"


KINDS: dict[str, Kind] = {
    "build": Kind("build", "build_id", "deploy_id", "deploys"),
    "deploy": Kind("deploy", "deploy_id", "build_id", "builds"),
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; choose from {sorted(KINDS)}") from None


def _level_order(level: str) -> tuple[int, str]:
    return (LEVELS.index(level) if level in LEVELS else len(LEVELS), level)


def summary(store: Store, tenant: str, kind: str, entity_id: str) -> dict[str, Any]:
    """Time span, counts by level, services, (host, service) pairs and linked ids of one build/deploy.

    Raises ApiError(404) when the tenant has no line carrying that id.
    """
    k = kind_of(kind)
    result = store.query(
        f"SELECT host, service, level, count() AS n, "
        f"toUnixTimestamp64Nano(min(ts)), toUnixTimestamp64Nano(max(ts)), "
        f"groupUniqArrayIf({k.other_column}, {k.other_column} != '') "
        f"FROM logs WHERE tenant = {{tenant:String}} AND {k.column} = {{id:String}} "
        f"GROUP BY host, service, level",
        {"tenant": tenant, "id": entity_id},
    )
    if not result.rows:
        raise ApiError(404, f"no {k.name} {entity_id!r}: no line carries {k.column}={entity_id}")
    levels: dict[str, int] = {}
    services: set[str] = set()
    others: set[str] = set()
    pairs: dict[tuple[str, str], list[int]] = {}
    for host, service, level, n, first, last, linked in result.rows:
        levels[level] = levels.get(level, 0) + n
        services.add(service)
        others.update(linked)
        pair = pairs.setdefault((host, service), [first, last, 0])
        pair[0] = min(pair[0], first)
        pair[1] = max(pair[1], last)
        pair[2] += n
    first_ns = min(p[0] for p in pairs.values())
    last_ns = max(p[1] for p in pairs.values())
    hosts = [
        {"host": host, "service": service, "first_ts": format_ns(f), "last_ts": format_ns(la), "lines": n}
        for (host, service), (f, la, n) in sorted(pairs.items(), key=lambda item: (item[1][0], item[0]))
    ]
    return {
        k.column: entity_id,
        "first_ts": format_ns(first_ns),
        "last_ts": format_ns(last_ns),
        "lines": sum(levels.values()),
        "levels": {lv: levels[lv] for lv in sorted(levels, key=_level_order)},
        "services": sorted(services),
        "hosts": hosts,
        k.other_key: sorted(others),
    }


def trail(
    store: Store,
    tenant: str,
    kind: str,
    entity_id: str,
    *,
    limit: int = TRAIL_DEFAULT_LIMIT,
    cursor: Cursor | None = None,
    services: Sequence[str] = (),
    hosts: Sequence[str] = (),
    levels: Sequence[str] = (),
) -> dict[str, Any]:
    """Every line carrying the id, in (ts, seq) order, `limit` at a time after `cursor`.

    `services`, `hosts`, `levels` narrow the trail (each: any of the given values).
    Raises ApiError(404) when the id is unknown to the tenant.
    """
    k = kind_of(kind)
    params: dict[str, Any] = {"tenant": tenant, "id": entity_id, "limit": limit + 1}
    where = f"tenant = {{tenant:String}} AND {k.column} = {{id:String}}"
    where += _in_filter("service", services, params)
    where += _in_filter("host", hosts, params)
    where += _in_filter("level", levels, params)
    where += cursor_condition(cursor, params)
    result = store.query(
        f"SELECT {LINE_COLUMNS} FROM logs WHERE {where} ORDER BY ts, seq LIMIT {{limit:UInt32}}",
        params,
    )
    if not result.rows and cursor is None and not exists(store, tenant, kind, entity_id):
        raise ApiError(404, f"no {k.name} {entity_id!r}: no line carries {k.column}={entity_id}")
    lines, next_cursor = page(result.rows, limit)
    return {k.column: entity_id, "lines": lines, "next_cursor": next_cursor}


def exists(store: Store, tenant: str, kind: str, entity_id: str) -> bool:
    k = kind_of(kind)
    result = store.query(
        f"SELECT 1 FROM logs WHERE tenant = {{tenant:String}} AND {k.column} = {{id:String}} LIMIT 1",
        {"tenant": tenant, "id": entity_id},
    )
    return bool(result.rows)


def recent(store: Store, tenant: str, kind: str, limit: int = RECENT_DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The most recently active builds (or deploys), newest last line first."""
    k = kind_of(kind)
    result = store.query(
        f"SELECT {k.column} AS id, toUnixTimestamp64Nano(min(ts)) AS first_ns, "
        f"toUnixTimestamp64Nano(max(ts)) AS last_ns, groupUniqArray(service), "
        f"groupUniqArray({RECENT_HOSTS_SHOWN})(host), uniqExact(host), count(), "
        f"countIf(level IN ('error', 'fatal')), "
        f"groupUniqArrayIf(20)({k.other_column}, {k.other_column} != '') "
        f"FROM logs WHERE tenant = {{tenant:String}} AND {k.column} != '' "
        f"GROUP BY id ORDER BY last_ns DESC, id LIMIT {{limit:UInt32}}",
        {"tenant": tenant, "limit": limit},
    )
    return [
        {
            "id": entity_id,
            k.column: entity_id,
            "first_ts": format_ns(first_ns),
            "last_ts": format_ns(last_ns),
            "services": sorted(services),
            "hosts": sorted(hosts),
            "host_count": host_count,
            "lines": lines,
            "errors": errors,
            k.other_key: sorted(others),
        }
        for entity_id, first_ns, last_ns, services, hosts, host_count, lines, errors, others in result.rows
    ]


def _in_filter(column: str, values: Sequence[str], params: dict[str, Any]) -> str:
    if not values:
        return ""
    params[f"f_{column}"] = list(values)
    return f" AND {column} IN {{f_{column}:Array(String)}}"
