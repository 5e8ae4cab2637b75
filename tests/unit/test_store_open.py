"""registry.stores.open_store: which URL opens which backend, and which are refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from registry.errors import InvalidArgument
from registry.stores import MemoryStore, SQLiteStore, open_store


def test_memory_url_opens_a_fresh_memory_store() -> None:
    a, b = open_store("memory:"), open_store("memory:")
    try:
        assert isinstance(a, MemoryStore) and a.store_id() != b.store_id()
    finally:
        a.close()
        b.close()


def test_absolute_sqlite_url_opens_that_file_creating_private_directories(
        tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "idnode.db"
    store = open_store(f"sqlite:///{target}", sqlite_synchronous="normal")
    try:
        assert isinstance(store, SQLiteStore)
        assert target.exists()
        assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        store.close()


def test_relative_sqlite_url_is_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:data/idnode.db")
    try:
        assert isinstance(store, SQLiteStore)
        assert (tmp_path / "data" / "idnode.db").exists()
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()
    assert os.getcwd() == str(tmp_path)


def test_a_postgresql_url_with_a_driver_suffix_is_refused_without_the_secret() -> None:
    # postgres:// and postgresql:// open the PostgreSQL store (tests/contract covers
    # them against a real server); SQLAlchemy-style driver suffixes are not ours.
    with pytest.raises(InvalidArgument) as caught:
        open_store("postgresql+psycopg://u:secret@db/idnode")
    assert "secret" not in caught.value.message


@pytest.mark.parametrize(("url", "words"), [
    ("mysql://u:secret@db/idnode", "scheme 'mysql'"),
    ("redis://localhost", "scheme 'redis'"),
    ("/var/lib/idnode/idnode.db", "no scheme"),
    ("sqlite:", "needs a file path"),
    ("sqlite:///", "needs a file path"),
    ("sqlite://host/path.db", "not a host"),
    ("sqlite:///tmp/x.db?mode=ro", "needs a file path"),
    ("memory:extra", "takes no path"),
])
def test_other_urls_are_invalid_arguments_naming_the_problem(url: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        open_store(url)
    assert words in caught.value.message
    assert "secret" not in caught.value.message


def test_a_bad_synchronous_setting_is_refused_before_any_sql(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="synchronous"):
        open_store(f"sqlite:///{tmp_path}/x.db", sqlite_synchronous="FULL; DROP TABLE x")
    assert not (tmp_path / "x.db").exists()
