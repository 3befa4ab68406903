"""Transitive expansion of a trail through trace and request ids.

`expand=1` adds to a build's (or deploy's) trail the lines that carry no such id but share a
trace_id or request_id with its lines — the webhook handler that received the push, the migration
a deploy ran. `expand=2` follows the trace and request ids of those added lines once more. At most
`cap` ids are followed in all, earliest first, so a page always costs a bounded number of index
reads; the answer says when the cap cut the expansion short. Every added line carries
`"via": "trace_id=…"` (or `request_id=…`): the id that brought it in, and the hop it came at.

Reads are primary-key reads: trail_lines for the trail's own lines and ids, id_lines (narrow rows
of trace and request ids) for the hops, then the page's added lines from logs by position
(tenant, time range, service, host, seq). The ids followed are chosen the same way on every page, so the cursor pages through one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flightlog.query.kinds import Kind, _not_found, exists, line_filters
from flightlog.query.lines import LINE_COLUMNS, Cursor, cursor_condition, page
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

EXPAND_DEFAULT_CAP = 200
EXPAND_MAX_CAP = 5000
EXPAND_MAX_HOPS = 2
FOLLOWED = ("trace", "request")  # the trail_lines kinds an expansion follows

# the (kind, id) pairs a row carries: a trail_lines row its trace and request ids; an id_lines row
# its own id and its other one (a trace row's request id, a request row's trace id)
_TRAIL_PAIRS = "arrayJoin([('trace', trace_id), ('request', request_id)])"
_ID_PAIRS = "arrayJoin([(kind, id), (if(kind = 'trace', 'request', 'trace'), other_id)])"


def parse_expand(value: str | None) -> int:
    if value in (None, "", "0"):
        return 0
    if value not in {str(n) for n in range(1, EXPAND_MAX_HOPS + 1)}:
        raise Refusal(400, f"expand: {value!r} is not 0, 1 or 2 (how many hops through trace and request ids)")
    return int(value)


def parse_cap(value: str | None) -> int:
    if value in (None, ""):
        return EXPAND_DEFAULT_CAP
    try:
        cap = int(value)
    except ValueError:
        raise Refusal(400, f"expand_cap: {value!r} is not a whole number") from None
    if not 1 <= cap <= EXPAND_MAX_CAP:
        raise Refusal(400, f"expand_cap: between 1 and {EXPAND_MAX_CAP}, got {cap}")
    return cap


def _ids_of(store: Store, table: str, pairs: str, where: str, params: dict[str, Any], exclude, room: int):
    """The (kind, id) pairs the selected rows carry, earliest first, at most room + 1 of them."""
    params = dict(params, room=room + 1, exclude=[f"{k}={v}" for k, v in exclude])
    result = store.query(
        f"SELECT p.1 AS k, p.2 AS v FROM (SELECT {pairs} AS p, ts, seq FROM {table} WHERE {where}) "
        "WHERE v != '' AND concat(k, '=', v) NOT IN {exclude:Array(String)} "
        "GROUP BY k, v ORDER BY min((ts, seq)), k, v LIMIT {room:UInt32}",
        params,
    )
    return [(k, v) for k, v in result.rows]


def _hop_where(name: str, ids: list[tuple[str, str]], params: dict[str, Any], k: Kind) -> str:
    """id_lines rows of the followed ids whose line carries no id of the trail's kind."""
    for kind in FOLLOWED:
        params[f"{name}_{kind}"] = [v for kk, v in ids if kk == kind]
    ors = " OR ".join(f"(kind = '{kind}' AND id IN {{{name}_{kind}:Array(String)}})" for kind in FOLLOWED)
    return f"tenant = {{tenant:String}} AND ({ors}) AND {k.column} = ''"


