"""Search: the user's query string → tree → parameterised SQL → newest lines first.

The language lives in flightlog.query.querylang (its docstring is the reference): field:value,
prefixes, negation, level:>=warn, words and phrases, OR and parentheses. This module adds the
time window and runs the query; histogram, facets, tail and export reuse `ParsedQuery.where`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flightlog.query import querylang
from flightlog.query.lines import LINE_COLUMNS, Cursor, cursor_condition, page
from flightlog.query.querylang import FIELDS, ID_FIELDS, QuerySyntaxError
from flightlog.query.timefmt import TimeFormatError, format_ns, now_ns, parse_time
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

__all__ = ["FIELDS", "ID_FIELDS", "ParsedQuery", "QuerySyntaxError", "parse_query", "search"]

# The last hour, unless the query pins an id (then all retained time: see resolve_window).
DEFAULT_WINDOW = "1h"
SEARCH_DEFAULT_LIMIT = 200
SEARCH_MAX_LIMIT = 10_000


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    node: querylang.Node | None

    def has_id_filter(self) -> bool:
        return querylang.requires_id(self.node)

    def where(self, params: dict[str, Any], prefix: str = "q_") -> str:
        """The query as one SQL condition (`1` for an empty query); values go into params."""
        return querylang.to_sql(self.node, params, prefix)


def parse_query(q: str) -> ParsedQuery:
    """Parse the query string; raises QuerySyntaxError (with a 1-based position) when malformed."""
    return ParsedQuery(q, querylang.parse(q))


def resolve_window(
    parsed: ParsedQuery, from_text: str | None, to_text: str | None, now: int | None = None
) -> tuple[int | None, int]:
    """(since_ns or None for all time, until_ns) from the `from`/`to` params.

    Default: the last hour. A query every match of which carries a given id (`build_id:b1`,
    `trace_id:t OR trace_id:u`) and no `from` searches all retained time instead: ids are
    bloom-indexed and find their handful of lines anywhere, and "where is trace t" should not
    depend on guessing when it happened.
    """
    now = now_ns() if now is None else now
    try:
        until = parse_time(to_text, now) if to_text else now
    except TimeFormatError as exc:
        raise Refusal(400, f"to: {exc}") from None
    if from_text:
        try:
            since: int | None = parse_time(from_text, now)
        except TimeFormatError as exc:
            raise Refusal(400, f"from: {exc}") from None
    elif parsed.has_id_filter():
        since = None
    else:
        since = parse_time(DEFAULT_WINDOW, now)
    if since is not None and since >= until:
        raise Refusal(400, f"from: {format_ns(since)} is not before to: {format_ns(until)}")
    return since, until


def parse_or_400(q: str) -> ParsedQuery:
    try:
        return parse_query(q)
    except QuerySyntaxError as exc:
        raise Refusal(400, f"q: {exc}", position=exc.position) from None


def match_condition(
    tenant: str, parsed: ParsedQuery, since_ns: int | None, until_ns: int, params: dict[str, Any]
) -> str:
    """The WHERE condition for "this tenant's lines in [since, until) matching the query"."""
    params["tenant"] = tenant
    params["until"] = until_ns
    where = "tenant = {tenant:String} AND ts < fromUnixTimestamp64Nano({until:Int64}, 'UTC')"
    if since_ns is not None:
        params["since"] = since_ns
        where += " AND ts >= fromUnixTimestamp64Nano({since:Int64}, 'UTC')"
    if parsed.node is not None:
        where += " AND " + parsed.where(params)
    return where


def search(
    store: Store,
    tenant: str,
    parsed: ParsedQuery,
    *,
    since_ns: int | None,
    until_ns: int,
    limit: int = SEARCH_DEFAULT_LIMIT,
    cursor: Cursor | None = None,
) -> dict[str, Any]:
    """Lines matching the parsed query in [since, until), newest first, `limit` at a time."""
    params: dict[str, Any] = {"limit": limit + 1}
    where = match_condition(tenant, parsed, since_ns, until_ns, params)
    where += cursor_condition(cursor, params, descending=True)
    result = store.query(
        f"SELECT {LINE_COLUMNS} FROM logs WHERE {where} ORDER BY ts DESC, seq DESC LIMIT {{limit:UInt32}}",
        params,
    )
    lines, next_cursor = page(result.rows, limit)
    return {
        "lines": lines,
        "next_cursor": next_cursor,
        "from": format_ns(since_ns) if since_ns is not None else None,
        "to": format_ns(until_ns),
    }
