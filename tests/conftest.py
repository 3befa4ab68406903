"""Shared fixtures: a real chDB store in a temporary directory, and an app over it.

chDB lets one process own one data directory at a time, so each test opens its own store
and closes it before the next test opens another.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from flightlog.schema.embedded import EmbeddedStore
from flightlog.schema.migrate import apply_migrations
from flightlog.schema.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_values({"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 50})


@pytest.fixture
def store(settings: Settings):
    store = EmbeddedStore(settings.data_dir)
    apply_migrations(store, settings.retention_days)
    yield store
    store.close()


# Apps under test run over the `store` fixture: the store must be opened before and closed
# after every app (closing it first would strand the batcher's last insert). Requesting
# `store` here, ahead of the plugin's fixture, fixes that order for every test at once.
@pytest.fixture
def aiohttp_client(store, aiohttp_client):
    return aiohttp_client


@pytest.fixture
def aiohttp_server(store, aiohttp_server):
    return aiohttp_server


@pytest.fixture
def clickhouse_url() -> str:
    url = os.environ.get("FLIGHTLOG_CLICKHOUSE_URL", "")
    if not url:
        pytest.skip("server mode: set FLIGHTLOG_CLICKHOUSE_URL to a ClickHouse server to run this test")
    return url


# Debian's chromium, driven by Playwright; never a browser Playwright downloads itself.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture
async def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    async_api = pytest.importorskip("playwright.async_api")
    async with async_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()
