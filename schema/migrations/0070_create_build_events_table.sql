-- Build and deploy records: one row per CI/CD event (a GitHub or GitLab webhook, a call to
-- /api/v1/{builds,deploys}/{id}/events, or a log line carrying an explicit build.status or
-- deploy.status). A record is these rows rolled up per (tenant, kind, id): each field's latest
-- non-empty value, and the status history in time order (flightlog.query.build_records).
--
-- `status` is '' when the event says nothing about it (a deployment created, a job queued …).
-- `event_key` names one delivery (GitHub's X-GitHub-Delivery, GitLab's event UUID, or a fresh
-- id): a webhook redelivered after a timeout is stored twice and read once (LIMIT 1 BY event_key).
-- Kept for the retention counted from arrival, not from `ts`: a CI system's clock, or a replayed
-- old delivery, must not make a record expire on insert.
CREATE TABLE IF NOT EXISTS build_events
(
    tenant      LowCardinality(String),
    kind        LowCardinality(String),
    id          String,
    ts          DateTime64(9, 'UTC'),
    received_ts DateTime64(9, 'UTC'),
    event_key   String,
    source      LowCardinality(String),
    event       LowCardinality(String),
    status      LowCardinality(String),
    repo        String,
    branch      String,
    commit      String,
    author      String,
    pipeline    String,
    url         String,
    environment String,
    version     String,
    job         String,
    job_status  LowCardinality(String),
    detail      String
)
ENGINE = {{merge_tree}}
PARTITION BY toYYYYMM(received_ts)
ORDER BY (tenant, kind, id, ts, received_ts)
TTL toDateTime(received_ts) + INTERVAL {{retention_days}} DAY
SETTINGS index_granularity = 1024;

-- An explicit status in a log line (the view on logs takes direct inserts into logs; the one
-- on logs_pending, at the end, what ingest writes): `build.status` / `build_status` / {"build": {"status": …}}
-- for its build, `deploy.status` / `deploy_status` / `deployment.status` (or nested) for its
-- deploy. Never the generic `status` attribute: that is an HTTP status as often as not.
-- Values are read through the same synonyms as the events API (flightlog.ingest.cicd.events
-- STATUS_SYNONYMS; a test checks both lists agree); anything else is ignored.
-- Lines stored before this migration: their explicit statuses, once (the view takes the rest;
-- migrations run before ingest starts, so no line falls between the two). A re-run after a
-- crash here inserts them again, which the readers' LIMIT 1 BY event_key absorbs.
INSERT INTO build_events
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, observed_ts AS received_ts,
       concat('line:', toString(toUnixTimestamp64Nano(ts)), '-', toString(seq)) AS event_key,
       'log' AS source, 'line' AS event, pair.3 AS status,
       '' AS repo, '' AS branch, '' AS commit, '' AS author, '' AS pipeline, '' AS url,
       '' AS environment, '' AS version, '' AS job, '' AS job_status, '' AS detail
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '' AND p.3 != '', [
    ('build', build_id, transform(lower(trimBoth(coalesce(nullIf(attrs['build.status'], ''), nullIf(attrs['build_status'], ''),
        nullIf(JSONExtractString(attrs['build'], 'status'), ''), ''))),
        ['queued', 'pending', 'waiting', 'created', 'running', 'started', 'in_progress', 'success', 'succeeded', 'passed', 'ok',
         'failure', 'failed', 'error', 'cancelled', 'canceled', 'aborted', 'skipped'],
        ['queued', 'queued', 'queued', 'queued', 'running', 'running', 'running', 'success', 'success', 'success', 'success',
         'failure', 'failure', 'failure', 'cancelled', 'cancelled', 'cancelled', 'cancelled'], '')),
    ('deploy', deploy_id, transform(lower(trimBoth(coalesce(nullIf(attrs['deploy.status'], ''), nullIf(attrs['deploy_status'], ''),
        nullIf(attrs['deployment.status'], ''), nullIf(JSONExtractString(attrs['deploy'], 'status'), ''),
        nullIf(JSONExtractString(attrs['deployment'], 'status'), ''), ''))),
        ['queued', 'pending', 'waiting', 'created', 'running', 'started', 'in_progress', 'success', 'succeeded', 'passed', 'ok',
         'failure', 'failed', 'error', 'cancelled', 'canceled', 'aborted', 'skipped'],
        ['queued', 'queued', 'queued', 'queued', 'running', 'running', 'running', 'success', 'success', 'success', 'success',
         'failure', 'failure', 'failure', 'cancelled', 'cancelled', 'cancelled', 'cancelled'], ''))
]) AS pair
WHERE build_id != '' OR deploy_id != '';

