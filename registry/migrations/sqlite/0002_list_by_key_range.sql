-- Listing a prefix is a range scan of the primary key (every key of prefix P starts with
-- "P/" and sorts before "P0"), so the secondary index only slowed every insert down.
DROP INDEX IF EXISTS records_by_prefix;
