"""Alert evaluation at scale: 200 search rules at a 30 s interval over 10M rows.

    python benchmarks/alerts.py [--rows 10000000] [--rules 200] [--interval 30] [--rounds 3]
                                [--probes 3] [--data-dir DIR]

Lines are generated inside the engine (INSERT … SELECT FROM numbers(), through the same
materialized views as ingest), spread over the last hour: 200 hosts in 10 services, 1 % errors.
The rules are a rules file loaded by a real app (ingest + query roles, in this process, on a
real port): each `level:error service:svc-K` over 5 minutes, every third grouped by host, each
with a webhook channel to a local receiver. The app runs `--rounds` intervals; then, for each
probe, one line is POSTed to /api/v1/logs and the time from its 2xx to the receiver getting the
alert is measured (a probe rule evaluates on the same interval as the others).

Prints: per-rule evaluation p50/p99/max (ms), evaluations done, the process CPU share while the
evaluator runs (CPU seconds per wall second, of one core; the process does nothing else), and the
probe delays with the target (interval + 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiohttp import web

HOSTS = 200
SERVICES = 10


def generate(store, rows: int, chunk: int = 1_000_000) -> float:
    now_ns = time.time_ns()
    span_ns = 3600 * 10**9
    step = max(span_ns // rows, 1)
    start_ns = now_ns - span_ns
    started = time.perf_counter()
    for at in range(0, rows, chunk):
        count = min(chunk, rows - at)
        store.command(f"""
INSERT INTO logs
SELECT fromUnixTimestamp64Nano(toInt64({start_ns} + n * {step}), 'UTC') AS ts, ts AS observed_ts, n + 1 AS seq,
  'default' AS tenant, concat('svc-', toString(h % {SERVICES})) AS service,
  concat('host-', leftPad(toString(h), 3, '0')) AS host,
  multiIf(n % 100 = 0, 'error', n % 19 = 0, 'warn', 'info') AS level,
  concat('handled request ', toString(n % 977), ' on host ', toString(h)) AS message,
  '' AS build_id, '' AS deploy_id, '' AS trace_id, '' AS span_id, '' AS request_id,
  map('http.status', toString(200 + (n % 5) * 100)) AS attrs
FROM (SELECT number AS n, toUInt32(number % {HOSTS}) AS h FROM numbers({at}, {count}))
SETTINGS max_insert_threads = 1""")
    return time.perf_counter() - started


def rules_yaml(rules: int, interval: int, hook: str) -> str:
    out = ["rules:"]
    for i in range(rules):
        group = "\n    group_by: [host]" if i % 3 == 0 else ""
        out.append(f"""  - name: errors {i:03d}
    query: level:error service:svc-{i % SERVICES}
    window: 5m
    interval: {interval}s
    condition: count > 1000000{group}
    channels:
      - type: webhook
        url: {hook}""")
    out.append(f"""  - name: probe
    query: level:fatal benchmarkprobe
    window: 5m
    interval: {interval}s
    condition: count > 0
    group_by: [request_id]
    channels:
      - type: webhook
        url: {hook}""")
    return "\n".join(out) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probes", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    from flightlog.query.alerts import evaluate as evaluate_mod
    from flightlog.query.alerts import scheduler as scheduler_mod
    from flightlog.schema.embedded import EmbeddedStore
    from flightlog.schema.migrate import apply_migrations
    from flightlog.schema.settings import Settings
    from flightlog.web.server import create_app

    work = args.data_dir or Path(tempfile.mkdtemp(prefix="flightlog-alerts-bench-"))
    store = EmbeddedStore(work / "data")
    apply_migrations(store, 30)
    seconds = generate(store, args.rows)
    errors = store.query("SELECT count(), countIf(level = 'error') FROM logs").rows[0]
    print(f"load: {int(errors[0]):,} rows ({int(errors[1]):,} errors) in {seconds:.1f} s", flush=True)

    # the webhook receiver: when each probe's alert arrives
    arrivals: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        for alert in body["alerts"]:
            request_id = alert["labels"].get("request_id")
            if request_id and body["status"] == "firing":
                arrivals.setdefault(request_id, time.monotonic())
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    receiver_runner = web.AppRunner(receiver)
    await receiver_runner.setup()
    receiver_site = web.TCPSite(receiver_runner, "127.0.0.1", 0)
    await receiver_site.start()
    hook_url = f"http://127.0.0.1:{receiver_site._server.sockets[0].getsockname()[1]}/hook"

    rules_file = work / "rules.yml"
    rules_file.write_text(rules_yaml(args.rules, args.interval, hook_url))
    settings = dataclasses.replace(Settings.from_values({"data_dir": str(work / "data"), "port": 0}),
                                   rules=str(rules_file))

    durations: list[float] = []
    real_evaluate = evaluate_mod.evaluate

    def timed(*a, **kw):
        started = time.perf_counter()
        try:
            return real_evaluate(*a, **kw)
        finally:
            durations.append(time.perf_counter() - started)

    scheduler_mod.evaluate = timed
    app = create_app(settings, store=store)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        cpu0, wall0 = _cpu(), time.monotonic()
        await asyncio.sleep(args.rounds * args.interval)
        cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
        if durations:
            ms = sorted(d * 1000 for d in durations)
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(f"evaluations: {len(ms)} over {wall:.0f} s ({args.rules + 1} rules, every {args.interval} s)")
            print(f"evaluation per rule p50: {statistics.median(ms):.1f} ms")
            print(f"evaluation per rule p99: {p99:.1f} ms")
            print(f"evaluation per rule max: {ms[-1]:.1f} ms")
        print(f"evaluator CPU share: {cpu / wall:.3f} of one core ({cpu / wall / (os.cpu_count() or 1):.3f} of the machine)")

        import aiohttp

        delays = []
        async with aiohttp.ClientSession() as session:
            for i in range(args.probes):
                request_id = f"probe-{i}-{time.time_ns()}"
                line = orjson.dumps({"level": "fatal", "msg": "benchmarkprobe fired", "request_id": request_id})
                async with session.post(f"http://127.0.0.1:{port}/api/v1/logs", data=line) as response:
                    assert response.status == 200, await response.text()
                    acked = time.monotonic()
                deadline = acked + args.interval * 3 + 30
                while request_id not in arrivals and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                if request_id in arrivals:
                    delays.append(arrivals[request_id] - acked)
                    print(f"probe {i}: 2xx → webhook {delays[-1]:.2f} s", flush=True)
                else:
                    print(f"probe {i}: no alert within {deadline - acked:.0f} s", flush=True)
        if delays:
            print(f"delay 2xx → webhook max: {max(delays):.2f} s (target ≤ {args.interval + 2} s: "
                  f"{'met' if max(delays) <= args.interval + 2 else 'MISSED'})")
    finally:
        await runner.cleanup()
        await receiver_runner.cleanup()
        store.close()
        if args.data_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
