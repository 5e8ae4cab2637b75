-- idnode PostgreSQL schema, version 1: the same tables as SQLite's (one row per value,
-- the change log, idempotency keys, principals, prefixes, facts about the store), plus
-- the change counter that orders commits.
--
-- Every key column is COLLATE "C": keys compare byte-wise as in SQLite and the memory
-- store, whatever the database's locale, and listing a prefix P is a range scan of the
-- primary key over ["P/", "P0").

CREATE TABLE records (
    key        text COLLATE "C" PRIMARY KEY,  -- normalised identifier (ASCII case-folded, NFC)
    handle     text NOT NULL,                 -- registered spelling
    prefix_key text COLLATE "C" NOT NULL,
    version    integer NOT NULL,
    seq        bigint NOT NULL,               -- change-log sequence of the last write (the etag)
    updated_at bigint NOT NULL
);

CREATE TABLE record_values (
    key   text COLLATE "C" NOT NULL,
    idx   integer NOT NULL,
    type  text NOT NULL,
    kind  smallint NOT NULL,                  -- 0 text, 1 binary, 2 admin, 3 vlist
    data  bytea NOT NULL,
    ttl   bigint NOT NULL,
    ts    bigint NOT NULL,
    perms integer NOT NULL,
    PRIMARY KEY (key, idx)
);

CREATE TABLE changes (
    seq         bigint PRIMARY KEY,           -- taken from change_counter, never a serial
    op          text NOT NULL,
    key         text COLLATE "C" NOT NULL,
    handle      text NOT NULL,
    version     integer NOT NULL,
    values_json text NOT NULL,
    principal   text NOT NULL,
    request_id  text NOT NULL,
    at          bigint NOT NULL
);

-- The commit-order watermark (see registry/store.py, ChangeLog). Every write transaction
-- locks this one row first (SELECT ... FOR UPDATE) and sets it to its last sequence
-- before committing, so the next writer gets its numbers only after this one is visible:
-- sequence order is commit order. A rollback rolls the counter back with the rest.
-- ``records`` is the number of identifiers, kept exactly in the same row so counting
-- them never scans the table.
CREATE TABLE change_counter (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq     bigint NOT NULL,
    records bigint NOT NULL
);
INSERT INTO change_counter (one, seq, records) VALUES (true, 0, 0);

CREATE TABLE requests (
    scope       text COLLATE "C" NOT NULL,
    request_id  text COLLATE "C" NOT NULL,
    fingerprint text NOT NULL,
    handle      text NOT NULL,
    version     integer NOT NULL,
    seq         bigint NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (scope, request_id)
);
CREATE INDEX requests_by_age ON requests (created_at);

CREATE TABLE principals (
    id          text COLLATE "C" PRIMARY KEY, -- normalised identity, e.g. 300:88.118.8/admin
    display     text NOT NULL,
    role        text NOT NULL,
    prefix_key  text COLLATE "C" NOT NULL,
    secret_hash text NOT NULL,
    created_at  bigint NOT NULL
);

CREATE TABLE prefixes (
    key        text COLLATE "C" PRIMARY KEY,
    prefix     text NOT NULL,
    owner      text NOT NULL,
    created_at bigint NOT NULL
);

-- Facts about the store itself. 'store_id' is a random id created once, when this
-- migration runs (the database's creation), and never changed: it tells one database
-- from another (a restore, a fresh store) where sequences mean other things.
CREATE TABLE meta (
    name  text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO meta (name, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''));
