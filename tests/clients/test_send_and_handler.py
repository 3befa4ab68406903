"""`flightlog send` and FlightlogHandler: our own clients, against the server and against stubs
that refuse (429 with Retry-After, 400)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid

from aiohttp import web
from flightlog.ingest.logging_handler import FlightlogHandler


async def flightlog_send(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI_BUILD_ID", "GITHUB_RUN_ID", "BUILD_ID", "DEPLOY_ID")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flightlog.web.cli",
        "send",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out, err


async def test_send_ships_stdin_tagged_from_ci_variables_and_tees(server):
    build_id = f"gh-{uuid.uuid4().hex[:8]}"
    before = time.time_ns()
    status, out, err = await flightlog_send(
        "--url",
        server.url,
        "--service",
        "ci",
        "--tee",
        "--tag",
        "job=lint",
        stdin=b"step 1: checkout\n\nstep 2: lint \xe2\x9c\x93\n",
        env={"GITHUB_RUN_ID": build_id, "HOSTNAME": "runner-4"},
    )
    assert status == 0, err.decode()
    assert out == b"step 1: checkout\n\nstep 2: lint \xe2\x9c\x93\n"
    rows = await server.rows(build_id)
    assert [r["message"] for r in rows] == ["step 1: checkout", "step 2: lint ✓"]
    assert {(r["service"], r["host"]) for r in rows} == {("ci", "runner-4")}
    assert before <= int(rows[0]["ts_ns"]) <= int(rows[1]["ts_ns"]) <= time.time_ns()
    assert rows[0]["attrs"]["job"] == "lint"


async def test_send_runs_a_command_and_ships_its_output_and_exit_status(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    script = (
        "import sys; print('compiling'); sys.stdout.flush(); print('warning: unused', file=sys.stderr); sys.exit(3)"
    )
    status, out, err = await flightlog_send(
        "--url", server.url, "--build-id", build_id, "--", sys.executable, "-c", script
    )
    assert status == 3, err.decode()
    rows = await server.rows(build_id)
    by_message = {r["message"]: r for r in rows}
    assert by_message["compiling"]["attrs"]["stream"] == "stdout"
    assert by_message["warning: unused"]["attrs"]["stream"] == "stderr"
    last = rows[-1]
    assert last["message"].endswith("exited with status 3")
    assert last["level"] == "error" and last["attrs"]["exit_code"] == "3"


async def stub(aiohttp_server, answers: list[tuple[int, dict[str, str]]]):
    """A server answering /api/v1/logs with the given statuses in turn; records what it got."""
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp inflates the gzip
        seen.append(
            {
                "at": time.monotonic(),
                "body": body,
                "encoding": request.headers.get("Content-Encoding"),
                "query": dict(request.query),
            }
        )
        status, headers = answers[min(len(seen) - 1, len(answers) - 1)]
        return web.json_response({"accepted": 0}, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/api/v1/logs", handle)
    return await aiohttp_server(app), seen


async def test_send_retries_429_after_the_retry_after_it_was_given(aiohttp_server):
    srv, seen = await stub(aiohttp_server, [(429, {"Retry-After": "1"}), (200, {})])
    status, _, err = await flightlog_send("--url", str(srv.make_url("/")), "--build-id", "b-1", stdin=b"one\ntwo\n")
    assert status == 0, err.decode()
    assert len(seen) == 2
    assert seen[1]["at"] - seen[0]["at"] >= 0.9
    assert seen[0]["encoding"] == "gzip" and seen[1]["body"].count(b"\n") == 1
    assert seen[1]["query"]["build_id"] == "b-1"


async def test_send_exits_non_zero_when_lines_are_refused(aiohttp_server):
    srv, seen = await stub(aiohttp_server, [(400, {})])
    status, _, err = await flightlog_send("--url", str(srv.make_url("/")), stdin=b"one\n")
    assert status == 1
    assert b"not delivered" in err and len(seen) == 1


async def test_send_exits_non_zero_when_the_server_is_unreachable():
    status, _, err = await flightlog_send("--url", "http://127.0.0.1:9", "--max-retry-seconds", "1", stdin=b"x\n")
    assert status == 1 and b"not delivered" in err


def log_with_handler(url: str, build_id: str) -> None:
    handler = FlightlogHandler(url, service="orders", host="app-2", build_id=build_id, batch_seconds=0.1)
    logger = logging.getLogger(f"handler-{build_id}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    logger.warning("stock low", extra={"sku": "A-1", "request_id": "req-7"})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("reservation failed")
    handler.close()


async def test_logging_handler_ships_records_with_extras(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns()
    await asyncio.to_thread(log_with_handler, server.url, build_id)
    rows = await server.rows(build_id)
    assert [r["message"].split("\n")[0] for r in rows] == ["stock low", "reservation failed"]
    first, second = rows
    assert (first["service"], first["host"], first["level"]) == ("orders", "app-2", "warn")
    assert before <= int(first["ts_ns"]) <= time.time_ns()
    assert first["request_id"] == "req-7" and first["attrs"]["sku"] == "A-1"
    assert second["level"] == "error" and "ValueError: boom" in second["message"]


def test_logging_handler_never_blocks_when_the_server_is_gone():
    handler = FlightlogHandler("http://127.0.0.1:9", max_queue=50, batch_seconds=0.05, max_retry_seconds=0.5)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "line %d", (1,), None)
    started = time.monotonic()
    for _ in range(5000):
        handler.emit(record)
    assert time.monotonic() - started < 1.0
    assert handler.dropped > 0
    handler.close()
