"""Reading the query-string parameters the JSON API and the pages share, with 400s that say why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flightlog.query.lines import LEVELS, Cursor, parse_limit
from flightlog.query.search import SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT, ParsedQuery, parse_or_400, resolve_window
from flightlog.query.trails import RECENT_DEFAULT_LIMIT, RECENT_MAX_LIMIT, TRAIL_DEFAULT_LIMIT, TRAIL_MAX_LIMIT
from flightlog.web.errors import ApiError


@dataclass(frozen=True)
class TrailParams:
    limit: int
    cursor: Cursor | None
    services: tuple[str, ...]
    hosts: tuple[str, ...]
    levels: tuple[str, ...]

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "cursor": self.cursor,
            "services": self.services,
            "hosts": self.hosts,
            "levels": self.levels,
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
            raise ApiError(400, f"level: {level!r} is not one of {', '.join(LEVELS)}")
    return TrailParams(
        limit=parse_limit(query.get("limit"), default_limit, TRAIL_MAX_LIMIT),
        cursor=_cursor(query),
        services=_getall(query, "service"),
        hosts=_getall(query, "host"),
        levels=levels,
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
