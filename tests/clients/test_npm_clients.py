"""npm clients, unmodified, run by node from tests/clients/js (`npm ci` there installs them):
winston-loki (Loki protobuf + raw snappy) and @opentelemetry/exporter-logs-otlp-http (OTLP/JSON, gzip)."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import pytest

JS = Path(__file__).with_name("js")

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(not (JS / "node_modules").is_dir(), reason="run `npm ci` in tests/clients/js first"),
]


async def run_node(mode: str, url: str, build_id: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "ship.js"),
        mode,
        url,
        build_id,
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode()[-3000:]


async def test_winston_loki_protobuf_snappy_lines_arrive_with_labels(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns() - 1_000_000  # winston stamps milliseconds
    await run_node("winston-loki", server.url, build_id)
    after = time.time_ns()
    rows = await server.rows(build_id)
    # winston-loki writes "message {meta as JSON}"
    assert [r["message"].split(" {")[0].rstrip() for r in rows] == ["upstream slow", "upstream recovered"]
    assert '"latency_ms":950' in rows[0]["message"]
    first, second = rows
    assert (first["service"], first["host"]) == ("gateway", "edge-2")
    assert (first["level"], second["level"]) == ("warn", "info")
    assert before <= int(first["ts_ns"]) <= after


async def test_opentelemetry_js_otlp_json_lines_arrive_with_hex_ids(server):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    before = time.time_ns() - 1_000_000
    await run_node("otlp-json", server.url, build_id)
    after = time.time_ns()
    rows = await server.rows(build_id)
    assert len(rows) == 2
    first, second = rows
    assert first["message"] == "render failed"
    assert second["message"] in ('{"event":"hydrate","ms":12}', '{"ms":12,"event":"hydrate"}')
    assert (first["service"], first["host"]) == ("frontend", "frontend-6d9f-x2")
    assert (first["level"], second["level"]) == ("error", "debug")
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["span_id"] == "00f067aa0ba902b7"
    assert first["deploy_id"] == "dep-9"
    assert before <= int(first["ts_ns"]) <= after
    assert first["attrs"]["http.route"] == "/cart"
    assert first["attrs"]["otel.scope.name"] == "web"
