"""Every route the app serves, with the key scope and memory budget it declared where it was
registered (flightlog.schema.route_table). A new route fails here until it is added to ROUTES,
so its scope is a decision someone wrote down, not a consequence of where its handler lives."""

from __future__ import annotations

from flightlog.schema.route_table import UNDECLARED, declared_routes, needs_of
from flightlog.web.server import create_app

# (method, path) → (scope, budget). HEAD routes follow their GET.
ROUTES = {
    ("GET", "/"): ("read", "small"),
    ("POST", "/_bulk"): ("ingest", "ingest"),
    ("PUT", "/_bulk"): ("ingest", "ingest"),
    ("GET", "/_license"): ("public", "small"),
    ("GET", "/alerts"): ("read", "small"),
    ("GET", "/alerts/new"): ("read", "small"),
    ("POST", "/alerts/preview"): ("read", "small"),
    ("POST", "/alerts/rules"): ("alerts", "small"),
    ("GET", "/alerts/rules/{name}"): ("read", "small"),
    ("POST", "/alerts/rules/{name}/delete"): ("alerts", "small"),
    ("POST", "/alerts/rules/{name}/silence"): ("alerts", "small"),
    ("POST", "/alerts/rules/{name}/test"): ("alerts", "small"),
    ("POST", "/alerts/silences/{id}/expire"): ("alerts", "small"),
    ("GET", "/api/v1/alerts"): ("read", "small"),
    ("POST", "/api/v1/alerts/preview"): ("read", "small"),
    ("GET", "/api/v1/alerts/rules"): ("read", "small"),
    ("POST", "/api/v1/alerts/rules"): ("alerts", "small"),
    ("GET", "/api/v1/alerts/rules/{name}"): ("read", "small"),
    ("PUT", "/api/v1/alerts/rules/{name}"): ("alerts", "small"),
    ("DELETE", "/api/v1/alerts/rules/{name}"): ("alerts", "small"),
    ("POST", "/api/v1/alerts/rules/{name}/test"): ("alerts", "small"),
    ("GET", "/api/v1/alerts/rules/{name}/values"): ("read", "small"),
    ("GET", "/api/v1/alerts/silences"): ("read", "small"),
    ("POST", "/api/v1/alerts/silences"): ("alerts", "small"),
    ("DELETE", "/api/v1/alerts/silences/{id}"): ("alerts", "small"),
    ("GET", "/api/v1/builds"): ("read", "small"),
    ("GET", "/api/v1/builds/{build_id}"): ("read", "small"),
    ("GET", "/api/v1/builds/{build_id}/trail"): ("read", "small"),
    ("GET", "/api/v1/context"): ("read", "small"),
    ("GET", "/api/v1/deploys"): ("read", "small"),
    ("GET", "/api/v1/deploys/{deploy_id}"): ("read", "small"),
    ("GET", "/api/v1/deploys/{deploy_id}/trail"): ("read", "small"),
    ("GET", "/api/v1/facets"): ("read", "small"),
    ("GET", "/api/v1/histogram"): ("read", "small"),
    ("GET", "/api/v1/hosts"): ("read", "small"),
    ("GET", "/api/v1/quarantine"): ("read", "small"),
    ("POST", "/api/v1/logs"): ("ingest", "ingest"),
    ("GET", "/api/v1/search"): ("read", "small"),
    ("POST", "/api/v1/sql"): ("read", "small"),
    ("GET", "/api/v1/sql/audit"): ("read", "small"),
    ("GET", "/api/v1/tail"): ("read", "small"),
    ("GET", "/builds/{id}"): ("read", "small"),
    ("GET", "/context"): ("read", "small"),
    ("GET", "/deploys/{id}"): ("read", "small"),
    ("GET", "/es"): ("public", "small"),
    ("GET", "/es/"): ("public", "small"),
    ("POST", "/es/_bulk"): ("ingest", "ingest"),
    ("PUT", "/es/_bulk"): ("ingest", "ingest"),
    ("GET", "/es/_license"): ("public", "small"),
    ("POST", "/es/{index}/_bulk"): ("ingest", "ingest"),
    ("PUT", "/es/{index}/_bulk"): ("ingest", "ingest"),
    ("GET", "/healthz"): ("public", "small"),
    ("GET", "/hosts"): ("read", "small"),
    ("GET", "/quarantine"): ("read", "small"),
    ("GET", "/login"): ("public", "small"),
    ("POST", "/login"): ("public", "small"),
    ("POST", "/logout"): ("read", "small"),
    ("POST", "/loki/api/v1/push"): ("ingest", "ingest"),
    ("GET", "/loki/api/v1/ready"): ("public", "small"),
    ("GET", "/metrics"): ("read", "small"),
    ("GET", "/ready"): ("public", "small"),
    ("GET", "/readyz"): ("public", "small"),
    ("GET", "/search"): ("read", "small"),
    ("GET", "/sql"): ("read", "small"),
    ("POST", "/sql"): ("read", "small"),
    ("GET", "/static"): ("public", "small"),
    ("GET", "/tail"): ("read", "small"),
    ("POST", "/v1/logs"): ("ingest", "ingest"),
    ("POST", "/{index}/_bulk"): ("ingest", "ingest"),
    ("PUT", "/{index}/_bulk"): ("ingest", "ingest"),
    # CI/CD (issue 14): webhooks prove themselves with their own signature, so no key
    ("POST", "/hooks/github"): ("public", "small"),
    ("POST", "/hooks/gitlab"): ("public", "small"),
    ("POST", "/api/v1/builds/{build_id}/events"): ("ingest", "ingest"),
    ("POST", "/api/v1/deploys/{deploy_id}/events"): ("ingest", "ingest"),
    ("GET", "/api/v1/builds/{build_id}/diff"): ("read", "small"),
    ("GET", "/api/v1/deploys/{deploy_id}/diff"): ("read", "small"),
    ("GET", "/pipelines"): ("read", "small"),
}


