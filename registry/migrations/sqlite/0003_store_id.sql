-- Facts about the store itself. 'store_id' is a random id created once, when this
-- migration runs (the database's creation for new stores), and never changed: it tells
-- one database from another (a restore, a fresh store) where sequences mean other things.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('store_id', lower(hex(randomblob(16))));
