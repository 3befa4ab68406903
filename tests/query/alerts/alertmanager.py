"""Debian's prometheus-alertmanager, started for a test on a free port with a file config that
routes every alert to a local webhook receiver (group_wait 1s, group_interval 2s)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

BINARY = "/usr/bin/prometheus-alertmanager"

CONFIG = """
route:
  receiver: hook
  group_by: ['alertname', 'host']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def alertmanager(tmp_path: Path, webhook_url: str) -> AsyncIterator[str]:
    if not shutil.which(BINARY):
        pytest.skip("needs Debian's prometheus-alertmanager (apt-get install prometheus-alertmanager)")
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=webhook_url))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                if process.poll() is not None:
                    raise RuntimeError("alertmanager exited: " + (tmp_path / "alertmanager.log").read_text())
                try:
                    async with session.get(url + "/-/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("alertmanager did not become ready in 10 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
