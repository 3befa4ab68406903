"""flightlog against a real peer (VictoriaLogs), same data, same machine, one run.

    python -m benchmarks.peer [--lines 1000000] [--peer ../shared/peers/victoria-logs]
                              [--ephemeral-hosts 0] [--requests 100] [--paced-seconds 15]

Generates realistic lines once (RFC 3339 times over the last two hours, 20 services, 500 hosts
or tens of thousands of ephemeral ones, 2,000 builds interleaved ~20 at a time on their own
runners, 200 deploys, a new trace id every few lines, 3-5 extra attributes, 60-200 character
messages with a few rare words planted), gzips them into 5,000-line NDJSON bodies, then runs
the real `flightlog serve` and the peer binary one after the other on that data:

1. ingest with 4 senders; time from the first byte until every line is queryable (flightlog:
   its inserted-lines counter, which counts lines moved into `logs`; the peer: `* | count()`),
   server CPU-s from /proc/<pid>/stat, peak RSS (VmHWM) of the server process;
2. disk after merges: flightlog stopped, every table OPTIMIZE … FINAL, everything under the data
   dir; the peer: /internal/force_flush + /internal/force_merge, then everything under its dir;
3. restarted (flightlog) / same process (peer): build and deploy trails (1,000 lines max, in
   time order), a rare word over all the data, `level:error service:X` over the last hour:
   p50/p99 over sequential requests after a warm-up, the two systems' requests alternating
   (both servers up and idle), so load from elsewhere falls on both alike;
4. acknowledged → queryable delay at 50% and 90% of each system's own measured peak rate: a
   paced sender whose every body carries one probe line with a unique request id; a poller asks
   for all outstanding probes every 50 ms and records 2xx → first seen.

Prints each figure for both and the ratio flightlog / peer. The peer acknowledges from memory
(no fsync before the 2xx); flightlog acknowledges after its WAL fsync. Without the peer binary
it says so and measures flightlog alone. Absolute figures move with the machine's load (printed).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from benchmarks.ingest import free_port, metric, proc_cpu_seconds, proc_peak_rss, start_server

REPO = Path(__file__).resolve().parent.parent
# ../shared/peers beside the main checkout; a worktree under /work/wt looks one level further up
DEFAULT_PEER = next((p for p in (REPO.parent / "shared" / "peers" / "victoria-logs",
                                 REPO.parent.parent / "shared" / "peers" / "victoria-logs") if p.exists()),
                    REPO.parent / "shared" / "peers" / "victoria-logs")
SENDERS = 4
BODY_LINES = 5_000
SPAN_SECONDS = 2 * 3600

SERVICES = [f"svc-{name}" for name in (
    "api", "web", "worker", "billing", "auth", "search", "gateway", "scheduler", "payments", "orders",
    "inventory", "mailer", "notifier", "reports", "ledger", "profile", "catalog", "cart", "shipping", "ci-runner")]
LEVELS = ("info",) * 78 + ("debug",) * 12 + ("warn",) * 7 + ("error",) * 3
WORDS = (
    "request handled user order payment cache miss hit timeout retry connection pool upstream downstream "
    "latency queue message job started finished failed ok step compile test link upload artifact checkout "
    "fetch resolve dependency container image pull push layer digest rollout replica healthy unhealthy probe "
    "session token refresh expired invalid accepted rejected commit rollback transaction lock acquired released "
    "shard partition leader follower elected heartbeat missed gc pause heap alloc bytes rows scanned written"
).split()
RARE_WORDS = ("quokkaflux", "zephyrine", "brambleshard", "vortexquill", "mirthwaltz")
ATTR_POOL = ("http.status", "duration_ms", "region", "user_id", "k8s.namespace", "version", "status", "attempt")


@dataclass
class Dataset:
    lines: list[bytes]
    builds: list[str]
    deploys: list[str]
    rare: tuple[str, ...]
    service_for_errors: str
    first: datetime
    last: datetime
    days: list[str] = field(default_factory=list)


def generate(n: int, seed: int = 15, ephemeral_hosts: int = 0) -> Dataset:
    """N lines, deterministic for (n, seed, ephemeral_hosts) apart from the time they end at (now)."""
    rng = random.Random(seed)
    end = datetime.now(UTC) - timedelta(seconds=30)
    start = end - timedelta(seconds=SPAN_SECONDS)
    hosts = ([f"pod-{rng.getrandbits(40):010x}" for _ in range(ephemeral_hosts)] if ephemeral_hosts
             else [f"host-{i:03d}" for i in range(500)])
    n_builds, n_deploys = 2000, 200
    builds = [f"bld-{i:06d}" for i in range(n_builds)]
    deploys = [f"dep-{i:04d}" for i in range(n_deploys)]
    runners = [[hosts[rng.randrange(len(hosts))] for _ in range(rng.randint(1, 3))] for _ in builds]
    build_service = [SERVICES[rng.randrange(len(SERVICES))] for _ in builds]
    deploy_services = [rng.sample(SERVICES, 3) for _ in deploys]
    rare_at = {rng.randrange(n): RARE_WORDS[k % len(RARE_WORDS)] for k in range(len(RARE_WORDS) * 8)}
    trace = f"{rng.getrandbits(128):032x}"
    trace_left = 0
    out = []
    for i in range(n):
        if trace_left == 0:
            trace, trace_left = f"{rng.getrandbits(128):032x}", rng.randint(2, 8)
        trace_left -= 1
        t = start + timedelta(microseconds=i * SPAN_SECONDS * 1_000_000 // n + rng.randrange(1000))
        line: dict[str, object] = {"timestamp": t.isoformat(timespec="microseconds").replace("+00:00", "Z")}
        # ~20 builds run at once: the build of line i is near its position in the run
        kind = rng.random()
        if kind < 0.5:
            b = min(n_builds - 1, max(0, i * n_builds // n + rng.randint(-10, 10)))
            line["service"], line["host"], line["build_id"] = build_service[b], rng.choice(runners[b]), builds[b]
        else:
            line["service"], line["host"] = SERVICES[rng.randrange(len(SERVICES))], hosts[rng.randrange(len(hosts))]
            if kind > 0.7:  # a deploy rolling out, ~10 at a time
                d = min(n_deploys - 1, max(0, i * n_deploys // n + rng.randint(-5, 5)))
                line["deploy_id"], line["service"] = deploys[d], rng.choice(deploy_services[d])
        line["level"] = rng.choice(LEVELS)
        line["trace_id"] = trace
        line["span_id"] = f"{rng.getrandbits(64):016x}"
        words = []
        target = rng.randint(60, 200)
        while sum(map(len, words)) + len(words) < target:
            words.append(rng.choice(WORDS) if rng.random() < 0.85 else str(rng.randrange(100_000)))
        if i in rare_at:
            words.insert(rng.randrange(len(words)), rare_at[i])
        line["message"] = " ".join(words)[:200]
        for key in rng.sample(ATTR_POOL, rng.randint(3, 5)):
            line[key] = _attr_value(rng, key)
        out.append(orjson.dumps(line))
    days = sorted({(start + timedelta(seconds=s)).strftime("%Y%m%d") for s in (0, SPAN_SECONDS)})
    return Dataset(out, builds, deploys, RARE_WORDS, SERVICES[0], start, end, days)


def _attr_value(rng: random.Random, key: str) -> str:
    if key == "http.status":
        return rng.choice(("200",) * 8 + ("404", "500"))
    if key == "duration_ms":
        return str(rng.randrange(5000))
    if key == "region":
        return rng.choice(("eu-west-1", "us-east-1", "ap-south-1"))
    if key == "user_id":
        return f"u{rng.randrange(50_000)}"
    if key == "k8s.namespace":
        return rng.choice(("prod", "staging", "ci"))
    if key == "version":
        return f"1.{rng.randrange(40)}.{rng.randrange(10)}"
    if key == "status":
        return rng.choice(("running", "passed", "failed"))
    return str(rng.randint(1, 3))


# ---------------------------------------------------------------- the two systems


class System:
    """One server process: how to start it, send to it, ask it and measure it."""

    name: str
    proc: subprocess.Popen | None = None
    url: str = ""
    ingest_path: str = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.data_dir = work / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def disk_bytes(self) -> int:
        """Bytes of every file under the data dir, each hard link once (a partition moved from
        one table to another is hard-linked until the old part is cleaned up)."""
        seen: dict[tuple[int, int], int] = {}
        for p in self.data_dir.rglob("*"):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                seen[(st.st_dev, st.st_ino)] = st.st_size
        return sum(seen.values())


class Flightlog(System):
    name = "flightlog"
    ingest_path = "/api/v1/logs"

    def __init__(self, work: Path, flags: list[str]) -> None:
        super().__init__(work)
        self.flags = flags

    def start(self) -> None:
        self.proc, self.url = start_server(self.data_dir, ["--wal-fsync", "always", *self.flags])

    async def queryable(self, session, total: int) -> int:
        async with session.get(self.url + "/metrics") as resp:
            return int(metric(await resp.text(), "flightlog_ingest_lines_inserted_total"))

    def merge(self) -> None:
        """Stop the server, merge every table to one part per partition, as background merges
        eventually would, and leave the store closed."""
        self.stop()
        from flightlog.schema.embedded import EmbeddedStore

        store = EmbeddedStore(self.data_dir)
        try:
            tables = store.query(
                "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree%'"
            ).rows
            for (table,) in tables:
                store.command(f"OPTIMIZE TABLE `{table}` FINAL")
            # merged-away parts stay until the engine's cleanup thread (every 30 s or so) removes
            # them, as it does in a running server; wait for that, bounded (a few empty parts
            # left by partition moves stay, a few KB)
            started = time.monotonic()
            while time.monotonic() - started < 150 and store.query(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE NOT active AND database = currentDatabase()"
            ).scalar() > 1_000_000:
                time.sleep(2)
            self.outdated_wait = time.monotonic() - started
            self.parts = store.query(
                "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), "
                "sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase() "
                "GROUP BY table ORDER BY sum(bytes_on_disk) DESC"
            ).rows
            self.columns = store.query(
                "SELECT table, name, sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.columns "
                "WHERE database = currentDatabase() AND data_compressed_bytes > 0 "
                "GROUP BY table, name ORDER BY sum(data_compressed_bytes) DESC LIMIT 25"
            ).rows
            self.indexes = store.query(
                "SELECT table, name, type, data_compressed_bytes FROM system.data_skipping_indices "
                "WHERE database = currentDatabase() AND data_compressed_bytes > 0 ORDER BY data_compressed_bytes DESC"
            ).rows
        finally:
            store.close()

    def trail(self, kind: str, entity: str) -> tuple[str, dict]:
        return f"/api/v1/{kind}s/{entity}/trail", {"limit": "1000"}

    def word(self, word: str, since: datetime) -> tuple[str, dict]:
        return "/api/v1/search", {"q": word, "from": since.isoformat(), "limit": "100"}

    def errors(self, service: str) -> tuple[str, dict]:
        return "/api/v1/search", {"q": f"level:error service:{service}", "limit": "100"}

    def probes(self, ids: list[str]) -> tuple[str, dict]:
        q = " OR ".join(f"request_id:{i}" for i in ids)
        return "/api/v1/search", {"q": q, "from": "3h", "limit": "1000"}

    @staticmethod
    def found(body: bytes) -> list[str]:
        return [line.get("request_id", "") for line in orjson.loads(body)["lines"]]

    def request(self, path_params: tuple[str, dict]) -> tuple[str, str, dict]:
        path, params = path_params
        return "GET", self.url + path, params


class Victoria(System):
    name = "victorialogs"
    ingest_path = "/insert/jsonline?_stream_fields=service,host&_msg_field=message&_time_field=timestamp"

    def __init__(self, work: Path, binary: Path) -> None:
        super().__init__(work)
        self.binary = binary

    def start(self) -> None:
        port = free_port()
        log = open(self.work / "peer.log", "wb")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(
            [str(self.binary), f"-storageDataPath={self.data_dir}", f"-httpListenAddr=127.0.0.1:{port}",
             "-retentionPeriod=30d"], stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the peer exited: {(self.work / 'peer.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the peer did not start")

    async def queryable(self, session, total: int) -> int:
        data = {"query": "* | count() as n"}
        async with session.post(self.url + "/select/logsql/query", data=data) as resp:
            text = await resp.text()
        return int(orjson.loads(text.splitlines()[0])["n"]) if text.strip() else 0

    def merge(self, days: list[str]) -> None:
        _get(self.url + "/internal/force_flush")
        for day in days:
            _get(self.url + f"/internal/force_merge?partition_prefix={day}")
        # the merge runs in the background; wait for vl_active_force_merges to fall to 0
        deadline = time.monotonic() + 600
        time.sleep(0.5)
        while time.monotonic() < deadline:
            if metric(_get(self.url + "/metrics"), "vl_active_force_merges") == 0:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # old parts are removed just after the merge ends

    def _query(self, q: str) -> tuple[str, str, dict]:
        return "POST", self.url + "/select/logsql/query", {"query": q}

    def trail(self, kind: str, entity: str) -> tuple[str, dict]:
        return f'{kind}_id:"{entity}" | sort by (_time) | limit 1000', {}

    def word(self, word: str, since: datetime) -> tuple[str, dict]:
        return f"{word} | sort by (_time) desc | limit 100", {}

    def errors(self, service: str) -> tuple[str, dict]:
        return f"_time:1h level:error service:{service} | sort by (_time) desc | limit 100", {}

    def probes(self, ids: list[str]) -> tuple[str, dict]:
        return f"_time:3h request_id:in({','.join(ids)}) | fields request_id", {}

    @staticmethod
    def found(body: bytes) -> list[str]:
        return [orjson.loads(line).get("request_id", "") for line in body.splitlines() if line.strip()]

    def request(self, path_params: tuple[str, dict]) -> tuple[str, str, dict]:
        return self._query(path_params[0])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=600) as resp:
        return resp.read().decode()


# ---------------------------------------------------------------- measurements


async def ingest(system: System, bodies: list[bytes], total: int) -> dict:
    import aiohttp

    queue = list(reversed(bodies))
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    retries = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SENDERS)) as session:

        async def sender() -> None:
            nonlocal retries
            while queue:
                body = queue.pop()
                while True:
                    async with session.post(system.url + system.ingest_path, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status in (200, 204):
                            break
                        if resp.status not in (429, 503):
                            raise RuntimeError(f"{system.name} answered {resp.status}: {await resp.text()}")
                        retries += 1
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))

        peak_anon = 0

        async def sample() -> None:
            # VmHWM counts the pages of the engine's 555 MB shared library the process touched
            # (file-backed, reclaimable); anonymous memory is what the work itself holds
            nonlocal peak_anon
            while True:
                peak_anon = max(peak_anon, proc_status_bytes(system.proc.pid, "RssAnon:"))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        cpu0 = proc_cpu_seconds(system.proc.pid)
        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        acked = time.perf_counter()
        deadline = acked + 600
        while await system.queryable(session, total) < total:
            if time.perf_counter() > deadline:
                raise SystemExit(f"{system.name}: not every line queryable after 600 s")
            await asyncio.sleep(0.05)
        done = time.perf_counter()
        cpu = proc_cpu_seconds(system.proc.pid) - cpu0
        sampler.cancel()
    return {"seconds": done - started, "ack_seconds": acked - started, "cpu": cpu,
            "rss": proc_peak_rss(system.proc.pid), "anon": peak_anon,
            "file_rss": proc_status_bytes(system.proc.pid, "RssFile:"), "retries": retries}


def proc_status_bytes(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name):
            return int(line.split()[1]) * 1024
    return 0


async def latencies(systems: list[System], requests: dict[str, list[tuple[str, dict]]]) -> dict[str, list[float]]:
    """Time the requests, sequentially, alternating between the systems request by request, so
    load from elsewhere on the machine falls on both alike. The first five of each warm up."""
    import aiohttp

    out: dict[str, list[float]] = {system.name: [] for system in systems}
    async with aiohttp.ClientSession() as session:
        count = len(requests[systems[0].name])
        schedule = [(k, True) for k in range(min(5, count))] + [(k, False) for k in range(count)]
        for k, warm in schedule:
            for system in systems:
                req = requests[system.name][k]
                method, url, params = system.request(req)
                started = time.perf_counter()
                ctx = session.get(url, params=params) if method == "GET" else session.post(url, data=params)
                async with ctx as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{system.name} {url} {params}: {resp.status} {body[:300]!r}")
                elapsed = time.perf_counter() - started
                if not body.strip(b" \n{}[]"):
                    raise RuntimeError(f"{system.name}: empty answer to {params or req}")
                if not warm:
                    out[system.name].append(elapsed)
    return out


async def paced(system: System, lines: list[bytes], rate: float, seconds: float, tag: str) -> list[float]:
    """Send bodies at `rate` lines/s for `seconds`, one probe line a body; return each probe's
    2xx → first-seen delay. Lines the probes carry are new (request ids unique to this run)."""
    import aiohttp

    n_bodies = max(2, int(rate * seconds / BODY_LINES))
    now = datetime.now(UTC)
    bodies, ids = [], []
    for b in range(n_bodies):
        chunk = lines[(b * BODY_LINES) % max(1, len(lines) - BODY_LINES):][: BODY_LINES - 1]
        probe_id = f"probe-{tag}-{b:05d}"
        probe = orjson.dumps({"timestamp": now.isoformat().replace("+00:00", "Z"), "service": "svc-probe",
                              "host": "probe", "level": "info", "request_id": probe_id, "message": "probe line"})
        bodies.append(gzip.compress(b"\n".join([*chunk, probe]), 1))
        ids.append(probe_id)
    interval = BODY_LINES / rate
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SENDERS + 2)) as session:
        sending = True

        async def send_one(body: bytes, probe_id: str) -> None:
            while True:
                async with session.post(system.url + system.ingest_path, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status in (200, 204):
                        acked[probe_id] = time.perf_counter()
                        return
                    if resp.status not in (429, 503):
                        raise RuntimeError(f"{system.name} answered {resp.status}")
                    await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))

        async def poller() -> None:
            while sending or len(seen) < len(acked):
                waiting = [i for i in acked if i not in seen]
                if waiting:
                    method, url, params = system.request(system.probes(waiting[:50]))
                    ctx = session.get(url, params=params) if method == "GET" else session.post(url, data=params)
                    async with ctx as resp:
                        body = await resp.read()
                    now_t = time.perf_counter()
                    if resp.status != 200:
                        raise RuntimeError(f"{system.name} probe query: {resp.status} {body[:300]!r}")
                    for probe_id in system.found(body):
                        if probe_id in acked and probe_id not in seen:
                            seen[probe_id] = now_t
                await asyncio.sleep(0.05)

        poll = asyncio.create_task(poller())
        started = time.perf_counter()
        tasks = []
        for k, (body, probe_id) in enumerate(zip(bodies, ids, strict=True)):
            delay = started + k * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send_one(body, probe_id)))
        await asyncio.gather(*tasks)
        sending = False
        try:
            await asyncio.wait_for(poll, 60)
        except TimeoutError:
            pass  # a probe never seen counts as an infinite delay
    return [seen[i] - acked[i] if i in seen else float("inf") for i in ids]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------- the run


def load_system(system: System, data: Dataset, bodies: list[bytes]) -> dict:
    """Ingest, measure, merge; the server is left running (idle) for the queries."""
    total = len(data.lines)
    r: dict[str, float] = {}
    system.start()
    res = asyncio.run(ingest(system, bodies, total))
    r["lines_per_s"] = total / res["seconds"]
    r["ack_lines_per_s"] = total / res["ack_seconds"]
    r["cpu_s_per_million"] = res["cpu"] / total * 1e6
    r["peak_rss_mb"] = res["rss"] / 1e6
    r["peak_anon_rss_mb"] = res["anon"] / 1e6
    r["file_rss_mb_after"] = res["file_rss"] / 1e6
    r["retries"] = res["retries"]
    if isinstance(system, Victoria):
        system.merge(data.days)
    else:
        system.merge()
        system.start()
    r["disk_mb"] = system.disk_bytes() / 1e6
    return r


def query_systems(systems: list[System], data: Dataset, requests: int, results: dict[str, dict]) -> None:
    """Latencies of the same requests on every system, interleaved request by request."""
    kinds = {
        "build_trail": lambda s, rng, k: s.trail("build", rng.choice(data.builds)),
        "deploy_trail": lambda s, rng, k: s.trail("deploy", rng.choice(data.deploys)),
        "rare_word": lambda s, rng, k: s.word(data.rare[k % len(data.rare)], data.first),
        "error_search_1h": lambda s, rng, k: s.errors(SERVICES[k % len(SERVICES)]),
    }
    for name, make in kinds.items():
        reqs = {}
        for system in systems:
            rng = random.Random(1)  # the same ids for every system
            reqs[system.name] = [make(system, rng, k) for k in range(requests)]
        values = asyncio.run(latencies(systems, reqs))
        for system in systems:
            results[system.name][f"{name}_p50_ms"] = pct(values[system.name], 50) * 1e3
            results[system.name][f"{name}_p99_ms"] = pct(values[system.name], 99) * 1e3


def pace_system(system: System, data: Dataset, seconds: float, r: dict) -> None:
    for share in (0.5, 0.9):
        delays = asyncio.run(paced(system, data.lines, r["lines_per_s"] * share, seconds, f"{int(share * 100)}"))
        r[f"ack_to_queryable_{int(share * 100)}pct_p50_ms"] = pct(delays, 50) * 1e3
        r[f"ack_to_queryable_{int(share * 100)}pct_p99_ms"] = pct(delays, 99) * 1e3


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--peer", type=Path, default=DEFAULT_PEER, help="the VictoriaLogs binary")
    parser.add_argument("--ephemeral-hosts", type=int, default=0,
                        help="draw hosts from this many ephemeral pod names instead of 500 fixed hosts")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per query kind")
    parser.add_argument("--paced-seconds", type=float, default=15.0, help="length of each paced run; 0 skips them")
    parser.add_argument("--server-flag", action="append", default=[], help="extra flag for flightlog serve")
    parser.add_argument("--only", choices=("flightlog", "peer"), help="measure one system")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="flightlog-peer-"))
    try:
        t0 = time.perf_counter()
        data = generate(args.lines, ephemeral_hosts=args.ephemeral_hosts)
        raw = sum(map(len, data.lines)) + len(data.lines)
        bodies = [gzip.compress(b"\n".join(data.lines[i: i + BODY_LINES]), 1)
                  for i in range(0, len(data.lines), BODY_LINES)]
        print(f"lines: {args.lines} ({raw / 1e6:.0f} MB NDJSON, {sum(map(len, bodies)) / 1e6:.0f} MB gzip in "
              f"{len(bodies)} bodies of {BODY_LINES}; generated in {time.perf_counter() - t0:.0f} s)")
        print(f"hosts: {args.ephemeral_hosts or 500}{' ephemeral' if args.ephemeral_hosts else ''}; "
              f"senders: {SENDERS}; {load()}")
        results: dict[str, dict] = {}
        systems: list[System] = []
        try:
            if args.only != "peer":
                fl = Flightlog(work / "flightlog", args.server_flag)
                systems.append(fl)
                results[fl.name] = load_system(fl, data, bodies)
                print(f"flightlog loaded; {load()}")
                print(f"flightlog waited {fl.outdated_wait:.0f} s for merged-away parts to be removed")
                print("flightlog tables after merges (rows, compressed MB, uncompressed MB, on disk MB):")
                for table, rows, comp, uncomp, disk in fl.parts:
                    print(f"  {table:<16} {rows:>10} {comp / 1e6:8.1f} {uncomp / 1e6:8.1f} {disk / 1e6:8.1f}")
                print("flightlog largest columns (compressed MB, ratio):")
                for table, name, comp, uncomp in fl.columns:
                    print(f"  {table + '.' + name:<28} {comp / 1e6:7.1f} {uncomp / max(comp, 1):5.1f}x")
                print("flightlog skipping indexes (compressed MB):")
                for table, name, kind, comp in fl.indexes:
                    print(f"  {table}.{name} ({kind}) {comp / 1e6:.1f}")
            if args.only != "flightlog":
                if args.peer.is_file() and os.access(args.peer, os.X_OK):
                    vl = Victoria(work / "peer", args.peer)
                    systems.append(vl)
                    results[vl.name] = load_system(vl, data, bodies)
                    print(f"peer loaded; {load()}")
                else:
                    print(f"peer: no executable at {args.peer}; measuring flightlog alone")
            query_systems(systems, data, args.requests, results)
            print(f"queries done; {load()}")
            if args.paced_seconds > 0:
                for system in systems:
                    pace_system(system, data, args.paced_seconds, results[system.name])
        finally:
            for system in systems:
                system.stop()
        print()
        print("VictoriaLogs acknowledges from memory (no fsync before the 2xx); flightlog after its WAL fsync.")
        keys = list(next(iter(results.values())).keys())
        print(f"{'figure':<36} {'flightlog':>12} {'victorialogs':>14} {'ratio':>8}")
        for key in keys:
            a = results.get("flightlog", {}).get(key, float("nan"))
            b = results.get("victorialogs", {}).get(key, float("nan"))
            ratio = a / b if b and b == b and a == a else float("nan")
            print(f"{key:<36} {a:>12.1f} {b:>14.1f} {ratio:>8.2f}")
        print(f"raw_ndjson_mb {raw / 1e6:.0f}; compression flightlog "
              f"{raw / 1e6 / results.get('flightlog', {}).get('disk_mb', float('nan')):.1f}x, peer "
              f"{raw / 1e6 / results.get('victorialogs', {}).get('disk_mb', float('nan')):.1f}x")
        print(load())
    finally:
        if args.keep:
            print(f"work_dir: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
