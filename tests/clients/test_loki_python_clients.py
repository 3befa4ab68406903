"""python-logging-loki (JSON push, both payload versions) and loki-logger-handler (gzip JSON), unmodified."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

logging_loki = pytest.importorskip("logging_loki")
loki_logger_handler = pytest.importorskip("loki_logger_handler.loki_logger_handler")


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    return logger


def ship_with_python_logging_loki(url: str, build_id: str, version: str) -> None:
    handler = logging_loki.LokiHandler(
        url=f"{url}/loki/api/v1/push",
        tags={"service_name": "billing", "host": "db-3", "build_id": build_id, "env": "staging"},
        version=version,
    )
    logger = _logger(f"loki-{build_id}", handler)
    logger.error("invoice failed", extra={"tags": {"customer": "c-9"}})
    logger.info("invoice sent")
    handler.close()


@pytest.mark.parametrize("version", ["1", "0"], ids=["values", "legacy-entries"])
async def test_python_logging_loki_lines_arrive_with_labels(server, version):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns() - 1_000_000  # the legacy shape carries microseconds
    await asyncio.to_thread(ship_with_python_logging_loki, server.url, build_id, version)
    after = time.time_ns()
    rows = await server.rows(build_id)
    assert [r["message"] for r in rows] == ["invoice failed", "invoice sent"]
    first, second = rows
    assert (first["service"], first["host"]) == ("billing", "db-3")
    assert (first["level"], second["level"]) == ("error", "info")
    assert before <= int(first["ts_ns"]) <= after
    assert first["attrs"]["env"] == "staging"
    assert first["attrs"]["customer"] == "c-9"
    assert first["attrs"]["logger"] == f"loki-{build_id}"


def ship_with_loki_logger_handler(url: str, build_id: str) -> None:
    handler = loki_logger_handler.LokiLoggerHandler(
        url=f"{url}/loki/api/v1/push",
        labels={"application": "search", "hostname": "idx-1", "build_id": build_id},
        label_keys={},
        timeout=0.2,
        compressed=True,
        enable_self_errors=True,
    )
    logger = _logger(f"lokih-{build_id}", handler)
    logger.warning("slow query", extra={"duration_ms": 812, "request_id": "r-55"})
    logger.debug("cache miss")
    handler._send()  # what its atexit hook does: send what is buffered now


async def test_loki_logger_handler_gzip_json_lines_arrive_with_fields(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns()
    await asyncio.to_thread(ship_with_loki_logger_handler, server.url, build_id)
    after = time.time_ns()
    rows = await server.rows(build_id)
    assert [r["message"] for r in rows] == ["slow query", "cache miss"]
    first, second = rows
    assert (first["service"], first["host"]) == ("search", "idx-1")
    assert (first["level"], second["level"]) == ("warn", "debug")
    assert before <= int(first["ts_ns"]) <= after
    assert first["request_id"] == "r-55"
    assert first["attrs"]["duration_ms"] == "812"
    assert first["attrs"]["name"] == f"lokih-{build_id}"
