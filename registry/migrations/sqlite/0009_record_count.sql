-- The number of records, kept by every write in its own transaction (as PostgreSQL's
-- change_counter.records): count(*) reads the whole table, and the node refreshes its
-- identifier gauge every few seconds — a full scan each time on a store of billions.
CREATE TABLE record_count (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    n   INTEGER NOT NULL
);
INSERT INTO record_count (one, n) SELECT 1, count(*) FROM records;
