"""Fixtures for the alert tests: a local HTTP receiver standing in for Slack and webhook
endpoints (it records every request and answers as told), and lines written straight to logs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.query.data import NS, insert, make_line


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Records requests; `answers[path]` decides the reply: a status, (status, headers), or
    "hang" to never answer."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.received):
                self.event.clear()
                await self.event.wait()


@pytest.fixture
async def receiver(aiohttp_server):
    rec = Receiver()

    async def handle(request: web.Request) -> web.StreamResponse:
        answer = rec.answers.get(request.path, 200)
        if callable(answer):
            answer = answer(len(rec.on(request.path)))
        if answer == "hang":
            await asyncio.sleep(3600)
        body = await request.read()
        rec.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        rec.event.set()
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, text="ok" if status < 300 else "no", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app)
    rec.url = f"http://127.0.0.1:{server.port}"
    return rec


def lines(store, n: int, ago_s: float = 30, tenant: str = "default", **fields) -> list[dict]:
    """Write n lines `ago_s` seconds old (spread over a second) and return them."""
    now = time.time_ns()
    made = [make_line(now - int(ago_s * NS) + i * 1000, tenant=tenant, **fields) for i in range(n)]
    insert(store, made)
    return made
