"""Migrations 0008 and 0009 on a database the previous build wrote: 0008 moves every value
from ``record_values`` rows into its record's row, 0009 counts the records once.

A database is built at schema version 7 exactly as the previous build wrote it (one row
per value, data encoded by registry/stores/value_codec.py), then opened by this build:
every record must come back with the same values, of every kind, in index order.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.identifier import Handle
from registry.record import Record
from registry.stores.sqlite import SQLiteStore, _migrations, split_statements
from registry.stores.value_codec import encode_value
from registry.values import AdminRef, Permissions, Value, ValueList, ValueRef

NOW = 1_700_000_000

# Handles have no control or line-breaking characters (registry/identifier.py).
_handles = st.text(st.characters(blacklist_categories=["Cc", "Cf", "Cs", "Zl", "Zp"]),
                   min_size=1, max_size=20)
_data = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
    st.binary(max_size=40),
    st.builds(AdminRef, _handles, st.integers(0, 65535),
              st.text("01", min_size=12, max_size=12)),
    st.builds(ValueList, st.lists(st.builds(ValueRef, _handles, st.integers(0, 65535)),
                                  max_size=4).map(tuple)),
)
_values = st.lists(
    st.builds(Value, st.integers(1, 2**31 - 1), st.sampled_from(["URL", "名称", "HS_ADMIN"]),
              _data, st.integers(0, 2**31 - 1), st.integers(0, 2**40),
              st.integers(0, 15).map(Permissions.from_bits)),
    max_size=6, unique_by=lambda v: v.index).map(lambda vs: tuple(sorted(vs)))


def version_7(path: Path, records: dict[str, tuple[Value, ...]]) -> None:
    """A database as the build before 0008 left it, holding ``records``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, sql in _migrations():
        if version > 7:
            break
        for statement in split_statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    for seq, (handle, values) in enumerate(records.items(), start=1):
        key = Handle.parse(handle).key
        conn.execute("INSERT INTO records (key, handle, prefix_key, version, seq, updated_at) "
                     "VALUES (?, ?, ?, 1, ?, ?)", (key, handle, "88.118.8", seq, NOW))
        conn.executemany(
            "INSERT INTO record_values (key, idx, type, kind, data, ttl, ts, perms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(key, v.index, v.type, *encode_value(v), v.ttl, v.timestamp,
              v.permissions.to_bits()) for v in values])
    conn.execute("COMMIT")
    conn.close()


def migrated(records: dict[str, tuple[Value, ...]]) -> dict[str, Record | None]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "idnode.sqlite3"
        version_7(path, records)
        store = SQLiteStore(path)
        try:
            assert store.schema_version() >= 8
            return {h: store.get(Handle.parse(h).key) for h in records}
        finally:
            store.close()


def test_every_kind_of_value_survives_the_move_into_the_record_row() -> None:
    records = {
        "88.118.8/PN-1": (
            Value(1, "HS_ADMIN", AdminRef("0.NA/88.118.8", 200, "111111111111"), 86400, NOW,
                  Permissions.from_bits(15)),
            Value(2, "URL", 'https://例子.cn/p?q="a"\\b\n', 60, NOW),
            Value(3, "BIN", b"\x00\xff\x10", 0, NOW),
            Value(4, "HS_VLIST", ValueList((ValueRef("88.118.8/ADMIN", 300),
                                            ValueRef("88.118.8/a:b", 301))), 10, NOW),
            Value(5, "EMPTY", "", 10, NOW),
            Value(6, "NOBODY", ValueList(()), 10, NOW)),
        "88.118.8/PN-2": (Value(2000, "名称", "主轴\x00尾", 86400, NOW),),
        "88.118.8/PN-3": (),
    }
    after = migrated(records)
    for handle, values in records.items():
        record = after[handle]
        assert record is not None and record.values == values, handle
        assert (str(record.handle), record.version, record.updated_at) == (handle, 1, NOW)


def test_the_old_value_table_is_gone_after_the_move(tmp_path: Path) -> None:
    path = tmp_path / "idnode.sqlite3"
    version_7(path, {"88.118.8/x": (Value(1, "URL", "u", 1, NOW),)})
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "record_values" not in tables and "records" in tables


@settings(max_examples=60, deadline=None)
@given(_values)
def test_any_values_come_back_unchanged_after_the_move(values: tuple[Value, ...]) -> None:
    record = migrated({"88.118.8/h": values})["88.118.8/h"]
    assert record is not None and record.values == values


def test_the_record_count_starts_from_the_records_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "idnode.sqlite3"
    version_7(path, {f"88.118.8/p{i}": (Value(1, "URL", "u", 1, NOW),) for i in range(7)})
    store = SQLiteStore(path)
    try:
        assert store.counts().identifiers == 7
    finally:
        store.close()
