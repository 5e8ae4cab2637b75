"""The SQLite migration runner's statement splitter (sqlite3.complete_statement based)."""

from __future__ import annotations

import sqlite3

from registry.stores.sqlite import split_statements

SCRIPT = """
-- a comment; with a semicolon
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO notes (body) VALUES ('one; two');
INSERT INTO notes (body) VALUES ('it''s; quoted');
CREATE TABLE "odd;name" (x INTEGER);
CREATE TABLE audit (body TEXT);
CREATE TRIGGER notes_audit AFTER INSERT ON notes
BEGIN
    INSERT INTO audit (body) VALUES ('saw; ' || new.body);
    INSERT INTO audit (body) VALUES ('twice');
END;
/* a block comment; also with one */
INSERT INTO notes (body) VALUES ('three')
"""


def test_semicolons_inside_literals_names_comments_and_triggers_do_not_split() -> None:
    statements = split_statements(SCRIPT)
    assert len(statements) == 7
    assert statements[3] == 'CREATE TABLE "odd;name" (x INTEGER);'
    assert statements[2] == "INSERT INTO notes (body) VALUES ('it''s; quoted');"
    assert statements[5].startswith("CREATE TRIGGER notes_audit")
    assert statements[5].endswith("END;")
    assert all(sqlite3.complete_statement(s + ";") for s in statements)


def test_the_statements_run_one_by_one_inside_a_transaction() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in split_statements(SCRIPT):
            conn.execute(statement)
        conn.execute("COMMIT")
        assert [r[0] for r in conn.execute("SELECT body FROM notes ORDER BY id")] == [
            "one; two", "it's; quoted", "three"]
        assert [r[0] for r in conn.execute("SELECT body FROM audit")] == [
            "saw; three", "twice"]  # the trigger exists from its statement on
        assert conn.execute('SELECT count(*) FROM "odd;name"').fetchone()[0] == 0
    finally:
        conn.close()


def test_the_naive_split_would_have_broken_this_script() -> None:
    naive = [s for s in SCRIPT.split(";") if s.strip()]
    assert len(naive) != len(split_statements(SCRIPT))
    assert any(not sqlite3.complete_statement(s + ";") for s in naive[1:])


def test_blank_and_comment_only_tails_are_not_statements() -> None:
    assert split_statements("") == []
    assert split_statements("  \n-- only a comment\n") == []
    assert split_statements("SELECT 1;\n\n-- done\n") == ["SELECT 1;"]
    assert split_statements("SELECT 1;;SELECT 2") == ["SELECT 1;", "SELECT 2"]
