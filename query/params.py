"""Reading the query-string parameters the JSON API and the pages share, with 400s that say why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flightlog.query.correlate import parse_cap, parse_expand
from flightlog.query.lines import Cursor, parse_limit
from flightlog.query.search import SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT, ParsedQuery, parse_or_400, resolve_window
from flightlog.query.timefmt import TimeFormatError, parse_time
from flightlog.query.trails import (
    RECENT_DEFAULT_LIMIT,
    RECENT_MAX_LIMIT,
    TRAIL_DEFAULT_LIMIT,
    TRAIL_MAX_LIMIT,
    ListCursor,
)
from flightlog.schema.fields import LEVELS
from flightlog.schema.refusal import Refusal


@dataclass(frozen=True)
class TrailParams:
    limit: int
    cursor: Cursor | None
    services: tuple[str, ...]
    hosts: tuple[str, ...]
    levels: tuple[str, ...]
    expand: int = 0
    expand_cap: int | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "cursor": self.cursor,
            "services": self.services,
            "hosts": self.hosts,
            "levels": self.levels,
            "expand": self.expand,
            "expand_cap": self.expand_cap,
        }


@dataclass(frozen=True)
class ListParams:
    """Filters and position of the builds/deploys list: `from`, `to`, `service`, `status`, `cursor`."""

    cursor: ListCursor | None
    since_ns: int | None
    until_ns: int | None
    services: tuple[str, ...]
    statuses: tuple[str, ...]

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "services": self.services,
            "statuses": self.statuses,
        }


@dataclass(frozen=True)
class SearchParams:
    q: str
    parsed: ParsedQuery
    since_ns: int | None
    until_ns: int
    limit: int
    cursor: Cursor | None

    def as_kwargs(self) -> dict[str, Any]:
        return {"since_ns": self.since_ns, "until_ns": self.until_ns, "limit": self.limit, "cursor": self.cursor}


def _getall(query: Mapping[str, str], name: str) -> tuple[str, ...]:
    getall = getattr(query, "getall", None)
    values = getall(name, []) if getall else ([query[name]] if name in query else [])
    # `?service=a,b` and `?service=a&service=b` both mean "a or b"
    out: list[str] = []
    for value in values:
        out.extend(v for v in value.split(",") if v)
    return tuple(dict.fromkeys(out))


def _cursor(query: Mapping[str, str]) -> Cursor | None:
    text = query.get("cursor") or ""
    return Cursor.decode(text) if text else None


def trail_params(query: Mapping[str, str], default_limit: int = TRAIL_DEFAULT_LIMIT) -> TrailParams:
    levels = tuple(level.lower() for level in _getall(query, "level"))
    for level in levels:
        if level not in LEVELS:
            raise Refusal(400, f"level: {level!r} is not one of {', '.join(LEVELS)}")
    return TrailParams(
        limit=parse_limit(query.get("limit"), default_limit, TRAIL_MAX_LIMIT),
        cursor=_cursor(query),
        services=_getall(query, "service"),
        hosts=_getall(query, "host"),
        levels=levels,
        expand=parse_expand(query.get("expand")),
        expand_cap=parse_cap(query.get("expand_cap")) if query.get("expand_cap") else None,
    )


def list_params(query: Mapping[str, str]) -> ListParams:
    bounds: dict[str, int | None] = {}
    for name in ("from", "to"):
        text = query.get(name) or ""
        try:
            bounds[name] = parse_time(text) if text else None
        except TimeFormatError as exc:
            raise Refusal(400, f"{name}: {exc}") from None
    cursor_text = query.get("cursor") or ""
    return ListParams(
        cursor=ListCursor.decode(cursor_text) if cursor_text else None,
        since_ns=bounds["from"],
        until_ns=bounds["to"],
        services=_getall(query, "service"),
        statuses=_getall(query, "status"),
    )


def recent_limit(query: Mapping[str, str], default: int = RECENT_DEFAULT_LIMIT) -> int:
    return parse_limit(query.get("limit"), default, RECENT_MAX_LIMIT)


def search_params(query: Mapping[str, str], default_limit: int = SEARCH_DEFAULT_LIMIT) -> SearchParams:
    q = query.get("q", "")
    parsed = parse_or_400(q)
    since, until = resolve_window(parsed, query.get("from") or None, query.get("to") or None)
    return SearchParams(
        q=q,
        parsed=parsed,
        since_ns=since,
        until_ns=until,
        limit=parse_limit(query.get("limit"), default_limit, SEARCH_MAX_LIMIT),
        cursor=_cursor(query),
    )
