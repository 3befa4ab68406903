"""Pages for search (histogram + facets + lines), live tail and the SQL console.

They call the same functions as the JSON API (flightlog.query.search_api). Everything works
without JavaScript except the live part of /tail, which is a static file (static/tail.js) —
with JavaScript off, /tail shows the latest lines and a reload link. The SQL console is a POST
form (long statements do not fit a URL) carrying the session's CSRF token when there is one.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from flightlog.query import facets, histogram, search, search_api, sql_console
from flightlog.query.params import search_params
from flightlog.query.search_api import window_params
from flightlog.query.slots_api import run_query
from flightlog.schema.app_state import SETTINGS, STORE, tenant_of
from flightlog.schema.fields import LEVELS
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route
from flightlog.web.pages import _page, render, url_with, with_cursor

SEARCH_PAGE_LINES = 500
TAIL_PAGE_LINES = 200
FACET_FIELDS = ("level", "service", "host")
HISTOGRAM_BUCKETS = 60
CHART_W, CHART_H, CHART_PAD = 960, 120, 18
SQL_EXAMPLES = (
    ("Errors per service, last hour", "SELECT service, count() AS errors\nFROM logs\n"
     "WHERE level IN ('error', 'fatal') AND ts > now() - INTERVAL 1 HOUR\nGROUP BY service\nORDER BY errors DESC"),
    ("Lines per minute by level", "SELECT toStartOfMinute(ts) AS minute, level, count() AS n\nFROM logs\n"
     "WHERE ts > now() - INTERVAL 30 MINUTE\nGROUP BY minute, level\nORDER BY minute, level"),
    ("Noisiest hosts today", "SELECT host, count() AS n\nFROM logs\nWHERE ts >= today()\n"
     "GROUP BY host\nORDER BY n DESC\nLIMIT 20"),
    ("Slowest builds", "SELECT build_id, min(ts) AS first, max(ts) AS last,\n"
     "       dateDiff('second', min(ts), max(ts)) AS seconds\nFROM logs\nWHERE build_id != ''\n"
     "GROUP BY build_id\nORDER BY seconds DESC\nLIMIT 20"),
    ("Top HTTP status attributes", "SELECT attrs['http.status'] AS status, count() AS n\nFROM logs\n"
     "WHERE mapContains(attrs, 'http.status')\nGROUP BY status\nORDER BY n DESC"),
)  # fmt: skip


def chart(hist: dict[str, Any]) -> dict[str, Any]:
    """The histogram as SVG geometry: stacked bars per bucket, most severe level on top."""
    buckets = hist["buckets"]
    n = max(len(buckets), 1)
    width = CHART_W / n
    peak = max(hist["max"], 1)
    bars = []
    for i, bucket in enumerate(buckets):
        y = CHART_H
        for level in hist["levels"]:
            count = bucket["counts"].get(level, 0)
            if not count:
                continue
            height = max(1.0, count / peak * (CHART_H - 2))
            y -= height
            bars.append(
                {
                    "x": round(i * width + 0.5, 2),
                    "y": round(y, 2),
                    "w": round(max(width - 1, 0.5), 2),
                    "h": round(height, 2),
                    "level": level if level in LEVELS else "other",
                    "title": f"{bucket['ts'][:19].replace('T', ' ')} · {count:,} {level}",
                }
            )
    ticks = []
    every = max(1, n // 6)
    for i in range(0, n, every):
        ticks.append({"x": round(i * width, 2), "label": buckets[i]["ts"][11:16] if buckets else ""})
    return {"bars": bars, "ticks": ticks, "w": CHART_W, "h": CHART_H, "pad": CHART_PAD, "peak": hist["max"]}


def _with_term(q: str, term: str) -> str:
    return f"{q} {term}".strip() if term not in q.split() else q


def _quote_value(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./@" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@_page
async def search_page(request: web.Request) -> web.Response:
    q = request.query.get("q", "")
    context: dict[str, Any] = {
        "title": "Search",
        "q": q,
        "from_text": request.query.get("from", ""),
        "to_text": request.query.get("to", ""),
        "lines": [],
        "next_url": None,
        "first_url": None,
        "error": None,
        "position": None,
        "window": None,
        "chart": None,
        "facets": [],
        "export_urls": {},
    }
    try:
        params = search_params(request.query, default_limit=SEARCH_PAGE_LINES)
    except Refusal as exc:
        context["error"] = exc.message
        context["position"] = exc.details.get("position")
        return render(request, "search.html", status=exc.status, **context)
    store, tenant = request.app[STORE], tenant_of(request)
    window = {"since_ns": params.since_ns, "until_ns": params.until_ns}

    def facet(field: str):
        return lambda: facets.facets(store, tenant, params.parsed, field, **window, limit=8)

    result, hist, *facet_results = await asyncio.gather(
        run_query(request, lambda: search.search(store, tenant, params.parsed, **params.as_kwargs())),
        run_query(
            request,
            lambda: histogram.histogram(store, tenant, params.parsed, **window, buckets=HISTOGRAM_BUCKETS),
        ),
        *(run_query(request, facet(field)) for field in FACET_FIELDS),
    )
    context["lines"] = result["lines"]
    context["window"] = (result["from"], result["to"])
    context["chart"] = chart(hist)
    context["hist"] = hist
    for body in facet_results:
        field = body["field"]
        values = []
        for item in body["values"]:
            term = f"{field}:{_quote_value(item['value'])}" if item["value"] else f"-{field}:*"
            values.append(
                {
                    "value": item["value"],
                    "count": item["count"],
                    "include": url_with(request, q=_with_term(q, term)),
                    "exclude": url_with(request, q=_with_term(q, "-" + term if item["value"] else f"{field}:*")),
                }
            )
        context["facets"].append({"field": field, "entries": values, "total": body["total"], "other": body["other"]})
    if result["next_cursor"]:
        context["next_url"] = with_cursor(url_with(request), result["next_cursor"])
    if params.cursor:
        context["first_url"] = url_with(request)
    base = [(k, v) for k, v in request.query.items() if k in ("q", "from", "to") and v]
    context["export_urls"] = {fmt: "/api/v1/search?" + urlencode([*base, ("format", fmt)]) for fmt in ("ndjson", "csv")}
    return render(request, "search.html", **context)


@_page
async def tail_page(request: web.Request) -> web.Response:
    q = request.query.get("q", "")
    context: dict[str, Any] = {"title": "Live tail", "q": q, "error": None, "position": None, "lines": []}
    try:
        parsed, since, until = window_params({"q": q, "from": "15m"})
    except Refusal as exc:
        context["error"] = exc.message
        context["position"] = exc.details.get("position")
        return render(request, "tail.html", status=exc.status, **context)
    store, tenant = request.app[STORE], tenant_of(request)
    result = await run_query(
        request, lambda: search.search(store, tenant, parsed, since_ns=since, until_ns=until, limit=TAIL_PAGE_LINES)
    )
    context["lines"] = list(reversed(result["lines"]))  # oldest first, like a terminal
    context["stream_url"] = "/api/v1/tail?" + urlencode({"q": q})
    return render(request, "tail.html", **context)


async def _sql_form(request: web.Request) -> dict[str, str]:
    if request.method == "POST":
        form = await request.post()
        return {k: str(v) for k, v in form.items()}
    return {k: v for k, v in request.query.items()}


@_page
async def sql_page(request: web.Request) -> web.StreamResponse:
    form = await _sql_form(request)
    sql = form.get("sql", "")
    fmt = form.get("format", "html")
    context: dict[str, Any] = {
        "title": "SQL",
        "sql": sql or SQL_EXAMPLES[0][1],
        "examples": [
            {"title": title, "sql": text, "url": "/sql?" + urlencode({"sql": text})} for title, text in SQL_EXAMPLES
        ],
        "result": None,
        "error": None,
        "limits": {
            "rows": sql_console.MAX_ROWS,
            "seconds": sql_console.MAX_EXECUTION_SECONDS,
        },
        "tables": sorted(sql_console.TENANT_TABLES),
    }
    if request.method != "POST" or not sql.strip():
        return render(request, "sql.html", **context)
    if fmt not in ("html", "csv", "ndjson"):
        raise Refusal(400, f"format: {fmt!r} is not one of html, csv, ndjson")
    store, tenant = request.app[STORE], tenant_of(request)
    try:
        result = await run_query(
            request, sql_console.run_audited, store, tenant, search_api.who(request), sql,
            sql_console.memory_limit(request.app[SETTINGS]),
        )
    except Refusal as exc:
        context["error"] = exc.message
        response = render(request, "sql.html", status=exc.status, **context)
        response.headers.update(exc.headers())
        return response
    if fmt != "html":
        return search_api.download(result, fmt)
    context["result"] = result
    return render(request, "sql.html", **context)


def setup_search_pages(app: web.Application) -> None:
    add_route(app, "GET", "/search", search_page, scope="read")
    add_route(app, "GET", "/tail", tail_page, scope="read")
    add_route(app, "GET", "/sql", sql_page, scope="read")
    add_route(app, "POST", "/sql", sql_page, scope="read")
