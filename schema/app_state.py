"""Typed application state shared by the ingest, query and web routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from flightlog.schema.settings import Settings
from flightlog.schema.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
# The ingest pipeline (flightlog.ingest.batcher.Batcher); typed loosely to keep web free of ingest.
BATCHER = web.AppKey("batcher", Any)
# Objects other parts hang on the app by name (tail hub, metrics, key registry …).
EXTRAS = web.AppKey("extras", dict)

DEFAULT_TENANT = "default"


def tenant_of(request: web.Request) -> str:
    """The tenant a request acts for; auth sets it, an open server has just one."""
    return request.get("tenant", DEFAULT_TENANT)
