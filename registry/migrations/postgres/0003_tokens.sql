-- Bearer tokens: one row per token, the secret only as its SHA-256 (registry.access.tokens).
CREATE TABLE tokens (
    id            text COLLATE "C" PRIMARY KEY,
    secret_hash   text NOT NULL,
    principal     text NOT NULL,
    principal_key text COLLATE "C" NOT NULL,
    scope         text NOT NULL,
    prefix_key    text COLLATE "C",
    prefix        text NOT NULL DEFAULT '',
    created_at    bigint NOT NULL,
    expires_at    bigint,
    revoked_at    bigint,
    created_by    text NOT NULL,
    description   text NOT NULL DEFAULT ''
);

CREATE INDEX tokens_by_principal ON tokens (principal_key, created_at);
