"""Trail latency at 1M and 10M lines: p50/p99 of GET /api/v1/builds/{id}/trail over real HTTP.

    python benchmarks/trail.py [--data-dir DIR] [--sizes 1000000,10000000] [--requests 200]

Lines are generated inside the engine (INSERT INTO logs SELECT … FROM numbers(), through the same
materialized views as ingest) so loading 10M takes a minute, not an hour: 200 hosts in 10 services,
one line every ~86 ms over ten days; a quarter of the lines belong to 1,000-line builds (each on 10
hosts, its last 100 lines also carry a deploy id), trace ids per 20 lines, a request id on every
fourth. After each load the tables are merged (OPTIMIZE … FINAL: the steady state background
merges reach, instead of merges competing with the requests) and the store closed; a real
`flightlog serve` subprocess answers the requests, sequentially, after a warm-up. Prints one figure a line, then the ratio
p99(10M)/p99(1M). Also prints what the correlation views cost on a 300k-line insert.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BASE_NS = 1_790_000_000 * 10**9  # a fixed start: the data is the same on every run
STEP_NS = 86_400_000  # 10M lines span ten days
BUILD_LINES = 1000
HOSTS = 200


def generate_sql(table: str, start: int, count: int) -> str:
    """INSERT … SELECT of `count` synthetic lines numbered from `start` (seq = number + 1)."""
    return f"""
INSERT INTO {table}
SELECT
  fromUnixTimestamp64Nano(toInt64({BASE_NS} + n * {STEP_NS} + (n % 7) * 1000), 'UTC') AS ts,
  ts AS observed_ts,
  n + 1 AS seq,
  'default' AS tenant,
  concat('svc-', toString(intDiv(h, 20))) AS service,
  concat('host-', leftPad(toString(h), 3, '0')) AS host,
  multiIf(n % 97 = 0, 'error', n % 19 = 0, 'warn', n % 5 = 0, 'debug', 'info') AS level,
  concat(if(in_build, 'build step ', 'handled request '), toString(n % {BUILD_LINES}),
         ' on host ', toString(h), ' took ', toString(n % 977), ' ms') AS message,
  if(in_build, concat('b', toString(b)), '') AS build_id,
  if(in_build AND n % {BUILD_LINES} >= {BUILD_LINES - 100}, concat('d', toString(intDiv(b, 4))), '') AS deploy_id,
  concat('t', toString(intDiv(n, 20))) AS trace_id,
  '' AS span_id,
  if(n % 4 = 0, concat('r', toString(n)), '') AS request_id,
  map('step', toString(n % {BUILD_LINES})) AS attrs
FROM (
  SELECT number AS n, intDiv(number, {BUILD_LINES}) AS b, b % 4 = 0 AS in_build,
         toUInt32(if(in_build, (b * 7 + number % 10) % {HOSTS}, number % {HOSTS})) AS h
  FROM numbers({start}, {count})
)
SETTINGS max_insert_threads = 1
"""


def open_store(data_dir: Path):
    from flightlog.schema.embedded import EmbeddedStore
    from flightlog.schema.migrate import apply_migrations

    store = EmbeddedStore(data_dir)
    apply_migrations(store, 3650)
    return store


def load(data_dir: Path, start: int, count: int, chunk: int = 1_000_000) -> float:
    store = open_store(data_dir)
    started = time.perf_counter()
    try:
        for at in range(start, start + count, chunk):
            store.command(generate_sql("logs", at, min(chunk, start + count - at)))
        # measure the steady state, not the minutes of background merging after a bulk load
        # (the merges would otherwise compete with the requests for the two cores)
        for table in ("logs", "trail_lines", "id_lines", "id_hosts", "id_summary", "host_ids", "host_summary"):
            store.command(f"OPTIMIZE TABLE {table} FINAL")
    finally:
        store.close()
    return time.perf_counter() - started


def mv_cost(data_dir: Path, lines: int = 300_000) -> tuple[float, float]:
    """Seconds to insert `lines` into logs with the correlation views, and into a copy without."""
    store = open_store(data_dir)
    try:
        store.command("CREATE TABLE IF NOT EXISTS logs_no_views AS logs")
        timings: dict[str, list[float]] = {"logs": [], "logs_no_views": []}
        for round_ in range(4):  # alternating; the best of the last three of each counts
            for table in ("logs_no_views", "logs"):
                started = time.perf_counter()
                store.command(generate_sql(table, 50_000_000 + round_ * lines, lines))
                timings[table].append(time.perf_counter() - started)
        return min(timings["logs"][1:]), min(timings["logs_no_views"][1:])
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(port: int, build_ids: list[str], n: int) -> list[float]:
    rng = random.Random(42)
    url = f"http://127.0.0.1:{port}/api/v1/builds/{{}}/trail"
    timings = []
    async with aiohttp.ClientSession() as session:
        for warm in rng.sample(build_ids, min(20, len(build_ids))):
            async with session.get(url.format(warm)) as resp:
                await resp.read()
        for build_id in [rng.choice(build_ids) for _ in range(n)]:
            started = time.perf_counter()
            async with session.get(url.format(build_id)) as resp:
                body = await resp.read()
                assert resp.status == 200, body[:200]
            timings.append((time.perf_counter() - started) * 1000)
            assert body.count(b'"ref"') == BUILD_LINES, build_id
    return timings


def serve_and_measure(data_dir: Path, build_ids: list[str], n: int) -> list[float]:
    return serve(data_dir, lambda port: asyncio.run(measure(port, build_ids, n)))


def serve(data_dir: Path, run):
    """Start `flightlog serve` over data_dir, return run(port) once it listens, then stop it."""
    port = free_port()
    env = dict(os.environ, FLIGHTLOG_DATA_DIR=str(data_dir), FLIGHTLOG_PORT=str(port), FLIGHTLOG_RETENTION_DAYS="3650")
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "flightlog.web.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError("flightlog serve did not start: " + log.read().decode()[-2000:]) from None
                time.sleep(0.2)
        return run(port)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--skip-mv-cost", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    owned = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="flightlog-bench-")) if owned else args.data_dir
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    try:
        if not args.skip_mv_cost:
            scratch = Path(tempfile.mkdtemp(prefix="flightlog-mv-cost-"))
            try:
                with_views, without = mv_cost(scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            print(f"300k-line insert without correlation views: {without * 1000:.0f} ms")
            print(f"300k-line insert with correlation views: {with_views * 1000:.0f} ms "
                  f"(views add {(with_views / without - 1) * 100:.0f}%)")
        p99s = {}
        loaded = 0
        for size in sizes:
            seconds = load(data_dir, loaded, size - loaded)
            print(f"loaded {size - loaded:,} lines in {seconds:.1f} s ({(size - loaded) / seconds:,.0f} lines/s)")
            loaded = size
            build_ids = [f"b{b}" for b in range(0, size // BUILD_LINES, 4)]
            timings = serve_and_measure(data_dir, build_ids, args.requests)
            p50, p99 = percentile(timings, 50), percentile(timings, 99)
            p99s[size] = p99
            label = f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size:,}"
            print(f"trail p50 at {label}: {p50:.1f} ms")
            print(f"trail p99 at {label}: {p99:.1f} ms")
            print(f"load average after {label}: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if len(sizes) >= 2:
            print(f"ratio p99({sizes[-1] // 1_000_000}M)/p99({sizes[0] // 1_000_000}M): "
                  f"{p99s[sizes[-1]] / p99s[sizes[0]]:.2f}")
    finally:
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
