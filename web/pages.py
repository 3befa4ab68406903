"""Server-rendered pages over the same query functions as the JSON API.

Jinja2 with autoescape on; every page extends base.html, fragments are `_name.html`. No inline
scripts or styles (the CSP of flightlog.web.security_headers forbids them); everything works with
JavaScript off: filters and pagination are plain links, search is a GET form.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from flightlog.query import build_diff, build_records, context, hosts, kinds, timeline, trails
from flightlog.query.context import parse_ref
from flightlog.query.lines import Cursor
from flightlog.query.params import list_params, trail_params
from flightlog.query.search import FIELDS
from flightlog.query.slots_api import run_query
from flightlog.query.timefmt import format_ns, parse_ns
from flightlog.schema.app_state import SETTINGS, STORE, tenant_of
from flightlog.schema.id_paths import ID_PATTERN, id_from_segment, id_segment
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route, add_static

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
TRAIL_PAGE_LINES = 5000
RECENT_ON_INDEX = 50


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["clock"] = clock
    env.filters["when"] = when
    env.filters["duration"] = duration
    env.filters["duration_s"] = lambda seconds: duration("1970-01-01T00:00:00Z", format_ns(int(seconds) * 10**9))
    env.filters["pathpart"] = id_segment
    env.globals["search_fields"] = FIELDS
    return env


def clock(ts: str) -> str:
    """`2026-11-28T12:00:00.123456789Z` → `12:00:00.123456789` (the date is in the page header)."""
    return ts[11:-1] if len(ts) > 20 else ts


def when(ts: str) -> str:
    """`2026-11-28T12:00:00.123456789Z` → `2026-11-28 12:00:00`."""
    return ts[:19].replace("T", " ") if len(ts) >= 19 else ts


def duration(first_ts: str, last_ts: str) -> str:
    """How long from one RFC 3339 time to another, in the unit a person would say."""
    seconds = (parse_ns(last_ts) - parse_ns(first_ts)) / 1e9
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = environment().get_template(template).render(request_path=request.path, **context)
    return web.Response(text=html, status=status, content_type="text/html")


def render_error(request: web.Request, status: int, message: str) -> web.Response:
    """The HTML error page (the error middleware calls this for browsers)."""
    return render(request, "error.html", status=status, status_code=status, message=message)


def _page(handler):
    """Errors on a page are pages, whatever the Accept header says."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except Refusal as exc:
            response = render_error(request, exc.status, exc.message)
            response.headers.update(exc.headers())
            return response

    return wrapped


def url_with(request: web.Request, **changes: str | None) -> str:
    """This page's URL with some query parameters changed (None removes); the cursor always resets."""
    params = [(k, v) for k, v in request.query.items() if k not in changes and k != "cursor"]
    params += [(k, v) for k, v in changes.items() if v is not None]
    path = request.raw_path.split("?", 1)[0]
    return path + ("?" + urlencode(params) if params else "")


def url_without_value(request: web.Request, name: str, value: str) -> str:
    """This page's URL with one value of a (comma-separated, repeatable) filter taken out."""
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v and v != value]
    return url_with(request, **{name: ",".join(values) or None, "at": None})


