-- Lines the engine refused to store for their content (a timestamp it cannot hold, …): the
-- inserter bisects a refused batch and keeps every other line; these wait here, per tenant,
-- for a person to read (GET /api/v1/quarantine, the /quarantine page). A replay of the same
-- WAL segment quarantines the same line again under the same (segment, line_no): the
-- ReplacingMergeTree and the readers' LIMIT 1 BY keep one.
CREATE TABLE IF NOT EXISTS quarantine
(
    ts       DateTime64(3, 'UTC') DEFAULT now64(3),
    tenant   LowCardinality(String),
    segment  String,
    line_no  UInt32,
    raw      String CODEC(ZSTD(3)),
    reason   String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, segment, line_no)
TTL toDateTime(ts) + INTERVAL 30 DAY
