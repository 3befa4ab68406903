"""The OpenTelemetry Python SDK's OTLP/HTTP log exporter (protobuf, gzip on), unmodified."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402


def ship_with_otel_sdk(url: str, build_id: str) -> tuple[str, str]:
    resource = Resource.create(
        {
            "service.name": "checkout",
            "host.name": "web-7",
            "ci.build.id": build_id,
            "deployment.id": "dep-42",
            "region": "eu-west-1",
        }
    )
    provider = LoggerProvider(resource=resource)
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs", compression=Compression.Gzip, timeout=10)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(f"otel-test-{build_id}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    tracer = TracerProvider(resource=resource).get_tracer("test")
    with tracer.start_as_current_span("pay") as span:
        ctx = span.get_span_context()
        logger.warning("card declined", extra={"order_id": "o-17", "attempt": 2})
    logger.info("order placed")
    provider.shutdown()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


async def test_otel_sdk_lines_arrive_with_resource_trace_and_attributes(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns()
    trace_id, span_id = await asyncio.to_thread(ship_with_otel_sdk, server.url, build_id)
    after = time.time_ns()
    rows = await server.rows(build_id)
    assert [r["message"] for r in rows] == ["card declined", "order placed"]
    first, second = rows
    assert first["service"] == "checkout" and first["host"] == "web-7"
    assert first["deploy_id"] == "dep-42"
    assert first["level"] == "warn" and second["level"] == "info"
    assert before <= int(first["ts_ns"]) <= after
    assert first["trace_id"] == trace_id and first["span_id"] == span_id
    assert first["attrs"]["order_id"] == "o-17"
    assert first["attrs"]["attempt"] == "2"
    assert first["attrs"]["region"] == "eu-west-1"
    assert "ci.build.id" not in first["attrs"] and "service.name" not in first["attrs"]
