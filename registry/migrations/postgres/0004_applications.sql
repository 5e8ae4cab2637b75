-- Enterprises' applications for prefixes (企业前缀申请与实名审核) and their review.
-- 'seq' is the order of submission (newest first in listings), 'id' is what callers see.
-- Applications are written under the change_counter lock like every write, so 'seq'
-- order is commit order. A decision is taken once: 'pending' to 'approved' or 'rejected'.
CREATE TABLE applications (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text COLLATE "C" NOT NULL UNIQUE,
    prefix        text NOT NULL,          -- as applied for
    prefix_key    text COLLATE "C" NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    name          text NOT NULL,
    credit_code   text NOT NULL,
    contact_name  text NOT NULL,
    contact_phone text NOT NULL,
    contact_email text NOT NULL,
    industry      text NOT NULL,
    address       text NOT NULL,
    submitted_at  bigint NOT NULL,
    decided_at    bigint NOT NULL,        -- 0 while pending
    reviewer      text NOT NULL,
    reason        text NOT NULL,
    request_id    text COLLATE "C" NOT NULL,  -- '' when the applicant gave none
    fingerprint   text NOT NULL
);
-- One pending application per prefix (the store checks first, this index guarantees it).
CREATE UNIQUE INDEX applications_one_pending ON applications (prefix_key)
    WHERE state = 'pending';
CREATE UNIQUE INDEX applications_by_request ON applications (request_id)
    WHERE request_id <> '';
CREATE INDEX applications_by_state ON applications (state, seq);
