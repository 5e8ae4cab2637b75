-- Bearer tokens: one row per token, the secret only as its SHA-256 (registry.access.tokens).
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL,
    principal     TEXT NOT NULL,
    principal_key TEXT NOT NULL,
    scope         TEXT NOT NULL,
    prefix_key    TEXT,
    prefix        TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    created_by    TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE INDEX tokens_by_principal ON tokens (principal_key, created_at);
