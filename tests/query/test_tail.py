"""GET /api/v1/tail: matching lines as Server-Sent Events soon after they arrive; heartbeats;
resuming with Last-Event-ID."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson
import pytest
from aiohttp import web
from flightlog.query import tail_api
from flightlog.web.server import create_app

from tests.query.data import insert, make_line, ts_text

DELIVERY_BOUND_S = 10.0  # generous for CI; benchmarks/tail.py measures the real figure


class Events:
    """Reads an SSE response: events (id, event, data) and comment lines."""

    def __init__(self, resp) -> None:
        self.resp = resp
        self.comments: list[str] = []

    async def opened(self, timeout: float = DELIVERY_BOUND_S) -> None:
        """Wait for the stream's opening comment: the server sends it once the listener is subscribed,
        so lines inserted after this are for the listener."""
        while ": flightlog tail" not in self.comments:
            raw = await asyncio.wait_for(self.resp.content.readline(), timeout)
            assert raw, "stream ended before it opened"
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line)

    async def next(self, timeout: float = DELIVERY_BOUND_S) -> dict:
        deadline = time.monotonic() + timeout
        event: dict = {}
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no event in time"
            try:
                raw = await asyncio.wait_for(self.resp.content.readline(), left)
            except TimeoutError:
                raise AssertionError("no event in time") from None
            assert raw, "stream ended"
            line = raw.decode().rstrip("\n")
            if line == "":
                if "data" in event:
                    return event
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(": ")
            event[name] = orjson.loads(value) if name == "data" else value


def _arriving(**fields):
    now = time.time_ns()
    return make_line(now, observed_ts=ts_text(now), **fields)


async def test_tail_sends_matching_lines_as_they_arrive(client, store):
    resp = await client.get("/api/v1/tail", params={"q": "service:api level:>=warn"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = Events(resp)
    await events.opened()
    insert(
        store,
        [
            _arriving(service="api", level="info", message="not this"),
            _arriving(service="worker", level="error", message="nor this"),
            _arriving(service="api", level="error", message="this one"),
            _arriving(service="api", level="error", message="and this", tenant="other"),
        ],
    )
    started = time.monotonic()
    event = await events.next()
    assert event["data"]["message"] == "this one"
    assert event["id"].count("-") == 2
    assert time.monotonic() - started < DELIVERY_BOUND_S
    insert(store, [_arriving(service="api", level="fatal", message="next")])
    assert (await events.next())["data"]["message"] == "next"
    resp.close()


async def test_two_listeners_with_different_queries_each_get_their_own_lines(client, store):
    a = Events(await client.get("/api/v1/tail", params={"q": "service:a"}))
    b = Events(await client.get("/api/v1/tail", params={"q": "service:b OR level:fatal"}))
    await a.opened()
    await b.opened()
    insert(store, [_arriving(service="a", message="for a"), _arriving(service="b", message="for b")])
    insert(store, [_arriving(service="a", level="fatal", message="for both")])
    assert [(await a.next())["data"]["message"] for _ in range(2)] == ["for a", "for both"]
    assert [(await b.next())["data"]["message"] for _ in range(2)] == ["for b", "for both"]
    a.resp.close()
    b.resp.close()


async def test_tail_resumes_after_the_last_event_id(client, store):
    first = Events(await client.get("/api/v1/tail", params={"q": "service:api"}))
    await first.opened()
    insert(store, [_arriving(message="one")])
    seen = await first.next()
    first.resp.close()
    insert(store, [_arriving(message="two"), _arriving(message="three"), _arriving(service="x", message="no")])
    resumed = Events(
        await client.get("/api/v1/tail", params={"q": "service:api"}, headers={"Last-Event-ID": seen["id"]})
    )
    got = [(await resumed.next())["data"]["message"] for _ in range(2)]
    assert got == ["two", "three"]
    insert(store, [_arriving(message="four")])
    assert (await resumed.next())["data"]["message"] == "four"
    resumed.resp.close()


async def test_tail_sends_heartbeats_when_nothing_matches(client, store, monkeypatch):
    monkeypatch.setattr(tail_api, "HEARTBEAT_SECONDS", 0.2)
    resp = await client.get("/api/v1/tail", params={"q": "nothing-matches-this"})
    events = Events(resp)
    insert(store, [_arriving(message="x")])
    with pytest.raises(AssertionError, match="no event in time"):
        await events.next(timeout=1.0)
    assert ": keepalive" in events.comments
    resp.close()


async def test_tail_refuses_a_bad_query_or_event_id(client, store):
    resp = await client.get("/api/v1/tail", params={"q": "(oops"})
    assert resp.status == 400 and (await resp.json())["position"] == 1
    resp = await client.get("/api/v1/tail", headers={"Last-Event-ID": "nope"})
    assert resp.status == 400


async def test_lines_posted_to_ingest_reach_a_tail_within_the_bound(aiohttp_client, settings, store):
    client = await aiohttp_client(create_app(settings, store=store))
    events = Events(await client.get("/api/v1/tail", params={"q": "service:checkout"}))
    await events.opened()
    body = b'{"service":"checkout","level":"error","message":"payment declined"}\n'
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status // 100 == 2, await resp.text()
    acked = time.monotonic()
    event = await events.next()
    latency = time.monotonic() - acked
    assert event["data"]["message"] == "payment declined"
    assert latency < DELIVERY_BOUND_S
    events.resp.close()


async def test_a_client_that_disconnects_ends_its_stream_without_a_traceback(settings, store, monkeypatch, caplog):
    # A real runner, as `flightlog serve` uses: aiohttp's test server cancels the handler of a
    # client that left, which hides what production does (the next write fails).
    monkeypatch.setattr(tail_api, "HEARTBEAT_SECONDS", 0.05)  # the server writes soon after the client left
    app = create_app(settings, roles={"query"}, store=store)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(f"http://127.0.0.1:{port}/api/v1/tail", params={"q": "service:api"})
            events = Events(resp)
            await events.opened()
            hub = tail_api.hub_of(app)
            assert sum(len(subs) for subs in hub.subscribers.values()) == 1
            resp.close()
            for _ in range(200):  # bounded: the handler notices on its next write, a heartbeat away
                if not hub.subscribers:
                    break
                await asyncio.sleep(0.05)
            assert not hub.subscribers, "the stream of a client that left was never ended"
    finally:
        await runner.cleanup()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
