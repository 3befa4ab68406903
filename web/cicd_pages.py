"""The /pipelines page: each repo/pipeline/branch with its last builds as a row of status squares."""

from __future__ import annotations

from aiohttp import web
from flightlog.query import pipelines
from flightlog.query.build_records import record_filters
from flightlog.query.slots_api import run_query
from flightlog.schema.app_state import STORE, tenant_of
from flightlog.schema.route_table import add_route
from flightlog.web.pages import _page, render


@_page
async def pipelines_page(request: web.Request) -> web.Response:
    repos = record_filters(request.query)["repos"]
    rows = await run_query(
        request, lambda: pipelines.pipelines(request.app[STORE], tenant_of(request), repos=repos)
    )
    return render(request, "pipelines.html", title="Pipelines", rows=rows, repos=repos)


def setup_cicd_pages(app: web.Application) -> None:
    add_route(app, "GET", "/pipelines", pipelines_page, scope="read")
