-- Chat workspaces (Slack teams, Mattermost teams) allowed to ask flightlog, each mapped to one
-- tenant, for the server backend (shared by every `flightlog query` process). A Slack signing
-- secret must be kept as it is (a request's HMAC is computed with it); a Mattermost token is kept
-- as its SHA-256. A workspace is removed by inserting its row again with removed = 1 and a
-- higher version; FINAL reads the latest. With the embedded store the workspaces live in
-- <data_dir>/chatops.json instead (see schema/chatops_workspaces.py): this table stays empty.
CREATE TABLE IF NOT EXISTS chatops_workspaces
(
    team                  String,
    tenant                String,
    signing_secret        String,
    bot_token             String,
    mattermost_token_hash String,
    channels              Array(String),
    silencers             Array(String),
    created_at            DateTime64(3, 'UTC'),
    removed               UInt8,
    version               UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY team;
