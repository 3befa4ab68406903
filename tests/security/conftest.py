"""Fixtures for the security tests: an app over a real chDB store, served over real HTTP, with keys."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from flightlog.schema.api_keys import KeyFile, new_key
from flightlog.web.server import create_app


@pytest.fixture
def make_key(settings):
    """make_key(tenant, scope, **limits) → the key text, stored (hash only) in the data dir's keys.json."""

    def make(tenant: str, scope: str, name: str = "", **limits: int) -> str:
        record, text = new_key(tenant, scope, name, **limits)
        KeyFile(settings.data_dir).add(record)
        return text

    return make


@pytest.fixture
def secure_settings(settings):
    """Settings with short client time limits, so the slow-client tests take seconds."""
    return dataclasses.replace(settings, header_timeout=1.0, body_timeout=1.0)


@pytest.fixture
async def app_client(aiohttp_client, secure_settings, store):
    """A client over every role (ingest, query, pages) of one app on a real TCP port."""
    return await aiohttp_client(create_app(secure_settings, store=store))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def wait_for_rows(store, sql: str, want: int, timeout: float = 10.0) -> int:
    """Poll until `sql` (a count) reaches `want`: the batcher inserts a moment after the 2xx."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = (await loop.run_in_executor(None, store.query, sql)).scalar()
        if got >= want or loop.time() > deadline:
            return got
        await asyncio.sleep(0.05)
