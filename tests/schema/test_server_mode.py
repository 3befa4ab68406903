"""Server mode: the same SQL through clickhouse-connect to a real ClickHouse server.

These run when FLIGHTLOG_CLICKHOUSE_URL points at a server (`docker compose up -d clickhouse`
gives one: http://flightlog:flightlog@127.0.0.1:8123/flightlog) and are skipped otherwise.
Each test writes under a tenant of its own, so a shared server stays usable.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiohttp import web
from flightlog.schema.app_state import BATCHER
from flightlog.schema.migrate import apply_migrations
from flightlog.schema.server import ServerStore
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app


@pytest.fixture
def server_store(clickhouse_url):
    store = ServerStore(clickhouse_url)
    apply_migrations(store, 30)
    yield store
    store.close()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_migrations_are_recorded_and_safe_to_rerun_on_a_server(server_store):
    before = server_store.query("SELECT count() FROM schema_migrations").scalar()
    assert apply_migrations(server_store, 30) == []
    assert server_store.query("SELECT count() FROM schema_migrations").scalar() == before


def test_parameters_reach_the_server_unchanged(server_store):
    value = "quote ' backslash \\ tab \t"
    assert server_store.query("SELECT {v:String}", {"v": value}).scalar() == value


async def test_lines_shipped_in_server_mode_make_a_build_trail(server_store, tenant, aiohttp_client, tmp_path):
    # The app runs open (no keys); the outermost middleware makes the requests act as a tenant
    # of their own, so the test never reads another run's lines on a shared server.
    settings = Settings.from_values({"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20})
    app = create_app(settings, store=server_store)

    app.middlewares.insert(0, _tenant_middleware(tenant))
    client = await aiohttp_client(app)
    build = f"b-{uuid.uuid4().hex[:8]}"
    body = b"\n".join(
        orjson.dumps({"msg": f"step {i}", "host": f"h{i % 3}", "level": "error" if i == 7 else "info"})
        for i in range(20)
    )
    resp = await client.post(f"/api/v1/logs?service=ci&build_id={build}", data=body)
    assert (await resp.json())["accepted"] == 20
    await app[BATCHER].flush()

    trail = await (await client.get(f"/api/v1/builds/{build}/trail")).json()
    assert [line["message"] for line in trail["lines"]] == [f"step {i}" for i in range(20)]
    summary = await (await client.get(f"/api/v1/builds/{build}")).json()
    assert summary["levels"]["error"] == 1

    refused = await client.post("/api/v1/sql", json={"sql": "SELECT * FROM file('/etc/passwd', 'LineAsString')"})
    assert refused.status == 400


def _tenant_middleware(tenant: str):
    @web.middleware
    async def set_tenant(request, handler):
        # Server tests share one database: each acts as a tenant of its own.
        request["tenant"] = tenant
        return await handler(request)

    return set_tenant
