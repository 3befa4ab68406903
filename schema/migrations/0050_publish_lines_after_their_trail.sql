-- Ingest writes into `logs_pending` and the views below feed the correlation tables from it; once
-- the insert has returned (every view's part committed), the batch's partitions are moved into
-- `logs` (schema/publish.py). So a line becomes searchable only after it is in its trail, its
-- summary and its host rows. Inserting straight into `logs` wrote the `logs` part first and the
-- views' parts after it: with four concurrent 50k-line bodies, `logs` was complete while
-- `trail_lines` stayed empty for 3+ s (docs/correlation.md, "Searchable no earlier than its trail").
--
-- `logs_pending` has the structure of `logs` (MOVE PARTITION needs the same columns, keys,
-- indexes and TTL): a migration that changes `logs` must change `logs_pending` the same way.
-- It is empty between batches; nobody reads it. The views on `logs` stay, so a direct
-- `INSERT INTO logs` (tests, tools, backfills) still feeds the correlation tables; a MOVE into
-- `logs` does not fire them, so no line is counted twice.
-- Re-runnable: the table is created if missing, the views dropped and created.
CREATE TABLE IF NOT EXISTS logs_pending AS logs;

DROP VIEW IF EXISTS trail_lines_pending_mv;

DROP VIEW IF EXISTS id_lines_pending_mv;

DROP VIEW IF EXISTS id_hosts_pending_mv;

DROP VIEW IF EXISTS host_summary_pending_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS trail_lines_pending_mv TO trail_lines AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, seq, service, host, level, message,
       build_id, deploy_id, trace_id, span_id, request_id, attrs
FROM logs_pending
ARRAY JOIN arrayFilter(p -> p.2 != '', [('build', build_id), ('deploy', deploy_id)]) AS pair;

CREATE MATERIALIZED VIEW IF NOT EXISTS id_lines_pending_mv TO id_lines AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, seq, service, host, level, build_id, deploy_id, pair.3 AS other_id
FROM logs_pending
ARRAY JOIN arrayFilter(p -> p.2 != '', [('trace', trace_id, request_id), ('request', request_id, trace_id)]) AS pair;

CREATE MATERIALIZED VIEW IF NOT EXISTS id_hosts_pending_mv TO id_hosts AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, service, host, min(ts) AS first_ts, max(ts) AS last_ts,
       count() AS lines, sumMap(map(level, toUInt64(1))) AS levels,
       groupUniqArrayIf(pair.3, pair.3 != '') AS others, argMaxState(attrs['status'], (ts, seq)) AS last_status
FROM logs_pending
ARRAY JOIN arrayFilter(p -> p.2 != '', [('build', build_id, deploy_id), ('deploy', deploy_id, build_id)]) AS pair
GROUP BY tenant, kind, id, service, host;

CREATE MATERIALIZED VIEW IF NOT EXISTS host_summary_pending_mv TO host_summary AS
SELECT tenant, host, service, min(ts) AS first_ts, max(ts) AS last_ts, count() AS lines,
       countIf(level IN ('error', 'fatal')) AS errors
FROM logs_pending
GROUP BY tenant, host, service
