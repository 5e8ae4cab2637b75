"""The one contract every store backend passes (see registry/store.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.access.principals import Principal, Role, StoredPrincipal
from registry.errors import AlreadyExists, InvalidArgument, NotFound, StaleEtag
from registry.identifier import Handle, Prefix
from registry.record import Operation, Precondition, RequestKey, Write
from registry.store import Store
from registry.stores.memory import MemoryStore
from registry.stores.sqlite import SQLiteStore
from registry.values import AdminRef, Permissions, Value

NOW = 1_700_000_000


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield s
    s.close()


def register(handle: str, *values: Value, request: RequestKey | None = None) -> Write:
    return Write(Operation.REGISTER, Handle.parse(handle), values or (Value(1, "URL", "u"),),
                 Precondition(absent=True), "tester", request)


def test_get_returns_what_apply_stored_with_every_kind_of_data(store: Store) -> None:
    values = (Value(1, "URL", "https://例え.jp", 60, NOW, Permissions(True, True, False, False)),
              Value(2, "HS_PUBKEY", b"\x00\xff", 86400, NOW),
              Value(100, "HS_ADMIN", AdminRef("88.118.8/ADMIN", 300, "011111110011"), 86400, NOW))
    result = store.apply(register("88.118.8/Mixed-Case", *values), NOW)
    record = store.get("88.118.8/mixed-case")
    assert record is not None
    assert str(record.handle) == "88.118.8/Mixed-Case"
    assert record.values == values
    assert (record.version, record.etag) == (1, result.etag)


def test_absent_precondition_fails_when_present(store: Store) -> None:
    store.apply(register("88.118.8/A"), NOW)
    with pytest.raises(AlreadyExists):
        store.apply(register("88.118.8/a"), NOW)


def test_sequence_precondition_detects_a_concurrent_write(store: Store) -> None:
    first = store.apply(register("88.118.8/A"), NOW)
    h = Handle.parse("88.118.8/A")
    upd = Write(Operation.UPDATE, h, (Value(1, "URL", "v2"),),
                Precondition(sequence=first.sequence), "tester")
    second = store.apply(upd, NOW)
    assert second.version == 2
    with pytest.raises(StaleEtag):
        store.apply(upd, NOW)
    missing = Write(Operation.UPDATE, Handle.parse("88.118.8/none"), (Value(1, "URL", "x"),),
                    Precondition(sequence=1), "tester")
    with pytest.raises(NotFound):
        store.apply(missing, NOW)


def test_delete_removes_the_record_and_logs_the_change(store: Store) -> None:
    first = store.apply(register("88.118.8/A"), NOW)
    store.apply(Write(Operation.DELETE, Handle.parse("88.118.8/A"), None,
                      Precondition(sequence=first.sequence), "tester"), NOW)
    assert store.get("88.118.8/a") is None
    ops = [c.operation for c in store.changes_since(0, 10)]
    assert ops == [Operation.REGISTER, Operation.DELETE]


def test_change_log_is_ordered_and_resumable(store: Store) -> None:
    for i in range(10):
        store.apply(register(f"88.118.8/C{i}"), NOW)
    changes = store.changes_since(0, 100)
    assert [c.handle for c in changes] == [f"88.118.8/C{i}" for i in range(10)]
    seqs = [c.sequence for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    assert [c.handle for c in store.changes_since(seqs[6], 100)] == ["88.118.8/C7", "88.118.8/C8",
                                                                     "88.118.8/C9"]
    assert store.last_sequence() == seqs[-1]
    assert changes[0].values[0].data == "u"


def test_request_ids_replay_or_conflict(store: Store) -> None:
    key = RequestKey("tester", "req-1", "fp-a")
    first = store.apply(register("88.118.8/A", request=key), NOW)
    again = store.apply(register("88.118.8/A", request=key), NOW)
    assert again.replayed and again.etag == first.etag
    with pytest.raises(InvalidArgument):
        store.apply(register("88.118.8/A", request=RequestKey("tester", "req-1", "fp-b")), NOW)
    assert len(store.changes_since(0, 10)) == 1


def test_apply_many_fails_rows_alone(store: Store) -> None:
    store.apply(register("88.118.8/DUP"), NOW)
    out = store.apply_many([register("88.118.8/N1"), register("88.118.8/DUP"),
                            register("88.118.8/N2")], NOW)
    assert [type(o).__name__ for o in out] == ["WriteResult", "AlreadyExists", "WriteResult"]
    assert store.counts().identifiers == 3


def test_list_keys_pages_in_key_order_within_one_prefix(store: Store) -> None:
    for name in ["b", "A", "c"]:
        store.apply(register(f"88.118.8/{name}"), NOW)
    store.apply(register("88.118.8.1/z"), NOW)
    assert store.list_keys("88.118.8", "", 10) == [("88.118.8/a", "88.118.8/A"),
                                                   ("88.118.8/b", "88.118.8/b"),
                                                   ("88.118.8/c", "88.118.8/c")]
    assert store.list_keys("88.118.8", "88.118.8/a", 1) == [("88.118.8/b", "88.118.8/b")]


def test_principals_and_prefix_allocation_are_atomic(store: Store) -> None:
    owner = StoredPrincipal(Principal("300:88.118.8/ADMIN", Role.PREFIX_OWNER, "88.118.8"),
                            "scrypt$hash", NOW)
    admin_write = register("88.118.8/ADMIN")
    store.allocate_prefix(Prefix.parse("88.118.8"), owner, admin_write, NOW)
    assert store.has_prefix("88.118.8")
    got = store.get_principal("300:88.118.8/admin")
    assert got is not None and got.principal == owner.principal
    with pytest.raises(AlreadyExists):
        store.allocate_prefix(Prefix.parse("88.118.8"), owner, admin_write, NOW)
    # A prefix whose ADMIN identifier already exists is refused as a whole.
    store.apply(register("88.118.9/ADMIN"), NOW)
    owner9 = StoredPrincipal(Principal("300:88.118.9/ADMIN", Role.PREFIX_OWNER, "88.118.9"),
                             "h", NOW)
    with pytest.raises(AlreadyExists):
        store.allocate_prefix(Prefix.parse("88.118.9"), owner9, register("88.118.9/ADMIN"), NOW)
    assert not store.has_prefix("88.118.9")
    assert store.get_principal("300:88.118.9/admin") is None
    assert store.counts().prefixes == 1


def test_concurrent_writers_never_lose_an_update(store: Store) -> None:
    first = store.apply(register("88.118.8/COUNTER", Value(1, "n", "0")), NOW)
    del first
    h = Handle.parse("88.118.8/COUNTER")
    errors: list[Exception] = []

    def bump(times: int) -> None:
        done = 0
        while done < times:
            current = store.get(h.key)
            assert current is not None
            n = int(str(current.values[0].data)) + 1
            try:
                store.apply(Write(Operation.UPDATE, h, (Value(1, "n", str(n)),),
                                  Precondition(sequence=current.sequence), "t"), NOW)
                done += 1
            except StaleEtag:
                continue
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    final = store.get(h.key)
    assert final is not None and final.values[0].data == "100" and final.version == 101


def test_sqlite_keeps_everything_across_reopen_and_records_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    s = SQLiteStore(path)
    s.apply(register("88.118.8/KEEP"), NOW)
    s.close()
    s2 = SQLiteStore(path)
    try:
        assert s2.get("88.118.8/keep") is not None
        assert s2.schema_version() == 2
        assert s2.last_sequence() == 1
    finally:
        s2.close()

