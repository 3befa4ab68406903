"""The embedded engine's memory ceiling and cache sizes (issue 15): settings reach the engine,
and a statement that needs more than the ceiling is refused instead of growing the process."""

from __future__ import annotations

import pytest
from flightlog.ingest.batcher import is_content_error
from flightlog.schema.embedded import EmbeddedStore
from flightlog.schema.open import open_store
from flightlog.schema.settings import Settings, SettingsError
from flightlog.schema.store import StoreError

CEILING = 300 * 1024 * 1024


def server_setting(store: EmbeddedStore, name: str) -> int:
    return int(store.query("SELECT value FROM system.server_settings WHERE name = {n:String}", {"n": name}).scalar())


def test_the_engine_runs_with_the_configured_ceiling_and_cache_sizes(tmp_path):
    settings = Settings.from_values({
        "data_dir": str(tmp_path / "data"), "engine_memory_max_bytes": CEILING, "engine_cache_bytes": 64 << 20,
    })
    store = open_store(settings)
    try:
        assert server_setting(store, "max_server_memory_usage") == CEILING
        for name in ("mark_cache_size", "index_mark_cache_size", "primary_index_cache_size"):
            assert server_setting(store, name) == 64 << 20
    finally:
        store.close()


def test_the_caches_are_small_by_default_and_the_ceiling_is_the_engines_own(tmp_path):
    store = open_store(Settings.from_values({"data_dir": str(tmp_path / "data")}))
    try:
        assert server_setting(store, "mark_cache_size") == 128 << 20
        assert server_setting(store, "max_server_memory_usage") > CEILING  # 90% of RAM
    finally:
        store.close()


def test_a_statement_needing_more_than_the_ceiling_is_refused_and_ingest_would_retry_it(tmp_path):
    store = EmbeddedStore(tmp_path / "data", memory_max_bytes=CEILING)
    try:
        # ~1.6 GB of arrays in one aggregation state, far past the ceiling
        with pytest.raises(StoreError) as refused:
            store.query("SELECT length(groupArray(number)) FROM numbers(200000000)")
        assert refused.value.code == 241
        # a memory refusal is an outage of the engine, not bad data: the batcher retries the
        # batch from the WAL instead of bisecting it into the quarantine
        assert not is_content_error(refused.value)
        # and the engine still answers once the statement is gone
        assert store.query("SELECT count() FROM numbers(1000)").scalar() == 1000
    finally:
        store.close()


def test_a_ceiling_too_small_for_one_insert_is_refused_by_name():
    with pytest.raises(SettingsError, match="--engine-memory-max-bytes"):
        Settings.from_values({"engine_memory_max_bytes": 1_000_000})
