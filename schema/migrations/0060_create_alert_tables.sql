-- Alerts (flightlog.query.alerts): rules kept through the API, their evaluation state per group,
-- the history of state changes, each group's value over time (the alerts page's graph), silences,
-- and the evaluator lease that lets exactly one `query` node evaluate at a time.
--
-- Rows are never updated in place: a change is a new row with a higher `version`, and readers
-- take the latest per key (argMax / FINAL). Every table leads with the tenant.
CREATE TABLE IF NOT EXISTS alert_rules
(
    tenant   LowCardinality(String),
    name     String,
    rule     String CODEC(ZSTD(3)),
    deleted  UInt8,
    updated_by String,
    version  UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, name);

-- One row per (rule, group) whenever its state changes, plus a row when a notification for it
-- was sent (last_notified): what a restart reads back so it neither re-notifies nor forgets.
CREATE TABLE IF NOT EXISTS alert_state
(
    tenant       LowCardinality(String),
    rule         String,
    fingerprint  String,
    labels       Map(String, String),
    state        LowCardinality(String),
    value        Float64,
    active_since DateTime64(3, 'UTC'),
    fired_at     DateTime64(3, 'UTC'),
    resolved_at  DateTime64(3, 'UTC'),
    last_notified DateTime64(3, 'UTC'),
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, rule, fingerprint);

CREATE TABLE IF NOT EXISTS alert_history
(
    ts          DateTime64(3, 'UTC'),
    tenant      LowCardinality(String),
    rule        String,
    fingerprint String,
    labels      Map(String, String),
    state       LowCardinality(String),
    value       Float64
)
ENGINE = {{merge_tree}}
ORDER BY (tenant, rule, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS alert_values
(
    ts          DateTime64(3, 'UTC'),
    tenant      LowCardinality(String),
    rule        String,
    fingerprint String,
    labels      Map(String, String),
    value       Float64
)
ENGINE = {{merge_tree}}
ORDER BY (tenant, rule, ts)
TTL toDateTime(ts) + INTERVAL 7 DAY;

CREATE TABLE IF NOT EXISTS alert_silences
(
    tenant     LowCardinality(String),
    id         String,
    rule       String,
    matchers   Map(String, String),
    until      DateTime64(3, 'UTC'),
    comment    String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    deleted    UInt8,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, id);

CREATE TABLE IF NOT EXISTS alert_leases
(
    name     String,
    owner    String,
    until    DateTime64(3, 'UTC'),
    version  UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

-- Each rule's last evaluation as the evaluating node saw it, so every `query` node (not only
-- the one holding the lease) shows the same status.
CREATE TABLE IF NOT EXISTS alert_rule_status
(
    tenant          LowCardinality(String),
    rule            String,
    last_evaluation DateTime64(3, 'UTC'),
    duration_ms     Float64,
    error           String,
    notify_error    String,
    evaluations     UInt64,
    failures        UInt64,
    firing          UInt32,
    pending         UInt32,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, rule);
