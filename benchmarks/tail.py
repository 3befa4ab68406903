"""Live tail delivery: time from a POST's 2xx to the line arriving on an SSE tail, over real HTTP.

    python benchmarks/tail.py [--lines 40] [--gap-ms 150] [--background 0]

One process serves every role on a real socket (default settings: 250 ms batch age, the tail
polling every 250 ms); a client follows /api/v1/tail?q=service:bench while another POSTs one
line at a time to /api/v1/logs and notes when each 2xx came back. With --background N, N lines
a second of other traffic are posted alongside (they do not match the tail's query).
Prints one figure a line: p50, p95 and max delivery latency in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def follow(url: str, arrived: dict[str, float], ready: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/tail", params={"q": "service:bench"}) as resp:
            ready.set()
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    arrived[orjson.loads(line[6:])["message"]] = time.monotonic()


async def background(url: str, per_second: int, stop: asyncio.Event) -> None:
    if per_second <= 0:
        return
    body = b"".join(b'{"service":"noise","message":"other traffic %d"}\n' % i for i in range(per_second // 10 or 1))
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            await session.post(f"{url}/api/v1/logs", data=body, headers={"Content-Type": "application/x-ndjson"})
            await asyncio.sleep(0.1)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_values({"data_dir": str(Path(tmp) / "data")})
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}"
        arrived: dict[str, float] = {}
        acked: dict[str, float] = {}
        ready, stop = asyncio.Event(), asyncio.Event()
        follower = asyncio.create_task(follow(url, arrived, ready))
        noise = asyncio.create_task(background(url, args.background, stop))
        await ready.wait()
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as session:
            for i in range(args.lines):
                message = f"bench line {i}"
                body = orjson.dumps({"service": "bench", "level": "info", "message": message}) + b"\n"
                async with session.post(
                    f"{url}/api/v1/logs", data=body, headers={"Content-Type": "application/x-ndjson"}
                ) as resp:
                    assert resp.status // 100 == 2, await resp.text()
                acked[message] = time.monotonic()
                await asyncio.sleep(args.gap_ms / 1000)
        deadline = time.monotonic() + 10
        while len(arrived) < len(acked) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        follower.cancel()
        await asyncio.gather(follower, noise, return_exceptions=True)
        await runner.cleanup()
    latencies = sorted((arrived[m] - acked[m]) * 1000 for m in acked if m in arrived)
    missing = len(acked) - len(latencies)
    print(f"tail lines delivered: {len(latencies)} of {len(acked)} (missing {missing})")
    if latencies:
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        print(f"tail delivery p50 ms: {statistics.median(latencies):.0f}")
        print(f"tail delivery p95 ms: {p95:.0f}")
        print(f"tail delivery max ms: {latencies[-1]:.0f}")
        print(f"within 1 s: {sum(1 for x in latencies if x < 1000)} of {len(latencies)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--gap-ms", type=int, default=150)
    parser.add_argument("--background", type=int, default=0, help="other lines per second posted alongside")
    asyncio.run(main(parser.parse_args()))
