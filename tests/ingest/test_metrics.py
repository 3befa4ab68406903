"""GET /metrics: Prometheus text with what ingest accepted, refused, wrote and inserted."""

from __future__ import annotations

import orjson
import pytest
from flightlog.ingest.metrics import reject_reason
from flightlog.schema.app_state import BATCHER
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app


@pytest.fixture
async def client(aiohttp_client, store, tmp_path):
    settings = Settings.from_values({"data_dir": str(tmp_path / "data"), "batch_max_age_ms": 20})
    return await aiohttp_client(create_app(settings, roles={"ingest"}, store=store))


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_metrics_count_lines_bytes_batches_and_rejections(client):
    body = b"\n".join([orjson.dumps({"msg": "a"}), orjson.dumps({"msg": "b"}), b"{broken", b"[1]"])
    resp = await client.post("/api/v1/logs", data=body)
    assert resp.status == 200
    await client.app[BATCHER].flush()

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert "# TYPE flightlog_ingest_insert_seconds histogram" in text
    m = samples(text)
    assert m["flightlog_ingest_lines_accepted_total"] == 2
    assert m['flightlog_ingest_lines_rejected_total{reason="invalid_json"}'] == 1
    assert m['flightlog_ingest_lines_rejected_total{reason="not_an_object"}'] == 1
    assert m["flightlog_ingest_bytes_total"] > 0
    assert m['flightlog_ingest_requests_total{status="200"}'] == 1
    assert m["flightlog_ingest_batches_inserted_total"] == 1
    assert m["flightlog_ingest_lines_inserted_total"] == 2
    assert m["flightlog_ingest_insert_seconds_count"] == 1
    assert m['flightlog_ingest_insert_seconds_bucket{le="+Inf"}'] == 1
    assert m["flightlog_wal_bytes"] == 0
    assert m["flightlog_wal_fsyncs_total"] >= 1
    assert m['flightlog_ingest_throttled_total{reason="wal_full"}'] == 0


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("invalid JSON: unexpected character", "invalid_json"),
        ("line is 3000 bytes; the limit is 2000", "line_too_long"),
        ("line has 300 fields; the limit is 256 attributes", "too_many_fields"),
        ("ts -5 is before 1970", "bad_timestamp"),
        ("something new", "other"),
    ],
)
def test_rejection_messages_map_to_reason_labels(message, reason):
    assert reject_reason(message) == reason
