"""Chaos: kill -9, a full disk and poison lines under load, against the real `flightlog serve`.

    python -m benchmarks.chaos [--rounds 3] [--lines 20000] [--tenants 3] [--request-lines 250]

Each round sends `--lines` lines from one sender per tenant (each its own ingest key), every
line naming its tenant and a unique id, every request with an Idempotency-Key and retried
until acknowledged. The rounds take turns:
  kill     SIGKILL the server mid-round, restart it on the same data dir;
  diskfull fill the WAL's file system mid-round (a small tmpfs mounted on the WAL directory
           when run as root; without root this round is skipped and said so), hold it
           full for a moment, free it, then SIGKILL and restart;
  poison   one request per tenant carries a line the store cannot hold (a timestamp past its
           range: the parser refuses it for its line), and while the killed server is down a
           WAL segment of simple lines holding one the engine's JSON reader refuses (a key
           twice) among good ones is left for the restart to replay (the inserter must
           quarantine it and store the rest).
At the end the server stops cleanly and the store is read directly. It prints one count a line:
lost (acknowledged, not stored), duplicated (stored more than once), misattributed (stored under
another tenant), stuck (WAL segments left after a clean stop), poison stored, quarantined.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import orjson

from benchmarks.ingest import start_server

POISON_TIME = "99999999999999999999999999"
TMPFS_BYTES = 64 << 20


class Load:
    """One sender thread per tenant; each request is retried with its key until acknowledged."""

    def __init__(self, keys: dict[str, str], request_lines: int) -> None:
        self.keys = keys
        self.request_lines = request_lines
        self.url = ""
        self.acked: dict[str, set[str]] = {t: set() for t in keys}
        self.poison_sent = 0
        self.poison_planted = 0
        self.poison_wanted: Counter[str] = Counter()
        self.budget = 0  # lines each sender may still start this round
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._next = 0
        self.stop = threading.Event()

    def acked_total(self) -> int:
        return sum(map(len, self.acked.values()))

    def _request(self, tenant: str) -> tuple[list[str], bytes, bool]:
        with self._lock:
            start, self._next = self._next, self._next + self.request_lines
            poison = self.poison_wanted[tenant] > 0
            if poison:
                self.poison_wanted[tenant] -= 1
        uids = [f"u{start + i}" for i in range(self.request_lines)]
        lines = [orjson.dumps({"msg": f"{tenant}|{uid}", "uid": uid, "tenant_tag": tenant}) for uid in uids]
        if poison:
            lines.insert(len(lines) // 2, orjson.dumps({"msg": f"{tenant}|poison", "time": POISON_TIME}))
        return uids, b"\n".join(lines), poison

    def sender(self, tenant: str) -> None:
        while not self.stop.is_set():
            with self._lock:
                if self.budget <= 0:
                    go = False
                else:
                    self.budget -= self.request_lines
                    go = True
            if not go:
                time.sleep(0.05)
                continue
            uids, body, poison = self._request(tenant)
            headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {self.keys[tenant]}",
                       "Idempotency-Key": uuid.uuid4().hex}
            while not self.stop.is_set():
                status = self._post(body, headers)
                self.statuses[status] += 1
                if 200 <= status < 300:
                    self.acked[tenant].update(uids)
                    self.poison_sent += poison
                    break
                time.sleep(0.2)

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.url + "/api/v1/logs", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            exc.read()
            return exc.code
        except OSError:
            return 0


def make_keys(data_dir: Path, tenants: int) -> dict[str, str]:
    from flightlog.schema.api_keys import KeyFile, new_key

    keys = {}
    for i in range(tenants):
        record, text = new_key(f"tenant-{i}", "ingest", f"chaos-{i}")
        KeyFile(data_dir).add(record)
        keys[f"tenant-{i}"] = text
    return keys


def mount_tmpfs(wal: Path) -> bool:
    if os.geteuid() != 0:
        return False
    wal.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(wal)],
                            capture_output=True)
    return result.returncode == 0


def fill(wal: Path) -> Path:
    """Fill the WAL's file system but for a few KB: the next writes fail part-way."""
    filler = wal / "filler.tmp"
    stat = os.statvfs(wal)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as f:
        try:
            f.write(b"\0" * max(0, free - 2048))
        except OSError:
            pass
    return filler


