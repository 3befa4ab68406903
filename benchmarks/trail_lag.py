"""How far search runs ahead of the trail and the build summary under load.

    python -m benchmarks.trail_lag [--lines-per-body 50000] [--bodies 4] [--builds 200]

Sends B concurrent gzip NDJSON bodies (every line with a build_id and a deploy_id, builds
interleaved) to a real `flightlog serve`, and meanwhile asks its SQL API, again and again, how
many lines of each build are searchable (`logs`), then how many its trail (`trail_lines`) and
its summary (`id_summary`) hold. Prints when every line was acknowledged, searchable, in its
trail and in its summary (seconds from the first byte sent), the most lines ever searchable but
missing from their trail or summary, and how long any were. One figure per line.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.ingest import start_server

SEARCHABLE = "SELECT build_id, count() FROM logs WHERE build_id != '' GROUP BY build_id"
TRAIL = "SELECT id, count() FROM trail_lines WHERE kind = 'build' GROUP BY id"
SUMMARY = "SELECT id, sum(lines) FROM id_summary WHERE kind = 'build' GROUP BY id"


def bodies(count: int, per_body: int, builds: int) -> list[bytes]:
    now = time.time_ns()
    out = []
    for b in range(count):
        lines = []
        for i in range(per_body):
            n = b * per_body + i
            lines.append(orjson.dumps({
                "ts": now - 3_600 * 10**9 + n, "msg": f"step {i} of body {b}", "service": f"svc-{n % 8}",
                "host": f"host-{n % 50}", "build_id": f"build-{n % builds}", "deploy_id": f"deploy-{n % 20}",
            }))
        out.append(gzip.compress(b"\n".join(lines), compresslevel=1))
    return out


async def run(url: str, data: list[bytes], total: int) -> dict:
    import aiohttp

    marks: dict[str, float] = {}
    worst_gap = 0
    gap_seconds = 0.0
    probes = 0
    async with aiohttp.ClientSession() as session:

        async def sql(text: str) -> dict[str, int]:
            async with session.post(url + "/api/v1/sql", json={"sql": text}) as resp:
                body = await resp.json(loads=orjson.loads)
                if resp.status != 200:
                    raise RuntimeError(f"sql answered {resp.status}: {body}")
            return {row[0]: int(row[1]) for row in body["rows"]}

        async def post(body: bytes) -> None:
            headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
            async with session.post(url + "/api/v1/logs", data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"ingest answered {resp.status}: {await resp.text()}")

        started = time.perf_counter()
        sending = asyncio.gather(*(post(b) for b in data))
        last = started
        while len(marks) < 4:
            if "acknowledged" not in marks and sending.done():
                sending.result()
                marks["acknowledged"] = time.perf_counter() - started
            # Search first: the trail read after it holds at least what it held then.
            searchable = await sql(SEARCHABLE)
            trail, summary = await sql(TRAIL), await sql(SUMMARY)
            now = time.perf_counter()
            probes += 1
            gap = sum(max(0, n - min(trail.get(k, 0), summary.get(k, 0))) for k, n in searchable.items())
            if gap:
                gap_seconds += now - last
            worst_gap = max(worst_gap, gap)
            last = now
            for name, counts in (("searchable", searchable), ("in trail", trail), ("in summary", summary)):
                if name not in marks and sum(counts.values()) >= total:
                    marks[name] = now - started
            if now - started > 600:
                raise RuntimeError(f"not every line arrived in 10 minutes: {marks}")
        await sending
    return {"marks": marks, "worst_gap": worst_gap, "gap_seconds": gap_seconds, "probes": probes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines-per-body", type=int, default=50_000)
    parser.add_argument("--bodies", type=int, default=4)
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--server-flag", action="append", default=[], help="extra flag for flightlog serve")
    args = parser.parse_args(argv)
    total = args.bodies * args.lines_per_body
    data = bodies(args.bodies, args.lines_per_body, args.builds)
    work = Path(tempfile.mkdtemp(prefix="flightlog-trail-lag-"))
    proc, url = start_server(work / "data", args.server_flag)
    try:
        result = asyncio.run(run(url, data, total))
    finally:
        proc.terminate()
        proc.wait(120)
        shutil.rmtree(work, ignore_errors=True)
    print(f"lines: {total} in {args.bodies} concurrent bodies, {args.builds} builds")
    for name in ("acknowledged", "searchable", "in trail", "in summary"):
        print(f"all {name} after: {result['marks'][name]:.2f} s")
    print(f"most lines searchable but not yet in their trail or summary: {result['worst_gap']}")
    print(f"time any line was searchable but not in its trail or summary: {result['gap_seconds']:.2f} s "
          f"({result['probes']} probes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
