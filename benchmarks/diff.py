"""Build diff latency: GET /api/v1/builds/{id}/diff of a 50k-line build against its predecessor,
with `--rows` (default 10M) other lines in the table; p50/p99 over real HTTP, and the failed
build's page (which shows the "New in this build" panel first) render time.

    python -m benchmarks.diff [--rows 10000000] [--build-lines 50000] [--requests 100] [--data-dir DIR]

The background lines are benchmarks/trail.py's (generated inside the engine, through the same
materialized views as ingest). The two builds are generated the same way: each line's message
comes from one of 200 templates with numbers, hex and paths that vary; one line in a hundred of
the second build comes from 20 templates the first never had (every old template keeps lines), and the diff must find exactly
those 20 (checked on every response). Both builds have CI records (pipeline "bench", branch
main), so `against=previous` resolves through the records as it would in use. Tables are merged
(OPTIMIZE … FINAL) before a real `flightlog serve` subprocess answers, sequentially, after a
warm-up. Target (issue 14): diff p99 ≤ 300 ms at 10M rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.trail import generate_sql, open_store, percentile, serve

PLANTED = 20
TEMPLATES = 200
BUILD_START_NS = 1_800_000_000 * 10**9  # after the background lines' ten days


def _word(number: str) -> str:
    """A three-letter word naming a template (letters only: the masking leaves it alone)."""
    return f"arrayStringConcat(arrayMap(i -> char(97 + intDiv({number}, toUInt32(pow(26, i))) % 26), range(3)))"


def build_sql(build_id: str, start_ns: int, seq_base: int, lines: int, planted: bool) -> str:
    message = (
        f"concat('phase ', {_word('t')}, ' handled item ', toString(n), ' in ', toString(n % 977), ' ms from /srv/data/', "
        "toString(n % 13), '/part.bin')"
    )
    if planted:  # one line in 101 (so every old template keeps lines), cycling through the new templates
        new_word = _word(f"{TEMPLATES} + intDiv(n, 101) % {PLANTED}")
        message = f"if(n % 101 = 7, concat('unexpected ', {new_word}, ' state 0x', hex(n * 7919)), {message})"
    return f"""
INSERT INTO logs
SELECT fromUnixTimestamp64Nano(toInt64({start_ns} + n * 1000000), 'UTC') AS ts, ts AS observed_ts,
       {seq_base} + n AS seq, 'default' AS tenant, concat('svc-', toString(n % 5)) AS service,
       concat('runner-', toString(n % 8)) AS host, if(n % 50 = 0, 'error', 'info') AS level,
       {message} AS message, '{build_id}' AS build_id, '' AS deploy_id, '' AS trace_id, '' AS span_id,
       '' AS request_id, map() AS attrs
FROM (SELECT number AS n, number % {TEMPLATES} AS t FROM numbers({lines}))
"""


def load(data_dir: Path, rows: int, build_lines: int) -> float:
    from flightlog.ingest.cicd.events import from_api, store_events

    store = open_store(data_dir)
    started = time.perf_counter()
    try:
        for at in range(0, rows, 1_000_000):
            store.command(generate_sql("logs", at, min(1_000_000, rows - at)))
        store.command(build_sql("bench-1", BUILD_START_NS, 10**12, build_lines, planted=False))
        store.command(build_sql("bench-2", BUILD_START_NS + 3600 * 10**9, 2 * 10**12, build_lines, planted=True))
        ci = {"repo": "acme/bench", "pipeline": "bench", "branch": "main"}
        store_events(store, "default", [
            from_api("build", "bench-1", {"status": "success", "ts": BUILD_START_NS / 1e9, **ci}, BUILD_START_NS),
            from_api("build", "bench-2", {"status": "failure", "ts": BUILD_START_NS / 1e9 + 3600, **ci},
                     BUILD_START_NS),
        ])
        for table in ("logs", "trail_lines", "id_lines", "id_hosts", "id_summary", "host_ids", "host_summary",
                      "build_events"):
            store.command(f"OPTIMIZE TABLE {table} FINAL")
    finally:
        store.close()
    return time.perf_counter() - started


async def measure(port: int, n: int) -> tuple[list[float], list[float]]:
    base = f"http://127.0.0.1:{port}"
    diff_ms, page_ms = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # warm-up
            async with session.get(f"{base}/api/v1/builds/bench-2/diff?against=previous") as resp:
                await resp.read()
        for _ in range(n):
            started = time.perf_counter()
            async with session.get(f"{base}/api/v1/builds/bench-2/diff?against=previous") as resp:
                body = await resp.json()
            diff_ms.append((time.perf_counter() - started) * 1000)
            assert resp.status == 200, body
            assert body["against"] == "bench-1" and body["new_count"] == PLANTED and body["gone_count"] == 0, body
        for _ in range(max(5, n // 10)):
            started = time.perf_counter()
            async with session.get(f"{base}/builds/bench-2", headers={"Accept": "text/html"}) as resp:
                html = await resp.text()
            page_ms.append((time.perf_counter() - started) * 1000)
            assert resp.status == 200 and "New in this build" in html, html[:300]
    return diff_ms, page_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="background lines in the table")
    parser.add_argument("--build-lines", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    owned = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="flightlog-diff-bench-")) if owned else args.data_dir
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    try:
        seconds = load(data_dir, args.rows, args.build_lines)
        total = args.rows + 2 * args.build_lines
        print(f"loaded {total:,} lines (two {args.build_lines:,}-line builds) in {seconds:.1f} s")
        diff_ms, page_ms = serve(data_dir, lambda port: asyncio.run(measure(port, args.requests)))
        print(f"diff p50: {percentile(diff_ms, 50):.1f} ms")
        print(f"diff p99: {percentile(diff_ms, 99):.1f} ms (target 300)")
        print(f"page (failed build, New-in-this-build panel + first 5,000 lines) p50: {percentile(page_ms, 50):.1f} ms")
        print(f"page p99: {percentile(page_ms, 99):.1f} ms")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
