"""An in-process flightlog on a real port (real clients need a real socket), and the rows it stored."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app

COLUMNS = (
    "toUnixTimestamp64Nano(ts) AS ts_ns, service, host, level, message, build_id, deploy_id, "
    "trace_id, span_id, request_id, attrs"
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    app: web.Application
    store: Any
    port: int
    syslog_tcp: int
    syslog_udp: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def rows(self, build_id: str) -> list[dict[str, Any]]:
        """Every stored line of a build, in order (flushes the batcher first)."""
        await self.app[BATCHER].flush()
        return self.store.query(
            f"SELECT {COLUMNS} FROM logs WHERE build_id = {{b:String}} ORDER BY ts, seq", {"b": build_id}
        ).dicts()


@pytest.fixture
async def server(store, tmp_path):
    settings = Settings.from_values(
        {
            "data_dir": str(tmp_path / "data"),
            "batch_max_age_ms": 20,
            "syslog_tcp": free_port(),
            "syslog_udp": free_port(socket.SOCK_DGRAM),
        }
    )
    app = create_app(settings, roles={"ingest"}, store=store)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield Server(app, store, port, settings.syslog_tcp, settings.syslog_udp)
    finally:
        await runner.cleanup()
