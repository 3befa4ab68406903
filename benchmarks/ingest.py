"""Ingest speed: flightlog over HTTP against the engine's own `INSERT … SELECT FROM file()`.

    python -m benchmarks.ingest [--lines 1000000] [--connections 4] [--batch 5000]

Generates N deterministic lines (~300 bytes; mixed services, hosts, builds), gzips them into
NDJSON bodies of B lines before timing starts, sends them to a real `flightlog serve` (its
own data dir, WAL fsync `always` unless --wal-fsync says otherwise) over K connections, and
times from the first byte sent until every line is queryable (the server's inserted-lines
counter reaches N). Then it inserts the same NDJSON into a fresh chDB `logs` table of the same
schema with `INSERT INTO logs SELECT … FROM file(…, JSONEachRow)` and prints the ratio.
One figure per line.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

SERVICES = ("api", "web", "worker", "billing", "auth", "search", "gateway", "scheduler")
LEVELS = ("info",) * 6 + ("debug", "warn", "error")
WORDS = (
    "request handled user order payment cache miss hit timeout retry connection pool upstream "
    "downstream latency queue message job started finished failed ok"
).split()


def generate(n: int, seed: int = 7) -> list[bytes]:
    """N lines, the same for the same n and seed; timestamps in the day before today (UTC),
    so a default retention keeps them."""
    rng = random.Random(seed)
    hosts = [f"host-{i:03d}" for i in range(50)]
    builds = [f"build-{i:05d}" for i in range(40)]
    day = time.gmtime(time.time() - 86400)
    date = f"{day.tm_year:04d}-{day.tm_mon:02d}-{day.tm_mday:02d}"
    lines = []
    for i in range(n):
        seconds = i * 86400 // max(n, 1)
        line = {
            "timestamp": f"{date}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}."
            f"{rng.randrange(10**9):09d}Z",
            "level": LEVELS[i % len(LEVELS)],
            "service": SERVICES[i % len(SERVICES)],
            "host": hosts[rng.randrange(len(hosts))],
            "build_id": builds[(i * len(builds)) // max(n, 1)],
            "trace_id": f"{rng.getrandbits(128):032x}",
            "msg": " ".join(rng.choice(WORDS) for _ in range(9)) + f" n={i}",
            "attrs": {
                "http.status": str(rng.choice((200, 200, 200, 404, 500))),
                "duration_ms": str(rng.randrange(2000)),
                "region": rng.choice(("eu-west-1", "us-east-1")),
            },
        }
        lines.append(orjson.dumps(line))
    return lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def send_all(url: str, bodies: list[bytes], connections: int, server_pid: int, total: int) -> dict:
    import aiohttp

    queue = list(reversed(bodies))
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                while True:
                    async with session.post(url + "/api/v1/logs", data=body, headers=headers) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                        if resp.status == 200:
                            break
                        if resp.status not in (429, 503):
                            raise RuntimeError(f"ingest answered {resp.status}: {await resp.text()}")
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))

        cpu0 = proc_cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        sent = time.perf_counter()
        while True:
            async with session.get(url + "/metrics") as resp:
                if metric(await resp.text(), "flightlog_ingest_lines_inserted_total") >= total:
                    break
            await asyncio.sleep(0.01)
        done = time.perf_counter()
        cpu = proc_cpu_seconds(server_pid) - cpu0
        async with session.get(url + "/metrics") as resp:
            text = await resp.text()
        batches = metric(text, "flightlog_ingest_batches_inserted_total")
        insert_seconds = metric(text, "flightlog_ingest_insert_seconds_sum")
        fsyncs = metric(text, "flightlog_wal_fsyncs_total")
    return {"seconds": done - started, "send_seconds": sent - started, "cpu": cpu, "statuses": statuses,
            "batches": batches, "insert_seconds": insert_seconds, "fsyncs": fsyncs}


def start_server(data_dir: Path, flags: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "flightlog.web.cli", "serve", "--data-dir", str(data_dir), "--port", str(port), *flags]
    log = open(data_dir.parent / "serve.log", "wb")  # noqa: SIM115 - lives as long as the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"flightlog serve exited: {(data_dir.parent / 'serve.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("flightlog serve did not start")


def engine_rate(ndjson: Path, work: Path, lines: int) -> float:
    """The engine alone: the same NDJSON into a fresh `logs` table with INSERT … SELECT FROM file()."""
    from flightlog.schema.embedded import EmbeddedStore
    from flightlog.schema.migrate import apply_migrations

    store = EmbeddedStore(work / "engine")
    try:
        apply_migrations(store, 30)
        structure = ("timestamp String, level String, service String, host String, build_id String, "
                     "trace_id String, msg String, attrs Map(String, String)")
        sql = (
            "INSERT INTO logs SELECT parseDateTime64BestEffort(timestamp, 9, 'UTC') AS ts, now64(9) AS observed_ts, "
            "rowNumberInAllBlocks() AS seq, 'default' AS tenant, service, host, level, msg AS message, build_id, "
            "'' AS deploy_id, trace_id, '' AS span_id, '' AS request_id, attrs "
            f"FROM file('{ndjson}', JSONEachRow, '{structure}')"
        )
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        store.command(sql)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        count = store.query("SELECT count() FROM logs").scalar()
        if count != lines:
            raise SystemExit(f"engine baseline inserted {count} rows, expected {lines}")
        return lines / seconds, cpu
    finally:
        store.close()


def count_rows(data_dir: Path) -> tuple[int, int]:
    from flightlog.schema.embedded import EmbeddedStore

    store = EmbeddedStore(data_dir)
    try:
        total = store.query("SELECT count() FROM logs").scalar()
        distinct = store.query("SELECT uniqExact(message) FROM logs").scalar()
        return total, distinct
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch", type=int, default=5_000, help="lines per request body")
    parser.add_argument("--wal-fsync", default="always", choices=("always", "interval", "off"))
    parser.add_argument("--server-flag", action="append", default=[], help="extra flag for flightlog serve")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="flightlog-bench-"))
    try:
        lines = generate(args.lines)
        ndjson = work / "lines.ndjson"
        ndjson.write_bytes(b"\n".join(lines) + b"\n")
        bodies = [gzip.compress(b"\n".join(lines[i : i + args.batch]), 1) for i in range(0, len(lines), args.batch)]
        raw_bytes = ndjson.stat().st_size
        del lines

        data_dir = work / "data"
        data_dir.mkdir()
        proc, url = start_server(data_dir, ["--wal-fsync", args.wal_fsync, *args.server_flag])
        try:
            result = asyncio.run(send_all(url, bodies, args.connections, proc.pid, args.lines))
            peak_rss = proc_peak_rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait(120)
        total, distinct = count_rows(data_dir)
        engine, engine_cpu = engine_rate(ndjson, work, args.lines)

        rate = args.lines / result["seconds"]
        print(f"lines: {args.lines}")
        print(f"ndjson_bytes: {raw_bytes}")
        print(f"gzip_bodies: {len(bodies)} x {args.batch} lines, {sum(map(len, bodies))} bytes")
        print(f"connections: {args.connections}")
        print(f"wal_fsync: {args.wal_fsync}")
        print(f"flightlog_seconds: {result['seconds']:.2f}")
        print(f"flightlog_send_seconds: {result['send_seconds']:.2f}")
        print(f"flightlog_lines_per_s: {rate:.0f}")
        print(f"flightlog_server_cpu_s_per_million: {result['cpu'] / args.lines * 1e6:.2f}")
        print(f"flightlog_server_peak_rss_mb: {peak_rss / 1e6:.0f}")
        print(f"flightlog_batches: {result['batches']:.0f}")
        print(f"flightlog_insert_seconds_total: {result['insert_seconds']:.2f}")
        print(f"flightlog_wal_fsyncs: {result['fsyncs']:.0f}")
        print(f"flightlog_answers: {dict(sorted(result['statuses'].items()))}")
        print(f"flightlog_rows_stored: {total} (distinct messages {distinct})")
        print(f"engine_lines_per_s: {engine:.0f}")
        print(f"engine_cpu_s_per_million: {engine_cpu / args.lines * 1e6:.2f}")
        print(f"ratio_flightlog_to_engine: {rate / engine:.2f}")
        if total != args.lines or distinct != args.lines:
            print("ERROR: the store does not hold every line exactly once", file=sys.stderr)
            return 1
    finally:
        if args.keep:
            print(f"work_dir: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