CREATE MATERIALIZED VIEW IF NOT EXISTS build_events_from_logs_mv TO build_events AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, observed_ts AS received_ts,
       concat('line:', toString(toUnixTimestamp64Nano(ts)), '-', toString(seq)) AS event_key,
       'log' AS source, 'line' AS event, pair.3 AS status,
       '' AS repo, '' AS branch, '' AS commit, '' AS author, '' AS pipeline, '' AS url,
       '' AS environment, '' AS version, '' AS job, '' AS job_status, '' AS detail
FROM logs
ARRAY JOIN arrayFilter(p -> p.2 != '' AND p.3 != '', [
    ('build', build_id, transform(lower(trimBoth(coalesce(nullIf(attrs['build.status'], ''), nullIf(attrs['build_status'], ''),
        nullIf(JSONExtractString(attrs['build'], 'status'), ''), ''))),
        ['queued', 'pending', 'waiting', 'created', 'running', 'started', 'in_progress', 'success', 'succeeded', 'passed', 'ok',
         'failure', 'failed', 'error', 'cancelled', 'canceled', 'aborted', 'skipped'],
        ['queued', 'queued', 'queued', 'queued', 'running', 'running', 'running', 'success', 'success', 'success', 'success',
         'failure', 'failure', 'failure', 'cancelled', 'cancelled', 'cancelled', 'cancelled'], '')),
    ('deploy', deploy_id, transform(lower(trimBoth(coalesce(nullIf(attrs['deploy.status'], ''), nullIf(attrs['deploy_status'], ''),
        nullIf(attrs['deployment.status'], ''), nullIf(JSONExtractString(attrs['deploy'], 'status'), ''),
        nullIf(JSONExtractString(attrs['deployment'], 'status'), ''), ''))),
        ['queued', 'pending', 'waiting', 'created', 'running', 'started', 'in_progress', 'success', 'succeeded', 'passed', 'ok',
         'failure', 'failed', 'error', 'cancelled', 'canceled', 'aborted', 'skipped'],
        ['queued', 'queued', 'queued', 'queued', 'running', 'running', 'running', 'success', 'success', 'success', 'success',
         'failure', 'failure', 'failure', 'cancelled', 'cancelled', 'cancelled', 'cancelled'], ''))
]) AS pair
WHERE build_id != '' OR deploy_id != '';

-- Ingest writes into logs_pending and moves its partitions into logs (migration 0050); a move
-- fires no view, so the statuses of ingested lines are taken here, the way the trail is.
CREATE MATERIALIZED VIEW IF NOT EXISTS build_events_from_pending_mv TO build_events AS
SELECT tenant, pair.1 AS kind, pair.2 AS id, ts, observed_ts AS received_ts,
       concat('line:', toString(toUnixTimestamp64Nano(ts)), '-', toString(seq)) AS event_key,
       'log' AS source, 'line' AS event, pair.3 AS status,
       '' AS repo, '' AS branch, '' AS commit, '' AS author, '' AS pipeline, '' AS url,
       '' AS environment, '' AS version, '' AS job, '' AS job_status, '' AS detail
FROM logs_pending
ARRAY JOIN arrayFilter(p -> p.2 != '' AND p.3 != '', [
    ('build', build_id, transform(lower(trimBoth(coalesce(nullIf(attrs['build.status'], ''), nullIf(attrs['build_status'], ''),
        nullIf(JSONExtractString(attrs['build'], 'status'), ''), ''))),
        ['queued', 'pending', 'waiting', 'created', 'running', 'started', 'in_progress', 'success', 'succeeded', 'passed', 'ok',
         'failure', 'failed', 'error', 'cancelled', 'canceled', 'aborted', 'skipped'],
        ['queued', 'queued', 'queued', 'queued', 'running', 'running', 'running', 'success', 'success', 'success', 'success',
         'failure', 'failure', 'failure', 'cancelled', 'cancelled', 'cancelled', 'cancelled'], '')),
    ('deploy', deploy_id, transform(lower(trimBoth(coalesce(nullIf(attrs['deploy.status'], ''), nullIf(attrs['deploy_status'], ''),
        nullIf(attrs['deployment.status'], ''), nullIf(JSONExtractString(attrs['deploy'], 'status'), ''),
        nullIf(JSONExtractString(attrs['deployment'], 'status'), ''), ''))),
        ['queued', 'pending', 'waiting', 'created', 'running', 'started', 'in_progress', 'success', 'succeeded', 'passed', 'ok',
         'failure', 'failed', 'error', 'cancelled', 'canceled', 'aborted', 'skipped'],
        ['queued', 'queued', 'queued', 'queued', 'running', 'running', 'running', 'success', 'success', 'success', 'success',
         'failure', 'failure', 'failure', 'cancelled', 'cancelled', 'cancelled', 'cancelled'], ''))
]) AS pair
WHERE build_id != '' OR deploy_id != '';
