"""elasticsearch-py helpers.bulk, 8.x and 9.x lines, unmodified, against the _bulk endpoint.

8.x is the test extra's; 9.x cannot share its environment, so it lives in a `pip install
--target` directory: $FLIGHTLOG_ES9_PATH, else ~/.cache/flightlog-tests/elasticsearch9
(.ci/run fills it; this test fills it when it is missing).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

CLIENT = Path(__file__).with_name("es_bulk_client.py")
ES9_DIR = Path(os.environ.get("FLIGHTLOG_ES9_PATH") or Path.home() / ".cache/flightlog-tests/elasticsearch9")


def es9_path() -> str:
    if not (ES9_DIR / "elasticsearch").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(ES9_DIR), "elasticsearch>=9,<10"],
            check=True,
            timeout=300,
        )
    return str(ES9_DIR)


def client_env(major: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if major == 9:
        env["PYTHONPATH"] = es9_path()
    return env


@pytest.mark.parametrize(("major", "prefix"), [(8, ""), (9, ""), (9, "/es")], ids=["8.x", "9.x", "9.x-under-/es"])
async def test_elasticsearch_py_bulk_documents_arrive_mapped_from_ecs(server, major, prefix):
    if major == 8:
        pytest.importorskip("elasticsearch")
        import elasticsearch

        if not elasticsearch.__versionstr__.startswith("8."):
            pytest.skip(f"the test extra's elasticsearch is {elasticsearch.__versionstr__}, not 8.x")
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    minute = datetime.now(UTC).replace(second=0, microsecond=0)  # recent: older lines fall to the TTL
    env = await asyncio.to_thread(client_env, major)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        server.url + prefix,
        build_id,
        minute.strftime("%Y-%m-%dT%H:%M"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-3000:]
    answer = json.loads(out.decode().strip().splitlines()[-1])
    assert answer["client"].startswith(f"{major}.")
    assert answer["server"].startswith("8.") and answer["ok"] == 2 and answer["errors"] == []

    rows = await server.rows(build_id)
    assert [r["message"] for r in rows] == ["payment gateway timeout", "retry succeeded"]
    first, second = rows
    assert (first["service"], first["host"]) == ("checkout", "web-12")
    assert (first["level"], second["level"]) == ("error", "info")
    base = int(minute.timestamp()) * 1_000_000_000
    assert int(first["ts_ns"]) == base + 7_123_456_000
    assert int(second["ts_ns"]) == base + 8_000_000_000
    assert first["attrs"]["index"] == "logs-checkout"
    assert first["attrs"]["labels.region"] == "eu-west-1"
    assert first["attrs"]["http.response.status_code"] == "504"
    assert first["attrs"]["log.logger"] == "gateway"