def followed_ids(store: Store, tenant: str, k: Kind, entity_id: str, hops: int, cap: int):
    """[(hop, [(kind, id), …]), …] and whether the cap stopped the expansion."""
    params: dict[str, Any] = {"tenant": tenant, "kind": k.name, "id": entity_id}
    table, pairs = "trail_lines", _TRAIL_PAIRS
    where = "tenant = {tenant:String} AND kind = {kind:String} AND id = {id:String}"
    followed: list[tuple[int, list[tuple[str, str]]]] = []
    seen: list[tuple[str, str]] = []
    capped = False
    for hop in range(1, hops + 1):
        room = cap - len(seen)
        if room <= 0:
            capped = True
            break
        found = _ids_of(store, table, pairs, where, params, seen, room)
        if len(found) > room:
            capped = True
            found = found[:room]
        if not found:
            break
        followed.append((hop, found))
        seen += found
        params = {"tenant": tenant}
        table, pairs = "id_lines", _ID_PAIRS
        where = _hop_where(f"h{hop}", found, params, k)
    return followed, capped


def _full_lines(store: Store, tenant: str, spots: list[list[Any]]) -> dict[tuple[int, int], list[Any]]:
    """The logs rows at the given (ts_ns, seq, service, host, …) positions, by (ts_ns, seq)."""
    if not spots:
        return {}
    params = {
        "tenant": tenant,
        "lo": min(int(s[0]) for s in spots),
        "hi": max(int(s[0]) for s in spots),
        "services": sorted({s[2] for s in spots}),
        "hosts": sorted({s[3] for s in spots}),
        "seqs": sorted({int(s[1]) for s in spots}),
    }
    result = store.query(
        f"SELECT {LINE_COLUMNS} FROM logs WHERE tenant = {{tenant:String}} "
        "AND ts >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') AND ts <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
        "AND service IN {services:Array(String)} AND host IN {hosts:Array(String)} AND seq IN {seqs:Array(UInt64)}",
        params,
    )
    return {(int(row[0]), int(row[1])): row for row in result.rows}


def expanded_trail(
    store: Store,
    tenant: str,
    k: Kind,
    entity_id: str,
    *,
    limit: int,
    cursor: Cursor | None,
    services: Sequence[str] = (),
    hosts: Sequence[str] = (),
    levels: Sequence[str] = (),
    hops: int = 1,
    cap: int = EXPAND_DEFAULT_CAP,
) -> dict[str, Any]:
    if not exists(store, tenant, k.name, entity_id):
        raise _not_found(k, entity_id)
    followed, capped = followed_ids(store, tenant, k, entity_id, hops, cap)
    params: dict[str, Any] = {"tenant": tenant, "kind": k.name, "id": entity_id, "limit": limit + 1}
    narrow = line_filters(params, services, hosts, levels) + cursor_condition(cursor, params)
    position = "toUnixTimestamp64Nano(ts) AS ts_ns, seq, service, host"
    parts = [
        f"SELECT {position}, '' AS via, 0 AS hop FROM trail_lines "
        f"WHERE tenant = {{tenant:String}} AND kind = {{kind:String}} AND id = {{id:String}}{narrow}"
    ]
    for hop, ids in followed:
        where = _hop_where(f"h{hop}", ids, params, k)
        parts.append(f"SELECT {position}, concat(kind, '_id=', id) AS via, {hop} AS hop FROM id_lines WHERE {where}{narrow}")
    # first where the page's lines are, then the lines themselves (id_lines holds no message)
    spots = store.query(
        "SELECT * FROM (" + " UNION ALL ".join(parts) + ") "
        "ORDER BY ts_ns, seq, hop, via LIMIT 1 BY ts_ns, seq LIMIT {limit:UInt32}",
        params,
    ).rows
    rows = _full_lines(store, tenant, spots)
    # a line gone from logs in between (retention) is left out rather than failing the page
    spots = [spot for spot in spots if (int(spot[0]), int(spot[1])) in rows]
    lines, next_cursor = page([rows[(int(ts_ns), int(seq))] for ts_ns, seq, *_ in spots], limit)
    for line, (_ts, _seq, _service, _host, via, hop) in zip(lines, spots):
        if hop:
            line["via"] = via
            line["hop"] = int(hop)
    return {
        k.column: entity_id,
        "lines": lines,
        "next_cursor": next_cursor,
        "expand": {
            "hops": hops,
            "cap": cap,
            "ids_followed": sum(len(ids) for _, ids in followed),
            "capped": capped,
        },
    }
