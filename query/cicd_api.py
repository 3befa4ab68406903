"""The JSON API of CI/CD records: a build's diff against another, a deploy's before/after.

    GET /api/v1/builds/{build_id}/diff?against=previous|last-success|<id>&limit=50
    GET /api/v1/deploys/{deploy_id}/diff?minutes=15&service=a,b&limit=50

Thin aiohttp handlers over flightlog.query.build_diff (records and the builds list are served by
the existing /api/v1/builds routes through flightlog.query.build_records).
"""

from __future__ import annotations

import orjson
from aiohttp import web
from flightlog.query import build_diff
from flightlog.query.lines import parse_limit
from flightlog.query.slots_api import run_query
from flightlog.schema.app_state import SETTINGS, STORE, tenant_of
from flightlog.schema.id_paths import ID_PATTERN, id_from_segment
from flightlog.schema.route_table import add_route


def _json(body) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _limit(request: web.Request) -> int:
    return parse_limit(request.query.get("limit"), build_diff.DIFF_DEFAULT_LIMIT, build_diff.DIFF_MAX_LIMIT)


async def build_diff_handler(request: web.Request) -> web.Response:
    against = request.query.get("against", "previous")
    limit = _limit(request)
    body = await run_query(
        request, build_diff.build_diff, request.app[STORE], tenant_of(request), id_from_segment(request.match_info["build_id"]),
        against, limit,
    )
    return _json(body)


async def deploy_diff_handler(request: web.Request) -> web.Response:
    minutes = parse_limit(request.query.get("minutes"), request.app[SETTINGS].deploy_diff_minutes,
                          build_diff.DEPLOY_MAX_MINUTES, "minutes")
    services = [s for raw in request.query.getall("service", []) for s in raw.split(",") if s]
    limit = _limit(request)
    body = await run_query(
        request,
        lambda: build_diff.deploy_diff(request.app[STORE], tenant_of(request), id_from_segment(request.match_info["deploy_id"]),
                                       minutes, services, limit),
    )
    return _json(body)


def setup_cicd_query(app: web.Application) -> None:
    add_route(app, "GET", f"/api/v1/builds/{{build_id:{ID_PATTERN}}}/diff", build_diff_handler, scope="read")
    add_route(app, "GET", f"/api/v1/deploys/{{deploy_id:{ID_PATTERN}}}/diff", deploy_diff_handler, scope="read")
