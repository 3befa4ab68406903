"""The app factory: one aiohttp application serving the roles it is asked for.

`flightlog serve` runs every role in one process over one store; `flightlog ingest` and
`flightlog query` run one role each against a ClickHouse server (the scale-out path).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from flightlog.ingest.cicd.routes import setup_cicd_ingest
from flightlog.ingest.metrics import metrics_tenant
from flightlog.ingest.routes import setup_ingest
from flightlog.query.alerts.api import setup_alerts
from flightlog.query.api import setup_query_api
from flightlog.query.cicd_api import setup_cicd_query
from flightlog.query.slots_api import setup_query_slots
from flightlog.schema.app_state import BATCHER, EXTRAS, SETTINGS, STORE
from flightlog.schema.executor import run_in_store_thread
from flightlog.schema.open import open_store
from flightlog.schema.route_table import add_route
from flightlog.schema.settings import Settings
from flightlog.schema.store import Store, StoreError
from flightlog.web.alerts_pages import setup_alert_pages
from flightlog.web.auth import auth_middleware, setup_auth
from flightlog.web.cicd_pages import setup_cicd_pages
from flightlog.web.errors import error_middleware
from flightlog.web.pages import setup_pages
from flightlog.web.search_pages import setup_search_pages
from flightlog.web.security_headers import setup_security_headers

ALL_ROLES = frozenset({"ingest", "query"})


def create_app(
    settings: Settings,
    roles: Iterable[str] = ALL_ROLES,
    store: Store | None = None,
) -> web.Application:
    roles = frozenset(roles)
    unknown = roles - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; choose from {sorted(ALL_ROLES)}")
    app = FlightlogApplication(
        client_max_size=settings.max_body_bytes,
        # errors outermost, so auth's refusals render like every other error
        middlewares=[error_middleware, auth_middleware],
    )
    app[SETTINGS] = settings
    app[EXTRAS] = {"roles": roles}
    # the query slots and the store's thread pool (shut down after every cleanup context)
    setup_query_slots(app, settings)
    app.cleanup_ctx.append(_store_context(store))
    setup_auth(app, with_pages="query" in roles)  # after the store: keys may live in it
    setup_security_headers(app)
    add_route(app, "GET", "/healthz", healthz, scope="public")
    add_route(app, "GET", "/readyz", readyz, scope="public")
    if "ingest" in roles:
        setup_ingest(app)
        setup_cicd_ingest(app)
    if "query" in roles:
        setup_query_api(app)
        setup_cicd_query(app)
        setup_alerts(app)  # the rule evaluator runs where queries run
        setup_pages(app)
        setup_cicd_pages(app)
        setup_search_pages(app)  # /search, /tail, /sql
        setup_alert_pages(app)  # /alerts
    if "/metrics" not in {r.canonical for r in app.router.resources()}:
        add_route(app, "GET", "/metrics", metrics, scope="read")  # a query-only node: the alert metrics
    return app


with warnings.catch_warnings():
    # aiohttp discourages subclassing Application; overriding the one factory below is the
    # only way to stop it inflating bodies itself for every way the app can be run.
    warnings.simplefilter("ignore")

    class FlightlogApplication(web.Application):
        """An Application whose server leaves request bodies compressed.

        aiohttp accepts a truncated gzip body without a word, so ingest inflates bodies
        itself (flightlog.ingest.decompress), within its limit, and can say what was wrong.
        """

        def _make_handler(self, **kwargs):
            kwargs["auto_decompress"] = False
            settings = self.get(SETTINGS)
            if settings is not None:
                # aiohttp closes a connection whose request headers are not complete when this
                # runs out (counted from the connection's start or the last response), so a
                # client trickling headers is cut off; it is also the idle keep-alive time.
                kwargs.setdefault("keepalive_timeout", settings.header_timeout)
                # after an early answer (408, 413 …) the unread rest of a body is drained this
                # long at most before the connection is closed (aiohttp's default is 10 s)
                kwargs.setdefault("lingering_time", min(2.0, settings.body_timeout))
            return super()._make_handler(**kwargs)


def _store_context(given: Store | None):
    async def store_context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if given is not None:
            app[STORE] = given
        else:
            loop = asyncio.get_running_loop()
            app[STORE] = await loop.run_in_executor(None, open_store, settings)
        yield
        if given is None:
            app[STORE].close()

    return store_context


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text from every part that contributes (EXTRAS["metrics"]: callables of the
    tenant whose series to show, None for all → text)."""
    text = "".join(render(metrics_tenant(request)) for render in request.app[EXTRAS].get("metrics", []))
    return web.Response(body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    store = request.app.get(STORE)
    if store is None:
        return web.json_response({"status": "starting"}, status=503)
    try:
        await run_in_store_thread(store.query, "SELECT 1")
    except StoreError as exc:
        return web.json_response({"status": "store unavailable", "error": str(exc)}, status=503)
    batcher = request.app.get(BATCHER)
    if batcher is not None and not batcher.wal.writable():
        # Disk full (or a failed fsync): a request would be answered 503; send it elsewhere.
        error = batcher.wal.write_error or "a sync of the write-ahead log failed; restart to replay it"
        return web.json_response({"status": "wal not writable", "error": str(error)}, status=503)
    return web.json_response({"status": "ready", "store": store.kind})
