-- Small summary tables, kept up to date by materialized views, so a build page, the list of
-- builds and the hosts page never scan `logs`:
--   id_hosts    per (tenant, kind, id, service, host) of builds and deploys: span, lines, counts by
--               level, the linked ids (a line carrying both ids links a build and a deploy), the
--               status attribute of the last line. Fed from logs.
--   id_summary  per (tenant, kind, id): the same rolled up. Fed from the blocks written to id_hosts
--               (a cascaded view over already-aggregated rows, so it costs next to nothing).
--   host_ids    per (tenant, host, kind, id): when a host saw a build or deploy. Cascaded too.
--   host_summary per (tenant, host, service): first/last seen, lines, errors. Fed from logs.
--
-- Replays: a batch replayed after a crash carries the same insert_deduplication_token, and the
-- batcher inserts with deduplicate_blocks_in_dependent_materialized_views = 1, so every table
-- here drops the replayed block (each keeps a deduplication window). min/max/argMax/
-- groupUniqArray merge idempotently anyway; the counts (sum) rely on that block deduplication.
-- Re-runnable like 0020: views dropped, tables emptied and refilled, views created.
CREATE TABLE IF NOT EXISTS id_hosts
(
    tenant      LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    service     LowCardinality(String),
    host        LowCardinality(String),
    first_ts    SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_ts     SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    lines       SimpleAggregateFunction(sum, UInt64),
    levels      SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    others      SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    last_status AggregateFunction(argMax, String, Tuple(DateTime64(9, 'UTC'), UInt64))
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant, kind, id, service, host)
TTL toDateTime(last_ts) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS id_summary
(
    tenant      LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    first_ts    SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_ts     SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    lines       SimpleAggregateFunction(sum, UInt64),
    levels      SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    services    SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    hosts       SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    others      SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    last_status AggregateFunction(argMax, String, Tuple(DateTime64(9, 'UTC'), UInt64))
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant, kind, id)
TTL toDateTime(last_ts) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS host_ids
(
    tenant      LowCardinality(String),
    host        LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    first_ts    SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_ts     SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    lines       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant, host, kind, id)
TTL toDateTime(last_ts) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS host_summary
(
    tenant      LowCardinality(String),
    host        LowCardinality(String),
    service     LowCardinality(String),
    first_ts    SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_ts     SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    lines       SimpleAggregateFunction(sum, UInt64),
    errors      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant, host, service)
TTL toDateTime(last_ts) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

DROP VIEW IF EXISTS id_hosts_mv;

DROP VIEW IF EXISTS id_summary_mv;

DROP VIEW IF EXISTS host_ids_mv;

DROP VIEW IF EXISTS host_summary_mv;

TRUNCATE TABLE IF EXISTS id_hosts;

TRUNCATE TABLE IF EXISTS id_summary;

TRUNCATE TABLE IF EXISTS host_ids;

TRUNCATE TABLE IF EXISTS host_summary;

-- the cascaded views first, so the backfill of id_hosts fills them as ingest would
CREATE MATERIALIZED VIEW IF NOT EXISTS id_summary_mv TO id_summary AS
SELECT tenant, kind, id, min(first_ts) AS first_ts, max(last_ts) AS last_ts, sum(lines) AS lines,
       sumMap(levels) AS levels, groupUniqArray(service) AS services, groupUniqArray(host) AS hosts,
       groupUniqArrayArray(others) AS others, argMaxMergeState(last_status) AS last_status
FROM id_hosts
GROUP BY tenant, kind, id;

CREATE MATERIALIZED VIEW IF NOT EXISTS host_ids_mv TO host_ids AS
SELECT tenant, host, kind, id, min(first_ts) AS first_ts, max(last_ts) AS last_ts, sum(lines) AS lines
FROM id_hosts
GROUP BY tenant, host, kind, id;

INSERT INTO id_hosts
SELECT tenant, pair.1 AS kind, pair.2 AS id, service, host, min(ts) AS first_ts, max(ts) AS last_ts,
       count() AS lines, sumMap(map(level, toUInt64(1))) AS levels,
       groupUniqArrayIf(pair.3, pair.3 != '') AS others, argMaxState(attrs['status'], (ts, seq)) AS last_status
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '', [('build', build_id, deploy_id), ('deploy', deploy_id, build_id)]) AS pair
GROUP BY tenant, kind, id, service, host;

INSERT INTO host_summary
SELECT tenant, host, service, min(ts) AS first_ts, max(ts) AS last_ts, count() AS lines,
       countIf(level IN ('error', 'fatal')) AS errors
FROM logs
GROUP BY tenant, host, service;

CREATE MATERIALIZED VIEW IF NOT EXISTS id_hosts_mv TO id_hosts AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, service, host, min(ts) AS first_ts, max(ts) AS last_ts,
       count() AS lines, sumMap(map(level, toUInt64(1))) AS levels,
       groupUniqArrayIf(pair.3, pair.3 != '') AS others, argMaxState(attrs['status'], (ts, seq)) AS last_status
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '', [('build', build_id, deploy_id), ('deploy', deploy_id, build_id)]) AS pair
GROUP BY tenant, kind, id, service, host;

CREATE MATERIALIZED VIEW IF NOT EXISTS host_summary_mv TO host_summary AS
SELECT tenant, host, service, min(ts) AS first_ts, max(ts) AS last_ts, count() AS lines,
       countIf(level IN ('error', 'fatal')) AS errors
FROM logs
GROUP BY tenant, host, service;
