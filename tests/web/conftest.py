from __future__ import annotations

import pytest
from flightlog.web.server import create_app


@pytest.fixture
async def client(aiohttp_client, settings, store):
    return await aiohttp_client(create_app(settings, roles={"query"}, store=store))
