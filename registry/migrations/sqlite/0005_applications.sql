-- Enterprises' applications for prefixes (企业前缀申请与实名审核) and their review.
-- 'seq' is the order of submission (newest first in listings), 'id' is what callers see.
-- A decision is taken once: state goes from 'pending' to 'approved' or 'rejected'.
CREATE TABLE applications (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,          -- as applied for
    prefix_key    TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    name          TEXT NOT NULL,
    credit_code   TEXT NOT NULL,
    contact_name  TEXT NOT NULL,
    contact_phone TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    industry      TEXT NOT NULL,
    address       TEXT NOT NULL,
    submitted_at  INTEGER NOT NULL,
    decided_at    INTEGER NOT NULL,       -- 0 while pending
    reviewer      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    request_id    TEXT NOT NULL,          -- '' when the applicant gave none
    fingerprint   TEXT NOT NULL
);
-- One pending application per prefix (the store checks first, this index guarantees it).
CREATE UNIQUE INDEX applications_one_pending ON applications (prefix_key)
    WHERE state = 'pending';
CREATE UNIQUE INDEX applications_by_request ON applications (request_id)
    WHERE request_id <> '';
CREATE INDEX applications_by_state ON applications (state, seq);
