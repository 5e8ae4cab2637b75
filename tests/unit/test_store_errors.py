"""The one table that turns SQLite driver errors into domain errors (registry.stores.sqlite).

The conditions themselves are provoked on real files in
tests/contract/test_sqlite_failures.py; this checks every row of the table, including
those (I/O error, permission) that cannot be provoked portably.
"""

from __future__ import annotations

import sqlite3

import pytest

from registry.errors import AlreadyExists, Unavailable
from registry.store import StoreDefect
from registry.stores.sqlite import _translate


def driver_error(kind: type[sqlite3.Error], code: int | None,
                 text: str = "near \"SELECT\": /var/lib/idnode/idnode.sqlite3") -> sqlite3.Error:
    exc = kind(text)
    if code is not None:
        exc.sqlite_errorcode = code
        exc.sqlite_errorname = "SQLITE_SOMETHING"
    return exc


@pytest.mark.parametrize(("kind", "code", "words"), [
    (sqlite3.OperationalError, 5, "locked by another writer"),          # BUSY
    (sqlite3.OperationalError, 261, "locked by another writer"),        # BUSY_RECOVERY
    (sqlite3.OperationalError, 6, "locked"),                            # LOCKED
    (sqlite3.OperationalError, 8, "read-only"),                         # READONLY
    (sqlite3.OperationalError, 10, "could not be read or written"),     # IOERR
    (sqlite3.OperationalError, 4874, "could not be read or written"),   # IOERR_SHORT_READ
    (sqlite3.OperationalError, 13, "disk is full"),                     # FULL
    (sqlite3.OperationalError, 14, "cannot be opened"),                 # CANTOPEN
    (sqlite3.OperationalError, 3, "permission"),                        # PERM
    (sqlite3.DatabaseError, 11, "damaged"),                             # CORRUPT
    (sqlite3.DatabaseError, 26, "not a database"),                      # NOTADB
    (sqlite3.ProgrammingError, None, "closed"),
])
def test_conditions_of_the_database_are_unavailable(kind: type[sqlite3.Error], code: int | None,
                                                    words: str) -> None:
    text = "Cannot operate on a closed database." if code is None else "disk I/O error"
    error = _translate(driver_error(kind, code, text))
    assert type(error) is Unavailable
    assert error.message.startswith("the store is unavailable: ")
    assert words in error.message
    assert "sqlite" not in error.message.lower() and "/" not in error.message


@pytest.mark.parametrize("code", [1555, 2067])  # CONSTRAINT_PRIMARYKEY, CONSTRAINT_UNIQUE
def test_a_duplicate_key_is_already_exists(code: int) -> None:
    error = _translate(driver_error(sqlite3.IntegrityError, code,
                                    "UNIQUE constraint failed: principals.id"))
    assert type(error) is AlreadyExists
    assert "principals" not in error.message and "sqlite" not in error.message.lower()


@pytest.mark.parametrize(("kind", "code"), [
    (sqlite3.IntegrityError, 1299),    # CONSTRAINT_NOTNULL: our bug, not the caller's
    (sqlite3.IntegrityError, 787),     # CONSTRAINT_FOREIGNKEY
    (sqlite3.OperationalError, 1),     # "no such table": a schema the code does not match
    (sqlite3.InterfaceError, None),    # a parameter of an unsupported type
])
def test_anything_else_is_a_store_defect_without_details(kind: type[sqlite3.Error],
                                                         code: int | None) -> None:
    error = _translate(driver_error(kind, code))
    assert type(error) is StoreDefect
    assert "SELECT" not in str(error) and "/" not in str(error)
