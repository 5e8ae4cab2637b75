-- Metadata templates (元数据模板): one row per prefix and version. The template itself is
-- JSON in the SNMS shape (registry.templates.template_to_dict), 'serial' orders a
-- prefix's versions by creation, 'state' is there for people and queries. Templates are
-- written under the change_counter lock like every write, so the rules (draft →
-- published → withdrawn, stable indexes) are checked against what is committed.
CREATE TABLE templates (
    prefix_key text COLLATE "C" NOT NULL,
    version    text COLLATE "C" NOT NULL,
    serial     bigint NOT NULL,
    state      text NOT NULL CHECK (state IN ('draft', 'published', 'withdrawn')),
    updated_at bigint NOT NULL,
    body       text NOT NULL,
    PRIMARY KEY (prefix_key, version)
);
