"""The issue's scenario on the real `flightlog serve` with a real full disk (a small tmpfs on
the WAL directory; root only, else skipped — test_disk_full.py simulates ENOSPC without root):
a request hits the full disk (503), space returns, two other tenants are acknowledged, kill -9;
after the restart each tenant has exactly its acknowledged lines and the 503 request has none."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request

import orjson
import pytest
from flightlog.schema.api_keys import KeyFile, new_key
from flightlog.schema.embedded import EmbeddedStore

from tests.ingest.serve import Server

TMPFS = 8 << 20
LINES = 400


def post(url: str, key: str, tag: str) -> int:
    body = b"\n".join(orjson.dumps({"msg": f"{tag}-{i}", "extra": {"i": i}}) for i in range(LINES))
    request = urllib.request.Request(url + "/api/v1/logs", data=body, method="POST", headers={
        "Content-Type": "application/x-ndjson", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def ready(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def wal_on_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    wal = tmp_path / "data" / "wal"
    wal.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS}", "tmpfs", str(wal)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield wal
    subprocess.run(["umount", "-l", str(wal)])


def test_a_full_disk_then_kill_keeps_each_tenants_lines_under_that_tenant(tmp_path, wal_on_tmpfs):
    data_dir = tmp_path / "data"
    keys = {}
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        record, keys[tenant] = new_key(tenant, "ingest", tenant)
        KeyFile(data_dir).add(record)
    # Inserts wait (a long batch age), so the kill finds the lines in the WAL.
    server = Server(data_dir, "--batch-max-age-ms", "600000", "--wal-max-bytes", str(TMPFS)).start()
    try:
        assert post(server.url, keys["tenant-a"], "a-ok") == 200
        stat = os.statvfs(wal_on_tmpfs)
        filler = wal_on_tmpfs / "filler.tmp"
        with filler.open("wb") as f:
            f.write(b"\0" * (stat.f_bavail * stat.f_frsize - 4096))
        assert post(server.url, keys["tenant-a"], "a-refused") == 503
        assert ready(server.url) == 503
        filler.unlink()
        assert ready(server.url) == 200
        assert post(server.url, keys["tenant-b"], "b") == 200
        assert post(server.url, keys["tenant-c"], "c") == 200
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    finally:
        server.kill()
    Server(data_dir, port=server.port).start().stop()
    store = EmbeddedStore(data_dir)
    try:
        rows = store.query("SELECT tenant, message FROM logs").rows
    finally:
        store.close()
    got: dict[str, set[str]] = {}
    for tenant, message in rows:
        got.setdefault(tenant, set()).add(message)
    assert len(rows) == 3 * LINES
    assert got == {
        "tenant-a": {f"a-ok-{i}" for i in range(LINES)},
        "tenant-b": {f"b-{i}" for i in range(LINES)},
        "tenant-c": {f"c-{i}" for i in range(LINES)},
    }
