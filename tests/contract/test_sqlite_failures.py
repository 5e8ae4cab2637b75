"""SQLite-specific: driver failures on a real file become domain errors at the store edge.

Each test provokes the condition for real (another connection's lock, a read-only file,
a damaged header, a size limit) and asserts the exact exception class and that its
message names the condition without SQL, "sqlite" or the file's path.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.access.principals import Principal, StoredPrincipal
from registry.errors import AlreadyExists, IdnodeError, Unavailable
from registry.identifier import Handle
from registry.record import Operation, Precondition, Write
from registry.stores.sqlite import SQLiteStore, _migrations, split_statements
from registry.values import Value

NOW = 1_700_000_000


def register(handle: str, data: str = "u") -> Write:
    return Write(Operation.REGISTER, Handle.parse(handle), (Value(1, "URL", data),),
                 Precondition(absent=True), "tester")


def assert_plain(error: IdnodeError, path: Path, *words: str) -> None:
    message = error.message
    assert "sqlite" not in message.lower()
    assert str(path) not in message and path.name not in message
    for sql in ("SELECT", "INSERT", "BEGIN", "PRAGMA", "records", "principals"):
        assert sql not in message
    assert message.startswith("the store is unavailable: ") or not isinstance(
        error, Unavailable)
    for word in words:
        assert word in message, message


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(path, busy_timeout_ms=50)
    s.apply(register("88.118.8/THERE"), NOW)
    yield s
    s.close()


def test_a_write_while_another_connection_holds_the_lock_is_unavailable(
        store: SQLiteStore, path: Path) -> None:
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            store.apply(register("88.118.8/BLOCKED"), NOW)
        assert time.monotonic() - started < 5.0  # the 50 ms busy timeout, not 10 s
        assert type(caught.value) is Unavailable
        assert_plain(caught.value, path, "locked by another writer")
        with pytest.raises(Unavailable):
            store.add_principal(StoredPrincipal(
                Principal.of("300:88.118.8/ADMIN"), "h", NOW))
        with pytest.raises(Unavailable), store.unit_of_work() as unit:
            unit.apply(register("88.118.8/BLOCKED"), NOW)
        # WAL: readers never wait for the writer, so reads go on while the lock is held.
        assert store.get("88.118.8/there") is not None
        assert [c.handle for c in store.changes_since(0, 10)] == ["88.118.8/THERE"]
        assert store.last_sequence() == 1
        assert store.counts().identifiers == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Once the lock is gone the store writes again: nothing was left half done.
    store.apply(register("88.118.8/BLOCKED"), NOW)
    assert store.get("88.118.8/blocked") is not None


def test_writes_to_a_read_only_file_are_unavailable(path: Path) -> None:
    SQLiteStore(path).close()
    first = SQLiteStore(path)
    first.apply(register("88.118.8/THERE"), NOW)
    first.close()
    store = SQLiteStore(path, read_only=True)  # the file opened with ?mode=ro
    try:
        with pytest.raises(Unavailable) as caught:
            store.apply(register("88.118.8/NEW"), NOW)
        assert type(caught.value) is Unavailable
        assert_plain(caught.value, path, "read-only")
        assert store.get("88.118.8/there") is not None  # reads work
        assert store.last_sequence() == 1
    finally:
        store.close()


def test_a_file_with_a_damaged_header_is_refused_on_open(path: Path) -> None:
    first = SQLiteStore(path)
    first.apply(register("88.118.8/THERE"), NOW)
    first.close()
    assert not Path(f"{path}-wal").exists()  # checkpointed: the header is only in the file
    with path.open("r+b") as f:
        f.write(b"\x00" * 100)
    with pytest.raises(Unavailable) as caught:
        SQLiteStore(path)
    assert type(caught.value) is Unavailable
    assert_plain(caught.value, path, "not a database")


def test_a_full_disk_is_unavailable_and_rolls_back(store: SQLiteStore, path: Path) -> None:
    # The size limit stands in for a full disk: SQLite reports both as SQLITE_FULL.
    writer = store._writer
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count={pages + 2}")
    big = "x" * 20_000
    with pytest.raises(Unavailable) as caught:
        store.apply_many([register(f"88.118.8/BIG{i}", big) for i in range(20)], NOW)
    assert type(caught.value) is Unavailable
    assert_plain(caught.value, path, "disk is full")
    assert store.get("88.118.8/big0") is None
    writer.execute("PRAGMA max_page_count=1073741823")
    store.apply(register("88.118.8/AFTER"), NOW)  # the write lock was released
    assert store.last_sequence() == 2


def test_a_duplicate_principal_is_already_exists(store: SQLiteStore, path: Path) -> None:
    owner = StoredPrincipal(Principal.of("300:88.118.8/ADMIN"),
                            "h", NOW)
    store.add_principal(owner)
    with pytest.raises(AlreadyExists) as caught:
        store.add_principal(owner)
    assert type(caught.value) is AlreadyExists
    assert_plain(caught.value, path, "principal 300:88.118.8/ADMIN already exists")


def test_new_files_are_private_whatever_the_umask(path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SQLiteStore(path)
        try:
            store.apply(register("88.118.8/A"), NOW)
            store.get("88.118.8/a")
            for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert name.exists(), name
                assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
        finally:
            store.close()
    finally:
        os.umask(old)


def test_a_database_from_before_the_store_id_is_upgraded_in_place(path: Path) -> None:
    # A database as the previous build left it: migrations 1 and 2, one record.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, sql in _migrations():
        if version <= 2:
            for statement in sql.split(";"):  # the old runner, on the old files
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == max(v for v, _ in _migrations())
        store_id = store.store_id()
        assert len(store_id) == 32
        store.apply(register("88.118.8/A"), NOW)
    finally:
        store.close()
    again = SQLiteStore(path)
    try:
        assert again.store_id() == store_id
        assert again.get("88.118.8/a") is not None
        versions = [r[0] for r in again._reader().execute(
            "SELECT version FROM schema_version ORDER BY version")]
        assert versions == [v for v, _ in _migrations()]  # one row per migration
    finally:
        again.close()


def test_a_migration_numbered_below_the_newest_recorded_one_is_still_applied(
        path: Path) -> None:
    # Branches take migration numbers in advance and merge in any order: a database that
    # recorded 0005 before 0004 shipped must get 0004 when it arrives, not skip it as
    # "older than the schema". Here: applications (0005) missing below the newest.
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE applications")
    conn.execute("DELETE FROM schema_version WHERE version = 5")
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.list_applications(None, 0, 10) == []  # the table is back
        versions = [r[0] for r in store._reader().execute(
            "SELECT version FROM schema_version ORDER BY version")]
        assert versions == [v for v, _ in _migrations()]
    finally:
        store.close()


def test_a_schema_newer_than_the_build_is_refused_naming_both_versions(path: Path) -> None:
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    conn.close()
    known = max(v for v, _ in _migrations())
    with pytest.raises(Unavailable, match=f"version 99, newer than this build knows "
                                          f"\\(up to version {known}\\)"):
        SQLiteStore(path)


def test_the_shipped_migrations_split_as_the_old_runner_did() -> None:
    # Existing databases were migrated by splitting on ';': the new runner must see the
    # same statements in every shipped file.
    for _, sql in _migrations():
        old = [s.strip() for s in sql.split(";") if s.strip()]
        assert [s.rstrip(";").strip() for s in split_statements(sql)] == old