def with_cursor(url: str, cursor: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({"cursor": cursor})


@_page
async def index_page(request: web.Request) -> web.Response:
    store, tenant = request.app[STORE], tenant_of(request)
    # ?repo=&branch=&pipeline=&status= narrow the builds (the links of /pipelines use them)
    filters = {**build_records.record_filters(request.query), "statuses": list_params(request.query).statuses}

    def load():
        return (
            build_records.listing(store, tenant, "build", RECENT_ON_INDEX, **filters)["items"],
            build_records.listing(store, tenant, "deploy", RECENT_ON_INDEX)["items"],
        )

    builds, deploys = await run_query(request, load)
    return render(request, "index.html", builds=builds, deploys=deploys, kinds=kinds.KINDS, title="Builds & deploys")


def _at_cursor(ref: str) -> Cursor:
    """The cursor whose page starts at the line `ref` (a cursor means "strictly after")."""
    ts_ns, seq = parse_ref(ref)
    return Cursor(ts_ns, seq - 1) if seq > 0 else Cursor(ts_ns - 1, 2**64 - 1)


def line_url(kind: str, entity_id: str, ref: str) -> str:
    """A deep link to one line of a trail: its page, scrolled to it."""
    return f"/{kind}s/{id_segment(entity_id)}?{urlencode({'at': ref})}#L{ref}"


def _trail_page(kind: str):
    k = kinds.KINDS[kind]

    @_page
    async def handler(request: web.Request) -> web.Response:
        entity_id = id_from_segment(request.match_info["id"])
        params = trail_params(request.query, default_limit=TRAIL_PAGE_LINES)
        at = request.query.get("at") or ""
        if at and params.cursor is None:
            params = replace(params, cursor=_at_cursor(at))
        store, tenant = request.app[STORE], tenant_of(request)
        gone_after = request.app[SETTINGS].host_gone_after_s

        def load():
            summary = build_records.summary(store, tenant, kind, entity_id, gone_after)
            panel = build_diff.failure_panel(store, tenant, kind, summary, request.app[SETTINGS].deploy_diff_minutes)
            if not summary["lines"]:  # CI told of it; no line carries its id (yet)
                return summary, {"lines": [], "next_cursor": None}, [], panel
            return (
                summary,
                trails.trail(store, tenant, kind, entity_id, **params.as_kwargs()),
                timeline.error_ticks(store, tenant, kind, entity_id),
                panel,
            )

        summary, trail, ticks, new_in = await run_query(request, load)
        filters = [("service", v) for v in params.services] + [("host", v) for v in params.hosts]
        filters += [("level", v) for v in params.levels]
        base_url = url_with(request, at=None)
        next_url = with_cursor(base_url, trail["next_cursor"]) if trail["next_cursor"] else None
        # the trail's own id on every line is noise, and so is the other id when there is only one
        hide_ids = {k.column} | ({k.other_column} if len(summary[k.other_key]) == 1 else set())
        path = request.raw_path.split("?", 1)[0]
        first_error = None
        if ticks:
            ref = f"{ticks[0][2]}-{ticks[0][3]}"
            on_page = any(line["ref"] == ref for line in trail["lines"])
            first_error = {"ref": ref, "host": ticks[0][0], "url": f"#L{ref}" if on_page else line_url(kind, entity_id, ref)}
        return render(
            request,
            "trail.html",
            hide_ids=hide_ids,
            title=f"{k.name} {entity_id}",
            kind=k,
            entity_id=entity_id,
            summary=summary,
            lines=trail["lines"],
            expand=trail.get("expand"),
            expand_url=url_with(request, at=None, expand=None if params.expand else "1"),
            timeline=timeline.layout(
                summary, ticks, lambda host: url_with(request, at=None, host=host), params.hosts
            ),
            first_error=first_error,
            new_in=new_in,
            line_url=line_url,
            gone_after_s=gone_after,
            filters=[(name, value, url_without_value(request, name, value)) for name, value in filters],
            filter_url=lambda name, value: url_with(request, at=None, **{name: value}),
            clear_url=path,
            first_url=url_with(request, at=None) if params.cursor else None,
            next_url=next_url,
            params=params,
            api_url=f"/api/v1/{k.name}s/{id_segment(entity_id)}/trail"
            + (f"?{request.query_string}" if request.query_string else ""),
        )

    return handler


@_page
async def context_page(request: web.Request) -> web.Response:
    ref = request.query.get("ref") or ""
    before = context.parse_count(request.query.get("before"), "before")
    after = context.parse_count(request.query.get("after"), "after")
    body = await run_query(
        request, context.context, request.app[STORE], tenant_of(request), ref, before, after
    )
    line = body["line"]
    trails_of = [
        (name, line[k.column], line_url(name, line[k.column], line["ref"]))
        for name, k in kinds.KINDS.items()
        if line[k.column]
    ]
    return render(
        request,
        "context.html",
        title=f"Context of a line on {line['host']}",
        ctx=body,
        lines=body["before"] + [line] + body["after"],
        focus=line["ref"],
        trails_of=trails_of,
        more_before=url_with(request, before=str(min(before + 50, context.CONTEXT_MAX))),
        more_after=url_with(request, after=str(min(after + 50, context.CONTEXT_MAX))),
        api_url=f"/api/v1/context?{request.query_string}",
    )


@_page
async def hosts_page(request: web.Request) -> web.Response:
    services, gone = hosts.parse_filters(request.query)
    body = await run_query(
        request,
        lambda: hosts.hosts(
            request.app[STORE], tenant_of(request), request.app[SETTINGS].host_gone_after_s,
            services=services, gone=gone,
        ),
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for h in body["hosts"]:
        groups.setdefault(h["services"][0] if h["services"] else "", []).append(h)
    return render(
        request,
        "hosts.html",
        title="Hosts",
        groups=groups,
        total=len(body["hosts"]),
        gone_count=sum(1 for h in body["hosts"] if h["gone"]),
        gone_after_s=body["gone_after_s"],
        gone=gone,
        services=services,
        filter_url=lambda **changes: url_with(request, **changes),
    )


@_page
async def quarantine_page(request: web.Request) -> web.Response:
    from flightlog.query import quarantine

    limit = quarantine.parse_limit(request.query.get("limit"))
    body = await run_query(
        request, lambda: quarantine.quarantined(request.app[STORE], tenant_of(request), limit)
    )
    return render(request, "quarantine.html", title="Quarantine", total=body["total"], lines=body["lines"])


def setup_pages(app: web.Application) -> None:
    add_route(app, "GET", "/", index_page, scope="read")
    add_route(app, "GET", f"/builds/{{id:{ID_PATTERN}}}", _trail_page("build"), scope="read")
    add_route(app, "GET", f"/deploys/{{id:{ID_PATTERN}}}", _trail_page("deploy"), scope="read")
    add_route(app, "GET", "/context", context_page, scope="read")
    add_route(app, "GET", "/hosts", hosts_page, scope="read")
    add_route(app, "GET", "/quarantine", quarantine_page, scope="read")
    add_static(app, "/static/", STATIC, scope="public")
