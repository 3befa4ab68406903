-- API keys for the server backend (a ClickHouse server shared by `flightlog ingest` and
-- `flightlog query` processes). Only a SHA-256 of each key is stored. A key is revoked by
-- inserting its row again with revoked_at set and a higher version; FINAL reads the latest.
-- With the embedded store the keys live in <data_dir>/keys.json instead (see schema/keys.py):
-- this table is created there too but stays empty.
CREATE TABLE IF NOT EXISTS api_keys
(
    id                  String,
    name                String,
    tenant              String,
    scope               LowCardinality(String),
    hash                String,
    created_at          DateTime64(3, 'UTC'),
    revoked_at          Nullable(DateTime64(3, 'UTC')),
    lines_per_second    UInt32,
    requests_per_second UInt32,
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
