"""Every route says what it needs, where it is registered: its key scope and its memory budget.

Auth (flightlog.web.auth) reads the scope and backpressure (flightlog.ingest.backpressure) the
budget from this table, never from where a handler's code lives, so moving a handler cannot
change who may call it. A route registered around this table has no entry and is treated as
needing a read key, like a path no route matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

# "alerts": managing alert rules and silences (an alerts or admin key; flightlog.query.alerts)
Scope = Literal["public", "ingest", "read", "alerts", "admin"]
# "ingest": the body is reserved in the ingest in-flight budget and read by the handler itself;
# "small": any body is read whole by the auth middleware, within the body time limit.
Budget = Literal["ingest", "small"]
SCOPES: tuple[str, ...] = ("public", "ingest", "read", "alerts", "admin")
BUDGETS: tuple[str, ...] = ("ingest", "small")


@dataclass(frozen=True)
class RouteNeeds:
    scope: Scope
    budget: Budget = "small"


UNDECLARED = RouteNeeds("read")
ROUTE_NEEDS = web.AppKey("route_needs", dict)


def _table(app: web.Application) -> dict[web.AbstractRoute, RouteNeeds]:
    if ROUTE_NEEDS not in app:
        app[ROUTE_NEEDS] = {}
    return app[ROUTE_NEEDS]


def add_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Callable,
    *,
    scope: Scope,
    budget: Budget = "small",
    name: str | None = None,
) -> web.AbstractRoute:
    """Register `handler` for `method path` with what it needs (a GET also answers HEAD)."""
    if scope not in SCOPES or budget not in BUDGETS:
        raise ValueError(f"{method} {path}: scope must be one of {SCOPES} and budget one of {BUDGETS}")
    needs = RouteNeeds(scope, budget)
    if method == "GET":
        route = app.router.add_get(path, handler, name=name)
    else:
        route = app.router.add_route(method, path, handler, name=name)
    table = _table(app)
    for sibling in route.resource or ():
        if sibling is route or (method == "GET" and sibling.method == "HEAD" and sibling.handler is handler):
            table[sibling] = needs
    return route


def add_static(app: web.Application, prefix: str, directory: Path, *, scope: Scope = "public") -> None:
    resource = app.router.add_static(prefix, directory, append_version=False)
    table = _table(app)
    for route in resource:
        table[route] = RouteNeeds(scope)


def needs_of(request: web.Request) -> RouteNeeds:
    """What the route matched by `request` declared; UNDECLARED when none matched."""
    route = getattr(request.match_info, "route", None)
    return request.app.get(ROUTE_NEEDS, {}).get(route, UNDECLARED)


def declared_routes(app: web.Application) -> dict[tuple[str, str], RouteNeeds]:
    """(method, path) → needs for every route of the app; a route without a declaration maps to None."""
    table = app.get(ROUTE_NEEDS, {})
    listing = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        listing[(route.method, path)] = table.get(route)
    return listing
