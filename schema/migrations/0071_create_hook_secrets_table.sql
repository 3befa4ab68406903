-- Webhook secrets for the server backend (see schema/hook_secrets.py; with the embedded store
-- they live in <data_dir>/hooks.json and this table stays empty). A GitHub secret is kept as
-- given (an HMAC is checked with the secret itself), a GitLab token as its SHA-256. Revoked by
-- inserting the row again with revoked_at set and a higher version; FINAL reads the latest.
CREATE TABLE IF NOT EXISTS hook_secrets
(
    id          String,
    tenant      String,
    provider    LowCardinality(String),
    secret      String,
    name        String,
    created_at  DateTime64(3, 'UTC'),
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
