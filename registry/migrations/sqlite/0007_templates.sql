-- Metadata templates (元数据模板): one row per prefix and version. The template itself is
-- JSON in the SNMS shape (registry.templates.template_to_dict), 'serial' orders a
-- prefix's versions by creation, 'state' is there for people and queries. The rules
-- (draft → published → withdrawn, stable indexes) are checked under the write lock.
CREATE TABLE templates (
    prefix_key TEXT NOT NULL,
    version    TEXT NOT NULL,
    serial     INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('draft', 'published', 'withdrawn')),
    updated_at INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (prefix_key, version)
) WITHOUT ROWID;
