-- The audit log (registry/audit.py): one row per accepted write, inserted in the write's
-- own transaction, and one per refused attempt (outcome = the status name). ``id`` is
-- the rowid: increasing in insertion order, newest first is a backwards scan.
CREATE TABLE audit (
    id             INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,     -- seconds since the epoch
    principal      TEXT NOT NULL,        -- as registered, e.g. 300:88.118.8/ADMIN ('' anonymous)
    principal_key  TEXT NOT NULL,        -- normalised, for the principal filter
    action         TEXT NOT NULL,        -- register, update, delete, bulk_register, ...
    target         TEXT NOT NULL,        -- the identifier or prefix
    prefix_key     TEXT NOT NULL,        -- the prefix the target belongs to, for the filter
    request_id     TEXT NOT NULL,
    outcome        TEXT NOT NULL,        -- 'ok' or the status name (PERMISSION_DENIED, ...)
    client_address TEXT NOT NULL,
    door           TEXT NOT NULL,        -- grpc, http, ...
    message        TEXT NOT NULL,        -- the refusal's public message ('' when accepted)
    seq            INTEGER NOT NULL      -- change-log sequence of an accepted write, else 0
);
-- Each filter is an index whose entries end with the rowid, so "newest first" within one
-- prefix or principal is a backwards range scan. Refused rows are few: a partial index.
CREATE INDEX audit_by_prefix ON audit (prefix_key);
CREATE INDEX audit_by_principal ON audit (principal_key);
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_refused ON audit (id) WHERE outcome <> 'ok';

-- Followers see who made each change, from where and through which door.
ALTER TABLE changes ADD COLUMN client_address TEXT NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN door TEXT NOT NULL DEFAULT '';
