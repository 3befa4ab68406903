"""Migrations: derived tables backfill what was stored before them, re-running is harmless,
retention reaches every table."""

from __future__ import annotations

from flightlog.schema.embedded import EmbeddedStore
from flightlog.schema.migrate import apply_migrations, load_migrations, template_values

from tests.query.data import make_fleet


def test_migrations_backfill_lines_that_were_there_before_them(tmp_path):
    store = EmbeddedStore(tmp_path / "data")
    try:
        values = template_values(30)
        store.command(
            "CREATE TABLE schema_migrations (number UInt32, name String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY number"
        )
        for migration in load_migrations():
            if migration.number < 20:
                for statement in migration.statements(values):
                    store.command(statement)
                store.insert_rows("schema_migrations", [{"number": migration.number, "name": migration.name}])
        fleet = make_fleet(store, builds=3)
        applied = apply_migrations(store, 30)
        assert any(name.startswith("0020_") for name in applied)
        assert any(name.startswith("0021_") for name in applied)
        counts = dict(store.query("SELECT kind, count() FROM trail_lines GROUP BY kind").rows)
        assert counts == {"build": 120, "deploy": 60}
        id_counts = dict(store.query("SELECT kind, count() FROM id_lines GROUP BY kind").rows)
        assert id_counts == {"trace": 120, "request": 120}
        total = store.query("SELECT sum(lines) FROM id_summary WHERE kind = 'build'").scalar()
        assert total == len(fleet.lines)
        # re-running a migration (a crash before it was recorded) leaves the same state
        for migration in load_migrations():
            if migration.number in (20, 21):
                for statement in migration.statements(values):
                    store.command(statement)
        assert dict(store.query("SELECT kind, count() FROM trail_lines GROUP BY kind").rows) == counts
        assert dict(store.query("SELECT kind, count() FROM id_lines GROUP BY kind").rows) == id_counts
        assert store.query("SELECT sum(lines) FROM id_summary WHERE kind = 'build'").scalar() == total
        assert store.query("SELECT sum(lines) FROM host_summary").scalar() == len(fleet.lines)
    finally:
        store.close()


def test_correlation_tables_follow_the_retention_setting(store):
    apply_migrations(store, 90)
    for table in ("trail_lines", "id_lines", "id_hosts", "id_summary", "host_ids", "host_summary"):
        ddl = store.query(f"SHOW CREATE TABLE {table}").scalar()
        assert "toIntervalDay(90)" in ddl, table