def test_every_route_declares_the_scope_and_budget_listed_here(settings):
    app = create_app(settings)
    routes = declared_routes(app)
    undeclared = sorted(f"{m} {p}" for (m, p), needs in routes.items() if needs is None)
    assert undeclared == [], f"routes registered without a scope (use schema.route_table.add_route): {undeclared}"
    served = {key: (needs.scope, needs.budget) for key, needs in routes.items() if key[0] != "HEAD"}
    assert served == ROUTES


def test_a_head_request_needs_what_its_get_needs(settings):
    routes = declared_routes(create_app(settings))
    for (method, path), needs in routes.items():
        if method == "HEAD":
            assert needs == routes[("GET", path)], path


def test_only_ingest_routes_take_the_ingest_budget():
    assert {budget for scope, budget in ROUTES.values() if scope != "ingest"} == {"small"}
    assert {budget for scope, budget in ROUTES.values() if scope == "ingest"} == {"ingest"}


async def test_auth_reads_the_table_not_the_handler_module(aiohttp_client, secure_settings, store, make_key):
    """A route whose handler lives in an ingest module but declares  needs a read key."""
    from flightlog.ingest import routes as ingest_routes
    from flightlog.schema.route_table import add_route

    app = create_app(secure_settings, store=store)
    add_route(app, "POST", "/api/v1/echo", ingest_routes.post_logs, scope="read")
    client = await aiohttp_client(app)
    ingest_key = make_key("alpha", "ingest")
    resp = await client.post("/api/v1/echo", data=b"{}", headers={"Authorization": f"Bearer {ingest_key}"})
    assert resp.status == 403, await resp.text()


def test_a_path_no_route_matches_needs_a_read_key():
    class Unmatched:
        class match_info:  # noqa: N801 - mimics aiohttp's attribute
            route = object()

        app: dict = {}

    assert needs_of(Unmatched()) == UNDECLARED
    assert UNDECLARED.scope == "read"
