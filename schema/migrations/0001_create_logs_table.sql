-- One row per log line. The first-class columns are what people filter and correlate on;
-- everything else a line carries lives in attrs.
CREATE TABLE IF NOT EXISTS logs
(
    ts          DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    observed_ts DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    seq         UInt64 CODEC(Delta, ZSTD(1)),
    tenant      LowCardinality(String),
    service     LowCardinality(String),
    host        LowCardinality(String),
    level       LowCardinality(String),
    message     String CODEC(ZSTD(1)),
    build_id    String CODEC(ZSTD(1)),
    deploy_id   String CODEC(ZSTD(1)),
    trace_id    String CODEC(ZSTD(1)),
    span_id     String CODEC(ZSTD(1)),
    request_id  String CODEC(ZSTD(1)),
    attrs       Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX idx_message lower(message) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1,
    INDEX idx_build_id build_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_deploy_id deploy_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_attr_keys mapKeys(attrs) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {{merge_tree}}
PARTITION BY toDate(ts)
ORDER BY (tenant, toStartOfHour(ts), service, host, ts, seq)
TTL toDateTime(ts) + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000, index_granularity = 8192
