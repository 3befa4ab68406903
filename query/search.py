"""Search: the user's query string → filters and terms → parameterised SQL → newest lines first.

The language (foundation): whitespace-separated parts, all ANDed.

    service:api  level:error  host:web-1  build_id:b1  deploy_id:d1  trace_id:t  span_id:s  request_id:r
    timeout                 a bare word, matched as a token of the message, any case
    "connection refused"    a quoted phrase, matched as consecutive tokens of the message, any case
    host:"web 1"            a field value may be quoted

Inside quotes, `\\"` is a quote and `\\\\` a backslash. Errors carry the 1-based position of the
offending character. The parser (`parse_query`) is separate from the SQL (`where_sql`) so the
language can grow without touching how it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flightlog.query.lines import LEVELS, LINE_COLUMNS, Cursor, cursor_condition, page
from flightlog.query.timefmt import TimeFormatError, format_ns, now_ns, parse_time
from flightlog.schema.store import Store
from flightlog.web.errors import ApiError

FIELDS = ("service", "host", "level", "build_id", "deploy_id", "trace_id", "span_id", "request_id")
# Filters on these find a handful of lines anywhere in time (bloom-indexed ids), so a query
# holding one and no `from` searches all retained time instead of the last day.
ID_FIELDS = frozenset({"build_id", "deploy_id", "trace_id", "span_id", "request_id"})
DEFAULT_WINDOW = "24h"
SEARCH_DEFAULT_LIMIT = 200
SEARCH_MAX_LIMIT = 10_000

_TOKEN = re.compile(r"[A-Za-z0-9]+")  # ClickHouse's token characters: ASCII letters and digits
_FIELD_PREFIX = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*):")


class QuerySyntaxError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class Filter:
    field: str
    value: str
    position: int


@dataclass(frozen=True)
class Term:
    """Text the message must contain: one token, or a phrase of consecutive tokens."""

    text: str
    position: int
    quoted: bool = False


@dataclass
class ParsedQuery:
    filters: list[Filter] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)

    def has_id_filter(self) -> bool:
        return any(f.field in ID_FIELDS for f in self.filters)


def parse_query(q: str) -> ParsedQuery:
    """Parse the query string; raises QuerySyntaxError (with a 1-based position) when malformed."""
    parsed = ParsedQuery()
    i, n = 0, len(q)
    while i < n:
        if q[i].isspace():
            i += 1
            continue
        start = i
        prefix = _FIELD_PREFIX.match(q, i)
        if prefix:
            name = prefix.group(1)
            if name not in FIELDS:
                raise QuerySyntaxError(
                    f"unknown field {name!r} (known: {', '.join(FIELDS)}; quote the text to search for it)",
                    start + 1,
                )
            i = prefix.end()
            if i >= n or q[i].isspace():
                raise QuerySyntaxError(f"empty value for {name}:", i + 1)
            if q[i] == '"':
                value, i = _quoted(q, i)
            else:
                value, i = _bare(q, i)
            if value == "":
                raise QuerySyntaxError(f"empty value for {name}:", prefix.end() + 1)
            if name == "level" and value.lower() not in LEVELS:
                raise QuerySyntaxError(f"level {value!r} is not one of {', '.join(LEVELS)}", prefix.end() + 1)
            parsed.filters.append(Filter(name, value.lower() if name == "level" else value, start + 1))
        elif q[i] == '"':
            value, i = _quoted(q, i)
            if value.strip():
                parsed.terms.append(Term(value, start + 1, quoted=True))
        else:
            value, i = _bare(q, i)
            parsed.terms.append(Term(value, start + 1))
    return parsed


def _bare(q: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(q) and not q[i].isspace():
        if q[i] == '"':
            raise QuerySyntaxError("a quote inside a word; put a space before the quote or quote the whole word", i + 1)
        i += 1
    return q[start:i], i


def _quoted(q: str, i: int) -> tuple[str, int]:
    opening = i
    i += 1
    out: list[str] = []
    while i < len(q):
        ch = q[i]
        if ch == "\\" and i + 1 < len(q) and q[i + 1] in '"\\':
            out.append(q[i + 1])
            i += 2
            continue
        if ch == '"':
            i += 1
            if i < len(q) and not q[i].isspace():
                raise QuerySyntaxError("text right after a closing quote; separate terms with a space", i + 1)
            return "".join(out), i
        out.append(ch)
        i += 1
    raise QuerySyntaxError("unclosed quote", opening + 1)


def _ascii_lower(text: str) -> str:
    # ClickHouse's lower() folds ASCII only; fold the needle the same way so they meet.
    return "".join(c.lower() if c.isascii() else c for c in text)


def where_sql(parsed: ParsedQuery, params: dict[str, Any]) -> str:
    """SQL conditions (each starting with ` AND `) for the parsed query; values go into params."""
    sql = []
    for i, f in enumerate(parsed.filters):
        params[f"f{i}"] = f.value
        sql.append(f" AND {f.field} = {{f{i}:String}}")
    for i, term in enumerate(parsed.terms):
        sql.append(_term_sql(term, f"t{i}", params))
    return "".join(sql)


def _term_sql(term: Term, name: str, params: dict[str, Any]) -> str:
    text = term.text
    tokens = _TOKEN.findall(text)
    if _TOKEN.fullmatch(text):
        params[name] = _ascii_lower(text)
        return f" AND hasToken(lower(message), {{{name}:String}})"
    # A phrase: every token in it is a whole token of the message (lets the token index skip
    # granules), and the phrase occurs with token boundaries at its ends.
    conditions = []
    for j, token in enumerate(dict.fromkeys(_ascii_lower(t) for t in tokens)):
        params[f"{name}_{j}"] = token
        conditions.append(f"hasToken(lower(message), {{{name}_{j}:String}})")
    params[name] = text
    left = "'(^|[^a-zA-Z0-9])'" if _TOKEN.match(text[0]) else "''"
    right = "'($|[^a-zA-Z0-9])'" if _TOKEN.match(text[-1]) else "''"
    conditions.append(f"match(message, concat('(?i)', {left}, regexpQuoteMeta({{{name}:String}}), {right}))")
    return " AND " + " AND ".join(conditions)


def resolve_window(
    parsed: ParsedQuery, from_text: str | None, to_text: str | None, now: int | None = None
) -> tuple[int | None, int]:
    """(since_ns or None for all time, until_ns) from the `from`/`to` params.

    Default: the last 24 hours; with an id filter and no `from`, all retained time.
    """
    now = now_ns() if now is None else now
    try:
        until = parse_time(to_text, now) if to_text else now
    except TimeFormatError as exc:
        raise ApiError(400, f"to: {exc}") from None
    if from_text:
        try:
            since: int | None = parse_time(from_text, now)
        except TimeFormatError as exc:
            raise ApiError(400, f"from: {exc}") from None
    elif parsed.has_id_filter():
        since = None
    else:
        since = parse_time(DEFAULT_WINDOW, now)
    if since is not None and since >= until:
        raise ApiError(400, f"from: {format_ns(since)} is not before to: {format_ns(until)}")
    return since, until


def parse_or_400(q: str) -> ParsedQuery:
    try:
        return parse_query(q)
    except QuerySyntaxError as exc:
        raise ApiError(400, f"q: {exc}", position=exc.position) from None


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
    params: dict[str, Any] = {"tenant": tenant, "until": until_ns, "limit": limit + 1}
    where = "tenant = {tenant:String} AND ts < fromUnixTimestamp64Nano({until:Int64}, 'UTC')"
    if since_ns is not None:
        params["since"] = since_ns
        where += " AND ts >= fromUnixTimestamp64Nano({since:Int64}, 'UTC')"
    where += where_sql(parsed, params)
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
