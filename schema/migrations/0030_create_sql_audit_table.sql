-- Every statement sent to the SQL console: who, when, what, how it ended. Read back per tenant
-- at /api/v1/sql/audit; kept a year (an audit trail outlives the logs it queried).
CREATE TABLE IF NOT EXISTS sql_audit
(
    ts       DateTime64(3, 'UTC') DEFAULT now64(3),
    tenant   LowCardinality(String),
    who      String,
    sql      String CODEC(ZSTD(3)),
    outcome  LowCardinality(String),
    error    String,
    rows     UInt64,
    ms       Float64,
    truncated UInt8
)
ENGINE = {{merge_tree}}
ORDER BY (tenant, ts)
TTL toDateTime(ts) + INTERVAL 365 DAY;

-- Live tail asks "which lines arrived since I last looked" every quarter second. observed_ts is
-- not in the sort key; a min/max index on it lets that read skip every granule but the newest.
ALTER TABLE logs ADD INDEX IF NOT EXISTS idx_observed_ts observed_ts TYPE minmax GRANULARITY 1
