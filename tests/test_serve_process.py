"""The real `flightlog serve` process, end to end: start, ship lines, read the build page, stop.

This is the README's promise: a new user pastes the curl example and sees their lines on the
build page; SIGTERM flushes and closes cleanly, and the lines are there after a restart.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flightlog_command() -> list[str]:
    script = Path(sys.executable).parent / "flightlog"
    if script.exists():
        return [str(script)]
    found = shutil.which("flightlog")
    return [found] if found else [sys.executable, "-m", "flightlog.web.cli"]


class ServeProcess:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "FLIGHTLOG_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [*flightlog_command(), "serve", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        self.banner = self._read_banner()

    def _read_banner(self) -> str:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"flightlog serve exited early:\n{''.join(lines)}")
            lines.append(line)
            if "UI:" in line:
                return "".join(lines)
        raise AssertionError(f"no UI address printed:\n{''.join(lines)}")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.tail = out
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path):
    started = []

    def start() -> ServeProcess:
        process = ServeProcess(tmp_path / "data")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def wait_for_lines(server: ServeProcess, build_id: str, count: int) -> dict:
    deadline = time.monotonic() + 30
    while True:
        status, body = server.request("GET", f"/api/v1/builds/{build_id}/trail")
        if status == 200 and len(orjson.loads(body)["lines"]) >= count:
            return orjson.loads(body)
        if time.monotonic() > deadline:
            raise AssertionError(f"lines of {build_id} never arrived: {status} {body[:300]!r}")
        time.sleep(0.1)


def test_serve_takes_lines_and_shows_them_on_the_build_page_then_stops_cleanly(serve):
    server = serve()
    assert f"http://127.0.0.1:{server.port}/" in server.banner
    assert server.request("GET", "/healthz")[0] == 200
    assert server.request("GET", "/readyz")[0] == 200

    body = b'{"msg":"checkout done"}\n{"level":"error","msg":"3 tests failed","suite":"api"}\n'
    status, answer = server.request(
        "POST", "/api/v1/logs?service=ci&host=runner-1&build_id=build-42", body,
        {"Content-Type": "application/x-ndjson"},
    )
    assert status == 200, answer
    assert orjson.loads(answer) == {"accepted": 2, "rejected": 0, "errors": []}

    trail = wait_for_lines(server, "build-42", 2)
    assert [(line["message"], line["level"], line["host"]) for line in trail["lines"]] == [
        ("checkout done", "info", "runner-1"),
        ("3 tests failed", "error", "runner-1"),
    ]
    status, page = server.request("GET", "/builds/build-42", headers={"Accept": "text/html"})
    assert status == 200
    html = page.decode()
    assert "checkout done" in html and "3 tests failed" in html and "runner-1" in html

    assert server.stop() == 0
    assert "shutting down" in server.tail

    # The data directory outlives the process: a restart shows the same build.
    again = serve()
    assert len(wait_for_lines(again, "build-42", 2)["lines"]) == 2
    assert again.stop() == 0


def test_a_second_server_on_the_same_data_dir_refuses_to_start(serve, tmp_path):
    first = serve()
    second = subprocess.run(
        [*flightlog_command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120,
    )
    assert second.returncode != 0
    assert "already owns this data directory" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.stop() == 0
