"""Apply the numbered migrations in schema/migrations/, in order, each once.

A migration is `NNNN_<what it does>.sql`: statements separated by `;` on a line of its own
end. Placeholders `{{name}}` are filled from our settings, never from user input. Applied
migrations are recorded in `schema_migrations`; every statement is written to be safe to
re-run (IF NOT EXISTS), so a crash between a statement and its record is harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from flightlog.schema.store import Store

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    def statements(self, values: dict[str, str]) -> list[str]:
        text = self.sql
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        if "{{" in text:
            raise ValueError(f"migration {self.name} has an unfilled placeholder")
        return [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if _has_sql(s)]


def _has_sql(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("flightlog.schema").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two migrations share a number: {numbers}")
    return found


def template_values(retention_days: int) -> dict[str, str]:
    return {
        "retention_days": str(int(retention_days)),
        "merge_tree": "MergeTree",
    }


def apply_migrations(store: Store, retention_days: int) -> list[str]:
    """Bring the store up to date; returns the names of the migrations applied now."""
    store.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (number UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY number"
    )
    done = {row[0] for row in store.query("SELECT number FROM schema_migrations").rows}
    values = template_values(retention_days)
    applied = []
    for migration in load_migrations():
        if migration.number in done:
            continue
        for statement in migration.statements(values):
            store.command(statement)
        store.insert_rows("schema_migrations", [{"number": migration.number, "name": migration.name}])
        applied.append(migration.name)
    _apply_retention(store, retention_days)
    return applied


# The TTL column of logs and of the tables derived from it (migrations 0020/0021), which keep
# their rows as long as logs keeps the lines.
RETAINED = {
    "logs": "ts",
    "logs_pending": "ts",  # the TTL of logs: moving partitions from it into logs needs the same
    "trail_lines": "ts",
    "id_lines": "ts",
    "id_hosts": "last_ts",
    "id_summary": "last_ts",
    "host_ids": "last_ts",
    "host_summary": "last_ts",
    "build_events": "received_ts",  # migration 0070: CI events, kept from their arrival
}


def _apply_retention(store: Store, retention_days: int) -> None:
    # Retention is a setting, so it can change between starts; the TTL follows it.
    existing = {row[0] for row in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()").rows}
    for table, column in RETAINED.items():
        if table in existing:
            store.command(
                f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {int(retention_days)} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )
