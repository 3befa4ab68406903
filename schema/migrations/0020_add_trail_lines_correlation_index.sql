-- The correlation index. Builds and deploys: `trail_lines`, one row per (line, id it carries) with
-- the line's own columns, sorted by (tenant, kind, id, ts, seq); the trail of an id is one
-- primary-key range read in order, whatever the size of `logs`. Wide rows (a copy of the line)
-- rather than a narrow row joined back to `logs`: the join back has to find each line under logs'
-- (tenant, hour, service, host, ts) key, one range per host and hour, where the copy is read in
-- one go; it costs disk (ZSTD over id-sorted rows compresses it well) and insert time.
--
-- Trace and request ids: `id_lines`, a narrow row (where the line is, its level and its other
-- ids), since nearly every line carries a trace id and a second wide copy of every line was the
-- largest part of the views' insert cost (see docs/correlation.md for the measured figures).
-- Expansion finds lines here and reads the few it shows from `logs`.
--
-- Small granules: a 1,000-line trail reads one or two of them. Monthly partitions, not daily like
-- logs: a lookup by id has no time bound, so it visits every part, and 30 daily partitions cost a
-- 1,000-line trail more than reading it (measured: 11 parts +4 ms a query against 1). Expired rows
-- go in merges (no ttl_only_drop_parts), so a month-wide part does not outlive the retention.
-- Re-runnable: the views are dropped, the tables emptied and refilled from logs, then the views
-- created; migrations run before ingest starts, so no line arrives between refill and view.
CREATE TABLE IF NOT EXISTS trail_lines
(
    tenant      LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    ts          DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    seq         UInt64 CODEC(Delta, ZSTD(1)),
    service     LowCardinality(String),
    host        LowCardinality(String),
    level       LowCardinality(String),
    message     String CODEC(ZSTD(1)),
    build_id    String CODEC(ZSTD(1)),
    deploy_id   String CODEC(ZSTD(1)),
    trace_id    String CODEC(ZSTD(1)),
    span_id     String CODEC(ZSTD(1)),
    request_id  String CODEC(ZSTD(1)),
    attrs       Map(LowCardinality(String), String) CODEC(ZSTD(1))
)
ENGINE = {{merge_tree}}
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, kind, id, ts, seq)
TTL toDateTime(ts) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS id_lines
(
    tenant      LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    ts          DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    seq         UInt64 CODEC(Delta, ZSTD(1)),
    service     LowCardinality(String),
    host        LowCardinality(String),
    level       LowCardinality(String),
    build_id    String CODEC(ZSTD(1)),
    deploy_id   String CODEC(ZSTD(1)),
    other_id    String CODEC(ZSTD(1))
)
ENGINE = {{merge_tree}}
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, kind, id, ts, seq)
TTL toDateTime(ts) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

DROP VIEW IF EXISTS trail_lines_mv;

DROP VIEW IF EXISTS id_lines_mv;

TRUNCATE TABLE IF EXISTS trail_lines;

TRUNCATE TABLE IF EXISTS id_lines;

INSERT INTO trail_lines
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, seq, service, host, level, message,
       build_id, deploy_id, trace_id, span_id, request_id, attrs
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '', [('build', build_id), ('deploy', deploy_id)]) AS pair;

-- other_id: the request id of a trace row, the trace id of a request row (the next hop)
INSERT INTO id_lines
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, seq, service, host, level, build_id, deploy_id, pair.3 AS other_id
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '', [('trace', trace_id, request_id), ('request', request_id, trace_id)]) AS pair;

CREATE MATERIALIZED VIEW IF NOT EXISTS trail_lines_mv TO trail_lines AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, seq, service, host, level, message,
       build_id, deploy_id, trace_id, span_id, request_id, attrs
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '', [('build', build_id), ('deploy', deploy_id)]) AS pair;

CREATE MATERIALIZED VIEW IF NOT EXISTS id_lines_mv TO id_lines AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, seq, service, host, level, build_id, deploy_id, pair.3 AS other_id
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '', [('trace', trace_id, request_id), ('request', request_id, trace_id)]) AS pair;
