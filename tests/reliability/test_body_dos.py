"""Denial of service through the body: bodies of many tiny gzip members or zstd frames, and
slow uploads that announce a large body. Neither may stall the event loop or lock out
honest senders."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import time
import zlib
from types import SimpleNamespace

import orjson
import pytest
from flightlog.ingest import decompress as decompress_module
from flightlog.ingest.backpressure import BUDGET
from flightlog.ingest.decompress import decompress, zstd
from flightlog.web.server import create_app

LINE = orjson.dumps({"msg": "x" * 200, "service": "dos"}) + b"\n"


class CountingDecoders:
    """Stand-ins for zlib and zstd that count the input bytes handed to decoders, and when
    each decoder was made (so a test can tell when inflating went on)."""

    def __init__(self) -> None:
        self.fed = 0
        self.made: list[float] = []
        counter = self

        class Wrapped:
            def __init__(self, inner) -> None:
                self._inner = inner
                counter.made.append(time.monotonic())

            def decompress(self, data, *args, **kwargs):
                counter.fed += len(data)
                return self._inner.decompress(data, *args, **kwargs)

            def __getattr__(self, name):
                return getattr(self._inner, name)

        self.zlib = SimpleNamespace(
            decompressobj=lambda wbits: Wrapped(zlib.decompressobj(wbits)), error=zlib.error, MAX_WBITS=zlib.MAX_WBITS
        )
        self.zstd = SimpleNamespace(ZstdDecompressor=lambda: Wrapped(zstd.ZstdDecompressor()), ZstdError=zstd.ZstdError)


@pytest.fixture
def decoders(monkeypatch) -> CountingDecoders:
    counting = CountingDecoders()
    monkeypatch.setattr(decompress_module, "zlib", counting.zlib)
    monkeypatch.setattr(decompress_module, "zstd", counting.zstd)
    return counting


def members(coding: str, count: int, lines_each: int = 1) -> bytes:
    compress = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstd.compress}[coding]
    return compress(LINE * lines_each) * count


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd"])
def test_inflating_many_members_reads_each_input_byte_a_bounded_number_of_times(decoders, coding):
    fed = {}
    for count in (2000, 4000):
        body = members(coding, count)
        decoders.fed = 0
        assert decompress(body, coding, 64 << 20) == LINE * count
        fed[count] = decoders.fed
        # the old code handed each decoder everything after its member: count²/2 members' bytes
        assert decoders.fed <= 4 * len(body), (coding, count, decoders.fed, len(body))
    assert fed[4000] <= 3 * fed[2000], fed


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
async def test_a_body_of_empty_members_is_refused_without_blocking_healthz(aiohttp_client, settings, store, coding):
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    one_empty = gzip.compress(b"") if coding == "gzip" else zstd.compress(b"")
    body = one_empty * ((2 << 20) // len(one_empty))  # 2 MB: 100,000+ empty members
    answered = []

    async def poll_healthz() -> None:
        while True:
            resp = await client.get("/healthz")
            answered.append(resp.status)
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll_healthz())
    try:
        resp = await client.post("/api/v1/logs", data=body, headers={"Content-Encoding": coding})
        text = await resp.text()
    finally:
        poller.cancel()
    assert resp.status == 400, text
    assert "members" in text and "one stream" in text
    assert answered and set(answered) == {200}


async def test_healthz_answers_while_a_large_body_is_being_inflated(aiohttp_client, settings, store, decoders):
    client = await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))
    body = members("zstd", 20_000, lines_each=5)  # 20,000 frames, 21 MB inflated
    answers: list[float] = []
    done = asyncio.Event()

    async def poll_healthz() -> None:
        while not done.is_set():
            resp = await client.get("/healthz")
            assert resp.status == 200
            answers.append(time.monotonic())
            await asyncio.sleep(0.005)

    poller = asyncio.create_task(poll_healthz())
    resp = await client.post("/api/v1/logs", data=body, headers={"Content-Encoding": "zstd"})
    text = await resp.text()
    done.set()
    await poller
    assert resp.status == 200, text
    assert orjson.loads(text)["accepted"] == 20_000 * 5
    first, last = decoders.made[0], decoders.made[-1]
    during = [t for t in answers if first < t < last]
    assert during, "no /healthz answer while the body was being inflated: the event loop was blocked"


async def test_slow_uploads_announcing_huge_bodies_do_not_lock_out_honest_senders(aiohttp_server, settings, store):
    settings = dataclasses.replace(settings, body_timeout=4.0)
    server = await aiohttp_server(create_app(settings, roles={"ingest"}, store=store))
    declared = 64 * 1024 * 1024  # four of these declare the whole 256 MB in-flight budget
    slow = []
    for _ in range(4):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            + f"Content-Length: {declared}\r\n\r\n".encode()
            + b"{"
        )
        await writer.drain()
        slow.append((reader, writer))

    async def trickle() -> None:
        for _ in range(6):
            await asyncio.sleep(0.5)
            for _, writer in slow:
                writer.write(b" ")
                await writer.drain()

    trickling = asyncio.create_task(trickle())
    await asyncio.sleep(0.3)  # the slow requests are in their handlers, reading
    budget = server.app[BUDGET]
    assert budget.requests == 4
    assert budget.reserved < 1024, budget.reserved  # a few bytes held, not 4 × 64 MB
    from aiohttp import ClientSession

    async with ClientSession() as session:
        for i in range(3):
            async with session.post(server.make_url("/api/v1/logs"), data=LINE * 100) as resp:
                assert resp.status == 200, (i, await resp.text())
    await trickling
    # the slow uploads are still cut off by the body time limit
    for reader, writer in slow:
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        assert b" 408 " in status_line, status_line
        writer.close()
    assert budget.reserved == 0
