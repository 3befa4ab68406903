"""Open the store the settings ask for and bring its schema up to date."""

from __future__ import annotations

from flightlog.schema.migrate import apply_migrations
from flightlog.schema.settings import Settings
from flightlog.schema.store import Store


def open_store(settings: Settings, migrate: bool = True) -> Store:
    if settings.clickhouse_url:
        from flightlog.schema.server import ServerStore

        store: Store = ServerStore(settings.clickhouse_url)
    else:
        from flightlog.schema.embedded import EmbeddedStore

        store = EmbeddedStore(
            settings.data_dir, memory_max_bytes=settings.engine_memory_max_bytes, cache_bytes=settings.engine_cache_bytes
        )
    if migrate:
        try:
            apply_migrations(store, settings.retention_days)
        except Exception:
            store.close()
            raise
    return store
