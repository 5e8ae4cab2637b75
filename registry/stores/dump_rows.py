"""What a whole-store dump (``idnode db export`` / ``import``, node/cli/db.py) reads from
and writes to the SQL backends, shared by SQLite and PostgreSQL (same tables and columns
on both; only the parameter mark differs).

Records are read a page at a time in key order, so a dump never holds more than one page
(PostgreSQL joins its value rows with :func:`records_sql` and :func:`group_records`;
SQLite keeps a record's values in its row since migration 0008 and reads them there).
The other tables the dump carries are read a page at a time by their primary key
(:data:`TABLES`) and written back as rows, exactly as stored: hashes of secrets stay
hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from registry.identifier import Handle
from registry.record import Record
from registry.stores.application_rows import INSERT_COLUMNS as APPLICATION_COLUMNS
from registry.stores.value_codec import decode_value
from registry.values import Permissions, Value


@dataclass(frozen=True)
class Table:
    """One table a dump carries besides the records.

    The first selected column orders and pages the table; ``insert`` names the columns
    written back (for applications the sequence is left to the database, which numbers
    rows in the order they are written back: the dump's order)."""

    name: str
    select: str
    insert: str

    @property
    def order(self) -> str:
        return self.select.split(",", 1)[0]

    @property
    def skip(self) -> int:
        """How many leading selected columns are not written back."""
        return len(self.select.split(",")) - len(self.insert.split(","))


_TOKEN_COLUMNS = ("id, secret_hash, principal, principal_key, scope, prefix_key, prefix, "  # noqa: S105
                  "created_at, expires_at, revoked_at, created_by, description")
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("prefixes", "key, prefix, owner, created_at", "key, prefix, owner, created_at"),
    Table("principals", "id, display, role, prefix_key, secret_hash, created_at",
          "id, display, role, prefix_key, secret_hash, created_at"),
    Table("tokens", _TOKEN_COLUMNS, _TOKEN_COLUMNS),
    Table("applications", "seq, " + APPLICATION_COLUMNS, APPLICATION_COLUMNS),
    # Keyed by (prefix, version): paged by the two joined ('/' is in neither).
    Table("templates", "prefix_key || '/' || version, prefix_key, version, serial, state, "
          "updated_at, body", "prefix_key, version, serial, state, updated_at, body"),
)}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"a dump carries no table {name!r}") from None


def page_sql(t: Table, mark: str) -> str:
    """One page of ``t`` after a value of its order column."""
    return (f"SELECT {t.select} FROM {t.name} WHERE {t.order} > {mark} "  # noqa: S608
            f"ORDER BY {t.order} LIMIT {mark}")


def insert_sql(t: Table, mark: str) -> str:
    marks = ", ".join([mark] * len(t.insert.split(",")))
    return f"INSERT INTO {t.name} ({t.insert}) VALUES ({marks})"  # noqa: S608


def first_after(t: Table) -> str | int:
    """The value before every row of ``t`` (its order column is text, or a number)."""
    return 0 if t.name == "applications" else ""


def insert_rows(t: Table, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r[t.skip:]) for r in rows]


def records_sql(mark: str) -> str:
    """A page of records after a key, with their values: one statement, one snapshot."""
    return ("SELECT r.key, r.handle, r.version, r.seq, r.updated_at, v.idx, v.type, v.kind, "  # noqa: S608
            "v.data, v.ttl, v.ts, v.perms FROM (SELECT key, handle, version, seq, updated_at "
            f"FROM records WHERE key > {mark} ORDER BY key LIMIT {mark}) r "
            "LEFT JOIN record_values v ON v.key = r.key ORDER BY r.key, v.idx")


def group_records(rows: Iterable[Sequence[Any]]) -> list[Record]:
    """The rows of :func:`records_sql` as records, in key order."""
    out: list[Record] = []
    key = None
    head: Sequence[Any] = ()
    values: list[Value] = []

    def flush() -> None:
        out.append(Record(Handle.parse(head[1]), tuple(values), int(head[2]), int(head[3]),
                          int(head[4])))

    for r in rows:
        if r[0] != key:
            if key is not None:
                flush()
            key, head, values = r[0], r, []
        if r[5] is not None:
            values.append(Value(int(r[5]), r[6], decode_value(int(r[7]), bytes(r[8])),
                                int(r[9]), int(r[10]), Permissions.from_bits(int(r[11]))))
    if key is not None:
        flush()
    return out
