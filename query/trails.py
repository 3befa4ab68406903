"""Builds and deploys: the summary of one, its trail (every line in time order), the list of them.

A build and a deploy are the same shape of question over a different id, so each function takes a
`kind` ("build" or "deploy"); column and kind names come from `KINDS`, never from the user.

Everything here reads the correlation tables of migrations 0020/0021, never scans `logs`:
  trail_lines  (tenant, kind, id, ts, seq) → a trail is one primary-key range read in order;
  id_hosts     per (id, service, host) span, counts by level, linked ids, last line's status;
  id_summary   the same per id, for the list (flightlog.query.build_records.listing);
  host_summary when each host last sent anything (the `gone` mark).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from flightlog.query import correlate
from flightlog.query.kinds import Kind, _not_found, exists, kind_of, line_filters
from flightlog.query.lines import LINE_COLUMNS, Cursor, bad_cursor, cursor_condition, page
from flightlog.query.timefmt import format_ns, now_ns
from flightlog.schema.fields import LEVELS
from flightlog.schema.store import Store

TRAIL_DEFAULT_LIMIT = 1000
TRAIL_MAX_LIMIT = 10_000
RECENT_DEFAULT_LIMIT = 50
RECENT_MAX_LIMIT = 1000
RECENT_HOSTS_SHOWN = 100
HOST_GONE_AFTER_S = 600

# What the lines say of a build/deploy: failed when any line is error or fatal, else ok. Never a
# line's generic `status` attribute (an HTTP status as often as not): a status proper comes from CI
# events or an explicit build.status (flightlog.query.build_records). `lv`: the rolled-up levels.
STATUS_SQL = "if(lv['error'] + lv['fatal'] > 0, 'failed', 'ok')"


def _level_order(level: str) -> tuple[int, str]:
    return (LEVELS.index(level) if level in LEVELS else len(LEVELS), level)


def status_of(levels: dict[str, int]) -> str:
    return "failed" if levels.get("error", 0) + levels.get("fatal", 0) else "ok"


def last_seen(store: Store, tenant: str, hosts: Sequence[str]) -> dict[str, int]:
    """When each host last sent a line (any line, not only this build's), in ns."""
    if not hosts:
        return {}
    result = store.query(
        "SELECT host, toUnixTimestamp64Nano(max(last_ts)) FROM host_summary "
        "WHERE tenant = {tenant:String} AND host IN {hosts:Array(String)} GROUP BY host",
        {"tenant": tenant, "hosts": list(hosts)},
    )
    return {host: int(ns) for host, ns in result.rows}


def summary(
    store: Store,
    tenant: str,
    kind: str,
    entity_id: str,
    gone_after_s: int = HOST_GONE_AFTER_S,
    now: int | None = None,
) -> dict[str, Any]:
    """Time span, status, counts by level, services, (host, service) pairs and linked ids of one id.

    Raises Refusal(404) when the tenant has no line carrying that id.
    """
    k = kind_of(kind)
    params = {"tenant": tenant, "kind": k.name, "id": entity_id}
    where = "tenant = {tenant:String} AND kind = {kind:String} AND id = {id:String}"
    result = store.query(
        f"SELECT host, service, toUnixTimestamp64Nano(min(first_ts)), toUnixTimestamp64Nano(max(last_ts)), "
        f"sum(lines), sumMap(levels), groupUniqArrayArray(others) "
        f"FROM id_hosts WHERE {where} GROUP BY host, service",
        params,
    )
    if not result.rows:
        raise _not_found(k, entity_id)
    levels: dict[str, int] = {}
    services: set[str] = set()
    others: set[str] = set()
    pairs = []
    for host, service, first, last, n, host_levels, linked in result.rows:
        for level, count in host_levels.items():
            levels[level] = levels.get(level, 0) + int(count)
        services.add(service)
        others.update(linked)
        errors = int(host_levels.get("error", 0)) + int(host_levels.get("fatal", 0))
        pairs.append((int(first), host, service, int(last), int(n), errors))
    seen = last_seen(store, tenant, sorted({p[1] for p in pairs}))
    now = now_ns() if now is None else now
    gone_before = now - gone_after_s * 1_000_000_000
    pairs.sort()
    hosts = [
        {
            "host": host,
            "service": service,
            "first_ts": format_ns(first),
            "last_ts": format_ns(last),
            "lines": n,
            "errors": errors,
            "last_seen": format_ns(seen.get(host, last)),
            "gone": seen.get(host, last) < gone_before,
        }
        for first, host, service, last, n, errors in pairs
    ]
    levels = {lv: levels[lv] for lv in sorted(levels, key=_level_order) if levels[lv]}
    return {
        k.column: entity_id,
        "status": status_of(levels),
        "first_ts": format_ns(min(p[0] for p in pairs)),
        "last_ts": format_ns(max(p[3] for p in pairs)),
        "lines": sum(levels.values()),
        "levels": levels,
        "services": sorted(services),
        "hosts": hosts,
        "host_count": len({h["host"] for h in hosts}),
        "gone_hosts": len({h["host"] for h in hosts if h["gone"]}),
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
    expand: int = 0,
    expand_cap: int | None = None,
) -> dict[str, Any]:
    """Every line carrying the id, in (ts, seq) order, `limit` at a time after `cursor`.

    `services`, `hosts`, `levels` narrow the trail (each: any of the given values). `expand` (1 or
    2) adds the lines that carry no such id but share a trace_id or request_id with its lines
    (flightlog.query.correlate). Raises Refusal(404) when the id is unknown to the tenant.
    """
    k = kind_of(kind)
    if expand:
        return correlate.expanded_trail(
            store, tenant, k, entity_id, limit=limit, cursor=cursor, services=services, hosts=hosts,
            levels=levels, hops=expand, cap=expand_cap or correlate.EXPAND_DEFAULT_CAP,
        )
    where, params = _trail_where(tenant, k, entity_id, limit, cursor, services, hosts, levels)
    result = store.query(
        f"SELECT {LINE_COLUMNS} FROM trail_lines WHERE {where} ORDER BY ts, seq LIMIT {{limit:UInt32}}",
        params,
    )
    if not result.rows and cursor is None and not exists(store, tenant, kind, entity_id):
        raise _not_found(k, entity_id)
    lines, next_cursor = page(result.rows, limit)
    return {k.column: entity_id, "lines": lines, "next_cursor": next_cursor}


def _trail_where(
    tenant: str,
    k: Kind,
    entity_id: str,
    limit: int,
    cursor: Cursor | None,
    services: Sequence[str],
    hosts: Sequence[str],
    levels: Sequence[str],
) -> tuple[str, dict[str, Any]]:
    """The WHERE of a page of trail_lines (fetching limit+1 rows), and its parameters."""
    params: dict[str, Any] = {"tenant": tenant, "kind": k.name, "id": entity_id, "limit": limit + 1}
    where = "tenant = {tenant:String} AND kind = {kind:String} AND id = {id:String}"
    where += line_filters(params, services, hosts, levels)
    where += cursor_condition(cursor, params)
    return where, params


# The API's line object, written by the engine: a 1,000-line trail then costs Python one join
# instead of parsing and re-serialising every line (the hot path of /api/v1/builds/{id}/trail).
_LINE_JSON = (
    "concat(formatDateTime(t, '%Y-%m-%dT%H:%i:%S'), '.', leftPad(toString(toUnixTimestamp64Nano(t) % 1000000000), 9, '0'), "
    "'Z') AS ts, service, host, level, message, build_id, deploy_id, trace_id, span_id, request_id, attrs, "
    "concat(toString(toUnixTimestamp64Nano(t)), '-', toString(s)) AS ref"
)
_JSON_SETTINGS = {"output_format_json_escape_forward_slashes": 0, "output_format_json_quote_64bit_integers": 0}


def trail_json(
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
) -> bytes:
    """`trail(...)` (not expanded) as the JSON body the API sends, serialised by the engine."""
    k = kind_of(kind)
    where, params = _trail_where(tenant, k, entity_id, limit, cursor, services, hosts, levels)
    body = b"".join(
        store.query_stream(
            f"SELECT {_LINE_JSON} FROM (SELECT ts AS t, seq AS s, service, host, level, message, build_id, "
            f"deploy_id, trace_id, span_id, request_id, attrs FROM trail_lines WHERE {where} "
            f"ORDER BY ts, seq LIMIT {{limit:UInt32}}) ORDER BY t, s",
            params,
            _JSON_SETTINGS,
            fmt="JSONEachRow",
        )
    )
    rows = body.split(b"\n")
    if rows and not rows[-1]:
        rows.pop()
    if not rows and cursor is None and not exists(store, tenant, kind, entity_id):
        raise _not_found(k, entity_id)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        ts_ns, seq = orjson.loads(rows[-1])["ref"].split("-")
        next_cursor = Cursor(int(ts_ns), int(seq)).encode()
    head = orjson.dumps({k.column: entity_id})[:-1]
    return head + b',"lines":[' + b",".join(rows) + b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"


@dataclass(frozen=True)
class ListCursor:
    """Where a page of the list ended: (last_ns, id) of its last item; opaque to clients."""

    last_ns: int
    id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(orjson.dumps([self.last_ns, self.id])).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> ListCursor:
        try:
            last_ns, entity_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not isinstance(last_ns, int) or not isinstance(entity_id, str):
                raise ValueError
            return cls(last_ns, entity_id)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise bad_cursor() from None


