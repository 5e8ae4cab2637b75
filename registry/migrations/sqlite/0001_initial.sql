-- idnode SQLite schema, version 1.
CREATE TABLE records (
    key        TEXT PRIMARY KEY,      -- normalised identifier (ASCII case-folded, NFC)
    handle     TEXT NOT NULL,         -- registered spelling
    prefix_key TEXT NOT NULL,
    version    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,      -- change-log sequence of the last write (the etag)
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX records_by_prefix ON records (prefix_key, key);

CREATE TABLE record_values (
    key   TEXT NOT NULL,
    idx   INTEGER NOT NULL,
    type  TEXT NOT NULL,
    kind  INTEGER NOT NULL,           -- 0 text, 1 binary, 2 admin
    data  BLOB NOT NULL,
    ttl   INTEGER NOT NULL,
    ts    INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    PRIMARY KEY (key, idx)
) WITHOUT ROWID;

CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    op         TEXT NOT NULL,
    key        TEXT NOT NULL,
    handle     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    values_json TEXT NOT NULL,
    principal  TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at         INTEGER NOT NULL
);

CREATE TABLE requests (
    scope       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    handle      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, request_id)
) WITHOUT ROWID;
CREATE INDEX requests_by_age ON requests (created_at);

CREATE TABLE principals (
    id          TEXT PRIMARY KEY,     -- normalised identity, e.g. 300:88.118.8/admin
    display     TEXT NOT NULL,
    role        TEXT NOT NULL,
    prefix_key  TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE prefixes (
    key        TEXT PRIMARY KEY,
    prefix     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