def plant_poison_segment(wal: Path, load: Load, lines: int = 500) -> None:
    """A segment (in the batcher's own format) with good lines of every tenant and one line per
    tenant the store refuses, as if acknowledged just before the kill."""
    from flightlog.ingest.batcher import FLAT_KIND, Batch
    from flightlog.ingest.chunk import Chunk

    number = time.time_ns() // 1_000_000
    # A segment of simple lines, which the engine reads with its JSON reader: a key twice is a
    # line that reader refuses (the parsers keep such lines off it; this one is planted).
    path = wal / f"{number:016d}-{uuid.uuid4().hex[:8]}-{FLAT_KIND}.ndjson"
    batch = Batch(number=number, path=path, flat=True)
    data = b""
    for tenant in load.keys:
        with load._lock:
            start, load._next = load._next, load._next + lines
        uids = [f"u{start + i}" for i in range(lines)]
        rows = [orjson.dumps({"msg": f"{tenant}|{uid}", "attrs": {"uid": uid}}) for uid in uids]
        rows.insert(lines // 3, b'{"msg":"%s|poison","msg":"twice"}' % tenant.encode())
        data += batch.add_chunk(Chunk(b"\n".join(rows), len(rows), tenant, simple=True))
        load.acked[tenant].update(uids)
        load.poison_planted += 1
    path.write_bytes(data)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=20_000, help="lines per round")
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--request-lines", type=int, default=250)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="flightlog-chaos-"))
    data_dir = work / "data"
    data_dir.mkdir()
    wal = data_dir / "wal"
    tmpfs = mount_tmpfs(wal)
    flags = ["--batch-max-lines", "5000", "--batch-max-age-ms", "100",
             "--wal-max-bytes", str(TMPFS_BYTES // 2)]
    keys = make_keys(data_dir, args.tenants)
    load = Load(keys, args.request_lines)
    proc, load.url = start_server(data_dir, flags)
    threads = [threading.Thread(target=load.sender, args=(t,), daemon=True) for t in keys]
    for t in threads:
        t.start()
    kinds = ("kill", "diskfull", "poison")
    started = time.monotonic()
    try:
        for round_ in range(args.rounds):
            kind = kinds[round_ % len(kinds)]
            target = load.acked_total() + args.lines
            if kind == "poison":
                for tenant in keys:
                    load.poison_wanted[tenant] += 1
            with load._lock:
                load.budget += args.lines
            note = ""
            if kind == "diskfull":
                wait_until(lambda t=target - 3 * args.lines // 4: load.acked_total() >= t, 120)
                if tmpfs:
                    before = load.statuses[503]
                    filler = fill(wal)
                    time.sleep(1.5)  # requests now fail part-way: 503
                    filler.unlink()
                    note = f" ({load.statuses[503] - before} answers 503 while full)"
                else:
                    note = " (skipped: not root, no tmpfs)"
            wait_until(lambda t=target - args.lines // 2: load.acked_total() >= t, 120)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if kind == "poison":
                plant_poison_segment(wal, load)
            proc, load.url = start_server(data_dir, flags)
            reached = wait_until(lambda t=target: load.acked_total() >= t, 180)
            print(f"round {round_ + 1}: {kind}{note}, {load.acked_total()} lines acknowledged so far"
                  + ("" if reached else " (round timed out: load stalled)"), flush=True)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=40)
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stuck = len(list(wal.glob("*.ndjson")))

    from flightlog.schema.embedded import EmbeddedStore

    store = EmbeddedStore(data_dir)
    try:
        rows = store.query("SELECT tenant, message FROM logs").rows
        quarantined = store.query("SELECT count() FROM (SELECT DISTINCT segment, line_no FROM quarantine)").scalar()
    finally:
        store.close()
    seen: Counter[str] = Counter()
    misattributed = 0
    poison_stored = 0
    for tenant, message in rows:
        owner, _, uid = message.partition("|")
        if uid == "poison":
            poison_stored += 1
            continue
        seen[uid] += 1
        misattributed += owner != tenant
    acked = {uid for uids in load.acked.values() for uid in uids}
    lost = len(acked - set(seen))
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    print(f"seconds: {time.monotonic() - started:.1f}")
    print(f"acknowledged: {len(acked)}")
    print(f"stored: {sum(seen.values())}")
    print(f"statuses: {dict(sorted(load.statuses.items()))}")
    print(f"lost: {lost}")
    print(f"duplicated: {duplicated}")
    print(f"misattributed: {misattributed}")
    print(f"stuck: {stuck}")
    print(f"poison acknowledged over HTTP: {load.poison_sent}, planted in the WAL: {load.poison_planted}, "
          f"stored: {poison_stored}, quarantined: {quarantined}")
    if tmpfs:
        subprocess.run(["umount", "-l", str(wal)], capture_output=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"data: {data_dir}")
    return 1 if lost or duplicated or misattributed or stuck or poison_stored else 0


if __name__ == "__main__":
    raise SystemExit(main())
