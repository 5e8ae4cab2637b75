-- The audit log (registry/audit.py): one row per accepted write, inserted in the write's
-- own transaction, and one per refused attempt (outcome = the status name). Key columns
-- are COLLATE "C" (byte-wise, as in SQLite and the memory store).
CREATE TABLE audit (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             bigint NOT NULL,            -- seconds since the epoch
    principal      text NOT NULL,              -- as registered ('' anonymous)
    principal_key  text COLLATE "C" NOT NULL,  -- normalised, for the principal filter
    action         text NOT NULL,
    target         text NOT NULL,              -- the identifier or prefix
    prefix_key     text COLLATE "C" NOT NULL,  -- the prefix the target belongs to
    request_id     text NOT NULL,
    outcome        text COLLATE "C" NOT NULL,  -- 'ok' or the status name
    client_address text NOT NULL,
    door           text NOT NULL,
    message        text NOT NULL,              -- the refusal's public message
    seq            bigint NOT NULL             -- change-log sequence of an accepted write, else 0
);
-- "Newest first" within one prefix or principal is a backwards scan of (filter, id);
-- refused rows are few: a partial index.
CREATE INDEX audit_by_prefix ON audit (prefix_key, id);
CREATE INDEX audit_by_principal ON audit (principal_key, id);
CREATE INDEX audit_by_time ON audit (at, id);
CREATE INDEX audit_refused ON audit (id) WHERE outcome <> 'ok';

-- Followers see who made each change, from where and through which door.
ALTER TABLE changes ADD COLUMN client_address text NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN door text NOT NULL DEFAULT '';
