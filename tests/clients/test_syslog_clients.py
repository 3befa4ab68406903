"""Syslog from the stdlib's SysLogHandler (UDP and TCP) and util-linux `logger` (RFC 5424 and
RFC 3164, TCP with octet counting), unmodified, into the syslog listeners."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import shutil
import socket
import time
import uuid

import pytest


def ship_with_syslog_handler(port: int, socktype: int, build_id: str) -> None:
    handler = logging.handlers.SysLogHandler(
        address=("127.0.0.1", port), facility=logging.handlers.SysLogHandler.LOG_LOCAL3, socktype=socktype
    )
    # Configuration, not a change to the client: an RFC 5424 header with structured data after <PRI>.
    handler.setFormatter(
        logging.Formatter(f'1 - worker-5 ingestor - - [ci@32473 build_id="{build_id}" stage="test"] %(message)s')
    )
    logger = logging.getLogger(f"syslog-{build_id}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    logger.error("disk almost full")
    logger.info("compaction done")
    handler.close()


@pytest.mark.parametrize("socktype", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
async def test_stdlib_syslog_handler_lines_arrive_with_structured_data(server, socktype):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    port = server.syslog_udp if socktype == socket.SOCK_DGRAM else server.syslog_tcp
    before = time.time_ns()
    await asyncio.to_thread(ship_with_syslog_handler, port, socktype, build_id)
    rows = await wait_for_rows(server, build_id, 2)
    after = time.time_ns()
    assert [r["message"] for r in rows] == ["disk almost full", "compaction done"]
    first, second = rows
    assert (first["service"], first["host"]) == ("ingestor", "worker-5")
    assert (first["level"], second["level"]) == ("error", "info")
    assert before <= int(first["ts_ns"]) <= after  # no timestamp sent: the arrival time
    assert first["attrs"]["stage"] == "test"
    assert first["attrs"]["syslog.facility"] == "local3"


async def wait_for_rows(server, build_id: str, count: int, timeout: float = 5.0) -> list[dict]:
    """Syslog has no acknowledgement: wait until the listener has handed the lines on."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await server.rows(build_id)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


@pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger (Debian: bsdutils) is not installed")
async def test_util_linux_logger_rfc5424_octet_counted_over_tcp(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns()
    proc = await asyncio.create_subprocess_exec(
        "logger",
        "--rfc5424",
        "--octet-count",
        "-T",
        "-n",
        "127.0.0.1",
        "-P",
        str(server.syslog_tcp),
        "-t",
        "deployer",
        "-p",
        "daemon.warning",
        "--msgid",
        "ROLLOUT",
        "--sd-id",
        "deploy@32473",
        "--sd-param",
        f'build_id="{build_id}"',
        "--sd-param",
        'deploy_id="d-77"',
        "rolling out to canary",
    )
    assert await proc.wait() == 0
    after = time.time_ns()
    rows = await wait_for_rows(server, build_id, 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["message"] == "rolling out to canary"
    assert row["service"] == "deployer" and row["host"] == socket.gethostname()
    assert row["level"] == "warn" and row["deploy_id"] == "d-77"
    assert before - 1_000_000 <= int(row["ts_ns"]) <= after  # logger stamps microseconds
    assert row["attrs"]["syslog.msgid"] == "ROLLOUT"
    assert row["attrs"]["syslog.facility"] == "daemon"


@pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger (Debian: bsdutils) is not installed")
async def test_util_linux_logger_rfc3164_octet_counted_over_tcp(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns() // 1_000_000_000 * 1_000_000_000  # RFC 3164 has whole seconds
    proc = await asyncio.create_subprocess_exec(
        "logger",
        "--rfc3164",
        "--octet-count",
        "-T",
        "-n",
        "127.0.0.1",
        "-P",
        str(server.syslog_tcp),
        "-t",
        "ci-runner",
        "-p",
        "user.err",
        f"tests failed build_id={build_id} suite=unit",
    )
    assert await proc.wait() == 0
    after = time.time_ns()
    rows = await wait_for_rows(server, build_id, 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["message"] == f"tests failed build_id={build_id} suite=unit"
    assert row["service"] == "ci-runner" and row["host"] == socket.gethostname()
    assert row["level"] == "error"
    assert before <= int(row["ts_ns"]) <= after
    assert row["attrs"]["syslog.facility"] == "user"
