"""Ship lines through the real ingest path (parser → batcher → chDB) and read the rows back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightlog.ingest.batcher import Batcher
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols import jsonlines
from flightlog.schema.settings import Settings
from flightlog.schema.store import Store

COLUMNS = "toString(ts) AS ts, service, host, level, message, build_id, deploy_id, trace_id, span_id, request_id, attrs"


async def ingest_body(
    store: Store,
    settings: Settings,
    body: bytes,
    content_type: str = "application/x-ndjson",
    defaults: Mapping[str, str] | None = None,
    observed_ns: int | None = None,
):
    result = jsonlines.parse(body, content_type, Limits.from_settings(settings), "default", defaults)
    if observed_ns is not None:
        result.chunk.observed_ns = observed_ns
    batcher = Batcher(store, settings.data_dir / "spool", max_age_ms=10)
    await batcher.start()
    await batcher.append(result.chunk)
    await batcher.stop()
    return result


def rows(store: Store) -> list[dict[str, Any]]:
    return store.query(f"SELECT {COLUMNS} FROM logs ORDER BY ts, seq").dicts()
