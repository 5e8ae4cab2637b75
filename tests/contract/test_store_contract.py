"""The one contract every store backend passes (see registry/store.py).

Failures of the drivers themselves are in test_sqlite_failures.py (busy, read-only,
damaged, full) and test_postgres_failures.py (dead, restarted, locked, wrong password):
they need the real engine and have no memory twin. PostgreSQL tests run against the
session's server (tests/pg_server.py), each on a fresh database.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from registry import audit
from registry.access.principals import Principal, Scope, StoredPrincipal
from registry.access.tokens import StoredToken
from registry.applications import Application, ApplicationState, Enterprise, new_application
from registry.audit import AuditEntry, AuditQuery
from registry.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StaleEtag,
    Unavailable,
)
from registry.identifier import Handle, Prefix
from registry.record import (
    AuditContext,
    Change,
    Operation,
    Precondition,
    RequestKey,
    Write,
    WriteResult,
)
from registry.registrar import Allocation, Registrar
from registry.store import Store, UnitOfWork
from registry.stores.memory import MemoryStore
from registry.stores.postgres import PostgresStore
from registry.stores.sqlite import SQLiteStore, _migrations
from registry.templates import Template, TemplateState, parse_template, publish, put_draft
from registry.values import AdminRef, Permissions, Value, ValueList, ValueRef

NOW = 1_700_000_000
BACKENDS = ["memory", "sqlite", "postgres"]

StoreFactory = Callable[[], Store]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open new, empty stores of one backend; all are closed after the test. PostgreSQL
    asks for the session server only here, so memory and SQLite runs never start it."""
    backend = str(request.param)
    made: list[Store] = []
    pg_database: Callable[[], str] | None = (
        request.getfixturevalue("pg_database") if backend == "postgres" else None)

    def make() -> Store:
        s: Store
        if backend == "memory":
            s = MemoryStore()
        elif backend == "sqlite":
            s = SQLiteStore(tmp_path / f"s{len(made)}.db")
        else:
            assert pg_database is not None
            s = PostgresStore(pg_database())
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


def register(handle: str, *values: Value, request: RequestKey | None = None) -> Write:
    return Write(Operation.REGISTER, Handle.parse(handle), values or (Value(1, "URL", "u"),),
                 Precondition(absent=True), "tester", request)


def test_get_returns_what_apply_stored_with_every_kind_of_data(store: Store) -> None:
    values = (Value(1, "URL", "https://例え.jp", 60, NOW, Permissions(True, True, False, False)),
              Value(2, "HS_PUBKEY", b"\x00\xff", 86400, NOW),
              Value(100, "HS_ADMIN", AdminRef("88.118.8/ADMIN", 300, "011111110011"), 86400, NOW),
              Value(200, "HS_VLIST", ValueList((ValueRef("88.118.8/ADMIN", 300),
                                                ValueRef("0.NA/88.118.8", 200))), 86400, NOW))
    result = store.apply(register("88.118.8/Mixed-Case", *values), NOW)
    record = store.get("88.118.8/mixed-case")
    assert record is not None
    assert str(record.handle) == "88.118.8/Mixed-Case"
    assert record.values == values
    # The change log carries the same values (followers rebuild records from it).
    assert store.changes_since(result.sequence - 1, 1)[0].values == values
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


def test_get_many_returns_the_existing_records_each_as_get_does(store: Store) -> None:
    values = (Value(1, "URL", "https://例え.jp", 60, NOW, Permissions(True, True, False, False)),
              Value(2, "HS_PUBKEY", b"\x00\xff", 86400, NOW),
              Value(100, "HS_ADMIN", AdminRef("88.118.8/ADMIN", 300, "011111110011"), 86400, NOW))
    store.apply(register("88.118.8/Mixed", *values), NOW)
    # More keys than one SQL statement takes (SQLite asks in pieces of 500).
    store.apply_many([register(f"88.118.8/M{i}") for i in range(1200)], NOW)
    keys = ["88.118.8/mixed", "88.118.8/absent"] + [f"88.118.8/m{i}" for i in range(0, 1200, 2)]
    got = store.get_many(keys)
    assert set(got) == {k for k in keys if k != "88.118.8/absent"}
    for key in ("88.118.8/mixed", "88.118.8/m0", "88.118.8/m1198"):
        assert got[key] == store.get(key)
    assert got["88.118.8/mixed"].values == values
    assert store.get_many([]) == {}


def test_the_identifier_count_follows_every_kind_of_write(store: Store) -> None:
    # The count is kept by the writes themselves (no table scan behind the gauge).
    def count() -> int:
        return store.counts().identifiers

    a = store.apply(register("88.118.8/A"), NOW)
    store.apply_many([register(f"88.118.8/B{i}") for i in range(5)] + [register("88.118.8/a")],
                     NOW)
    assert count() == 6
    key = RequestKey("tester", "req-c", "fp")
    store.apply(register("88.118.8/C", request=key), NOW)
    store.apply(register("88.118.8/C", request=key), NOW)  # replayed: nothing new
    with pytest.raises(AlreadyExists):
        store.apply(register("88.118.8/C"), NOW)
    assert count() == 7
    updated = store.apply(Write(Operation.UPDATE, Handle.parse("88.118.8/A"),
                                (Value(1, "URL", "v2"),), Precondition(sequence=a.sequence),
                                "tester"), NOW)
    assert count() == 7
    store.apply(Write(Operation.DELETE, Handle.parse("88.118.8/A"), None,
                      Precondition(sequence=updated.sequence), "tester"), NOW)
    with pytest.raises(NotFound):
        store.apply(Write(Operation.DELETE, Handle.parse("88.118.8/A"), None,
                          Precondition(sequence=updated.sequence), "tester"), NOW)
    assert count() == 6
    with pytest.raises(RuntimeError, match="undone"), store.unit_of_work() as unit:
        unit.apply(register("88.118.8/D"), NOW)
        raise RuntimeError("undone")
    assert count() == 6
    store.apply(register("88.118.8/A"), NOW)  # registered again after its deletion
    assert count() == 7


def test_list_keys_pages_in_key_order_within_one_prefix(store: Store) -> None:
    for name in ["b", "A", "c"]:
        store.apply(register(f"88.118.8/{name}"), NOW)
    store.apply(register("88.118.8.1/z"), NOW)
    assert store.list_keys("88.118.8", "", 10) == [("88.118.8/a", "88.118.8/A"),
                                                   ("88.118.8/b", "88.118.8/b"),
                                                   ("88.118.8/c", "88.118.8/c")]
    assert store.list_keys("88.118.8", "88.118.8/a", 1) == [("88.118.8/b", "88.118.8/b")]


def allocate(store: Store, prefix: str, owner: StoredPrincipal) -> None:
    """An allocation as builds before HS_SECKEY values made it: prefix, principals-table
    row and the ADMIN record in one unit of work."""
    with store.unit_of_work() as unit:
        unit.add_prefix(Prefix.parse(prefix), owner.principal.id, NOW)
        unit.add_principal(owner)
        unit.apply(register(f"{prefix}/ADMIN"), NOW)


def test_principals_and_prefix_allocation_are_atomic(store: Store) -> None:
    owner = StoredPrincipal(Principal.of("300:88.118.8/ADMIN"), "scrypt$hash", NOW)
    allocate(store, "88.118.8", owner)
    assert store.has_prefix("88.118.8")
    got = store.get_principal("300:88.118.8/admin")
    assert got is not None and got.principal == owner.principal
    with pytest.raises(AlreadyExists):
        allocate(store, "88.118.8", owner)
    # A prefix whose ADMIN identifier already exists is refused as a whole.
    store.apply(register("88.118.9/ADMIN"), NOW)
    owner9 = StoredPrincipal(Principal.of("300:88.118.9/ADMIN"), "h", NOW)
    with pytest.raises(AlreadyExists):
        allocate(store, "88.118.9", owner9)
    assert not store.has_prefix("88.118.9")
    assert store.get_principal("300:88.118.9/admin") is None
    assert store.counts().prefixes == 1


def token(token_id: str, principal: str = "300:88.118.8/ERP", **kw: object) -> StoredToken:
    fields: dict[str, object] = dict(
        secret_hash="ab" * 32, principal=principal, principal_key=principal.lower(),
        scope=Scope.RESOLVE, prefix_key=None, prefix_text="", created_at=NOW,
        expires_at=None, revoked_at=None, created_by="300:88.118/ADMIN", description="")
    fields.update(kw)
    return StoredToken(token_id, **fields)  # type: ignore[arg-type]


def test_tokens_are_stored_listed_and_revoked_once(store: Store) -> None:
    first = token("00000000000000a1", scope=Scope.WRITE, prefix_key="88.118.8",
                  prefix_text="88.118.8", expires_at=NOW + 60, description="erp 中文")
    store.add_token(first)
    store.add_token(token("00000000000000a2", created_at=NOW + 1))
    store.add_token(token("00000000000000b1", principal="300:88.118.9/ERP"))
    with pytest.raises(AlreadyExists):
        store.add_token(token("00000000000000a1"))
    assert store.get_token("00000000000000a1") == first
    assert store.get_token("ffffffffffffffff") is None
    assert [t.token_id for t in store.list_tokens("300:88.118.8/erp")] == [
        "00000000000000a1", "00000000000000a2"]
    revoked = store.revoke_token("00000000000000a1", NOW + 5)
    assert revoked is not None and revoked.revoked_at == NOW + 5
    again = store.revoke_token("00000000000000a1", NOW + 9)
    assert again is not None and again.revoked_at == NOW + 5  # the first revocation stays
    assert store.revoke_token("ffffffffffffffff", NOW) is None


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
    first_id = s.store_id()
    s.close()
    s2 = SQLiteStore(path)
    try:
        assert s2.get("88.118.8/keep") is not None
        assert s2.schema_version() == max(v for v, _ in _migrations())
        assert s2.last_sequence() == 1
        assert s2.store_id() == first_id
    finally:
        s2.close()



def owner_of(prefix: str) -> StoredPrincipal:
    return StoredPrincipal(Principal.of(f"300:{prefix}/ADMIN"), "h", NOW)


# --- identity ------------------------------------------------------------------------------


def test_store_id_is_random_and_stable(store: Store, make_store: StoreFactory) -> None:
    first = store.store_id()
    assert len(first) == 32 and int(first, 16) >= 0
    store.apply(register("88.118.8/A"), NOW)
    assert store.store_id() == first
    assert make_store().store_id() != first


def test_duplicate_principal_is_already_exists(store: Store) -> None:
    store.add_principal(owner_of("88.118.8"))
    with pytest.raises(AlreadyExists) as caught:
        store.add_principal(owner_of("88.118.8"))
    assert type(caught.value) is AlreadyExists
    assert "sqlite" not in caught.value.message.lower()


def test_a_closed_store_is_unavailable(store: Store) -> None:
    store.apply(register("88.118.8/A"), NOW)
    store.close()
    calls: list[Callable[[], object]] = [
             lambda: store.get("88.118.8/a"), lambda: store.apply(register("88.118.8/B"), NOW),
             lambda: store.changes_since(0, 10), store.last_sequence, store.store_id,
             lambda: store.get_principal("300:88.118.8/admin"), store.counts,
             lambda: store.wait_for_changes(0, 0.01)]
    for call in calls:
        with pytest.raises(Unavailable) as caught:
            call()
        assert type(caught.value) is Unavailable
        assert "closed" in caught.value.message
    store.close()  # idempotent


# --- units of work -------------------------------------------------------------------------


def test_a_unit_of_work_commits_everything_together(store: Store) -> None:
    with store.unit_of_work() as unit:
        unit.add_prefix(Prefix.parse("88.118.8"), "300:88.118.8/ADMIN", NOW)
        unit.add_principal(owner_of("88.118.8"))
        first = unit.apply(register("88.118.8/ADMIN"), NOW)
        # Later writes of the unit see its earlier ones.
        second = unit.apply(Write(Operation.UPDATE, Handle.parse("88.118.8/ADMIN"),
                                  (Value(1, "URL", "v2"),),
                                  Precondition(sequence=first.sequence), "tester"), NOW)
        with pytest.raises(AlreadyExists):  # a failed write inside writes nothing ...
            unit.apply(register("88.118.8/admin"), NOW)
        unit.apply(register("88.118.8/OTHER"), NOW)  # ... and the unit goes on
    assert store.has_prefix("88.118.8")
    assert store.get_principal("300:88.118.8/admin") is not None
    record = store.get("88.118.8/admin")
    assert record is not None and record.version == 2 and record.etag == second.etag
    assert [c.handle for c in store.changes_since(0, 10)] == [
        "88.118.8/ADMIN", "88.118.8/ADMIN", "88.118.8/OTHER"]
    assert store.counts() == type(store.counts())(1, 2)


def test_a_unit_of_work_that_raises_writes_nothing(store: Store) -> None:
    store.apply(register("88.118.8/BEFORE"), NOW)
    before = store.last_sequence()
    with pytest.raises(RuntimeError, match="boom"), store.unit_of_work() as unit:
        unit.apply(register("88.118.8/A"), NOW)
        unit.add_principal(owner_of("88.118.8"))
        unit.add_prefix(Prefix.parse("88.118.8"), "300:88.118.8/ADMIN", NOW)
        raise RuntimeError("boom")
    assert store.get("88.118.8/a") is None
    assert store.get_principal("300:88.118.8/admin") is None
    assert not store.has_prefix("88.118.8")
    assert store.last_sequence() == before
    assert [c.handle for c in store.changes_since(0, 10)] == ["88.118.8/BEFORE"]
    # The store is usable afterwards, and sequences keep increasing.
    after = store.apply(register("88.118.8/A"), NOW)
    assert after.sequence > before


def test_a_fact_set_in_a_unit_of_work_commits_or_rolls_back_with_its_writes(
        store: Store) -> None:
    assert store.meta("mirror.position") is None
    with store.unit_of_work() as unit:
        unit.apply(register("88.118.8/M1"), NOW)
        unit.set_meta("mirror.position", "abc:1")
    assert store.meta("mirror.position") == "abc:1"
    with pytest.raises(RuntimeError, match="boom"), store.unit_of_work() as unit:
        unit.apply(register("88.118.8/M2"), NOW)
        unit.set_meta("mirror.position", "abc:2")
        raise RuntimeError("boom")
    assert store.meta("mirror.position") == "abc:1"
    assert store.get("88.118.8/m2") is None
    with store.unit_of_work() as unit:
        unit.set_meta("mirror.position", "abc:3")  # replaced, not added
    assert store.meta("mirror.position") == "abc:3"


def test_the_store_id_is_not_a_fact_a_unit_of_work_may_set(store: Store) -> None:
    before = store.store_id()
    with pytest.raises(InvalidArgument), store.unit_of_work() as unit:
        unit.set_meta("store_id", "mine")
    assert store.store_id() == before


def test_a_unit_of_work_is_invisible_until_it_commits(store: Store) -> None:
    seen: list[object] = []

    def look() -> None:
        seen.extend([store.get("88.118.8/a"), store.last_sequence(),
                     store.changes_since(0, 10)])

    with store.unit_of_work() as unit:
        unit.apply(register("88.118.8/A"), NOW)
        reader = threading.Thread(target=look)
        reader.start()
        reader.join(10)
        assert not reader.is_alive()
    assert seen == [None, 0, []]
    assert store.get("88.118.8/a") is not None and store.last_sequence() > 0


def test_units_of_work_are_not_reentrant(store: Store) -> None:
    with store.unit_of_work() as unit:
        unit.apply(register("88.118.8/A"), NOW)
        with pytest.raises(RuntimeError, match="re-entrant"):
            store.apply(register("88.118.8/B"), NOW)
    assert store.get("88.118.8/a") is not None
    assert store.get("88.118.8/b") is None


def test_a_prefix_is_allocated_once(store: Store) -> None:
    with store.unit_of_work() as unit:
        unit.add_prefix(Prefix.parse("88.118.8"), "300:88.118.8/ADMIN", NOW)
    with pytest.raises(AlreadyExists) as caught, store.unit_of_work() as unit:
        unit.add_prefix(Prefix.parse("88.118.8"), "300:88.118.8/ADMIN", NOW)
    assert type(caught.value) is AlreadyExists
    assert caught.value.message == "prefix 88.118.8 is already allocated"


# --- waiting for changes -------------------------------------------------------------------


def test_wait_for_changes_returns_at_once_when_there_are_some(store: Store) -> None:
    store.apply(register("88.118.8/A"), NOW)
    started = time.monotonic()
    assert store.wait_for_changes(0, 5.0)
    assert time.monotonic() - started < 1.0


def test_wait_for_changes_times_out_when_nothing_happens(store: Store) -> None:
    store.apply(register("88.118.8/A"), NOW)
    started = time.monotonic()
    assert not store.wait_for_changes(store.last_sequence(), 0.2)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2.0
    assert not store.wait_for_changes(store.last_sequence(), 0)


def test_wait_for_changes_wakes_up_on_a_commit(store: Store) -> None:
    def later() -> None:
        time.sleep(0.2)
        store.apply(register("88.118.8/A"), NOW)

    writer = threading.Thread(target=later)
    started = time.monotonic()
    writer.start()
    try:
        assert store.wait_for_changes(0, 10.0)
        assert time.monotonic() - started < 5.0
    finally:
        writer.join(10)
    assert store.changes_since(0, 10)[0].handle == "88.118.8/A"


# --- the commit-order watermark ------------------------------------------------------------

WRITERS, PER_WRITER, PAGE = 4, 200, 50


def follow_while_writing(store: Store, deadline_seconds: float = 60.0) -> None:
    """4 writers register 200 identifiers each while a follower pages through the change
    log; fails unless the follower saw every acknowledged write exactly once, in strictly
    increasing sequence order (see the ChangeLog watermark rule)."""
    deadline = time.monotonic() + deadline_seconds
    acked: list[tuple[int, str]] = []
    acked_lock = threading.Lock()
    errors: list[BaseException] = []
    writers_done = threading.Event()
    seen: list[Change] = []

    def write(w: int) -> None:
        try:
            for i in range(PER_WRITER):
                if time.monotonic() > deadline:
                    raise TimeoutError("writer ran out of time")
                result = store.apply(register(f"88.118.8/W{w}-{i}"), NOW)
                with acked_lock:
                    acked.append((result.sequence, result.key))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def follow() -> None:
        try:
            last = 0
            while time.monotonic() < deadline:
                done = writers_done.is_set()  # read before the page: nothing is missed
                page = store.changes_since(last, PAGE)
                assert len(page) <= PAGE
                for change in page:
                    assert change.sequence > last, (change.sequence, last)
                    last = change.sequence
                seen.extend(page)
                if page:
                    continue
                if done:
                    return
                store.wait_for_changes(last, 0.05)
            raise TimeoutError("follower ran out of time")
        except BaseException as exc:  # reported below
            errors.append(exc)

    follower = threading.Thread(target=follow)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    follower.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join(max(deadline - time.monotonic(), 0.1))
    writers_done.set()
    follower.join(max(deadline - time.monotonic(), 0.1) + 1)
    assert not follower.is_alive() and not any(t.is_alive() for t in writers)
    assert not errors, errors
    assert len(acked) == WRITERS * PER_WRITER
    sequences = [c.sequence for c in seen]
    assert sequences == sorted(set(sequences)), "a sequence was seen twice or out of order"
    assert sequences == sorted(s for s, _ in acked), "a sequence was skipped"
    assert {c.key for c in seen} == {k for _, k in acked}


def test_a_follower_sees_every_acknowledged_write_once_in_order(store: Store) -> None:
    follow_while_writing(store)


class _HidesOneChange(MemoryStore):
    """A broken backend: the first change of the first page holding several is shown only
    after a later one has been handed out (what a PostgreSQL store without a watermark
    does when a lower sequence commits late)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = 0

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        page = super().changes_since(sequence, limit)
        if not self.hidden and len(page) >= 2:
            self.hidden = page[0].sequence
            return page[1:]
        return page


def test_the_follower_check_catches_a_backend_without_a_watermark() -> None:
    broken = _HidesOneChange()
    with pytest.raises(AssertionError, match="skipped"):
        follow_while_writing(broken, deadline_seconds=30)
    assert broken.hidden


def test_closing_the_store_ends_a_wait(store: Store) -> None:
    outcome: list[BaseException | bool] = []

    def wait() -> None:
        try:
            outcome.append(store.wait_for_changes(0, 10.0))
        except BaseException as exc:  # reported below
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    started = time.monotonic()
    waiter.start()
    time.sleep(0.1)
    store.close()
    waiter.join(10)
    assert not waiter.is_alive() and time.monotonic() - started < 5.0
    assert len(outcome) == 1 and type(outcome[0]) is Unavailable


# --- prefix applications -------------------------------------------------------------------

ACME = Enterprise("某某机械有限公司", "91350100M000100Y43", "张三", "13800138000",
                  "zhang@example.com", "C34 通用设备制造业", "福州市")


def application(prefix: str, *, submitted_at: int = NOW, request_id: str = "",
                enterprise: Enterprise = ACME) -> Application:
    return new_application(Prefix.parse(prefix), enterprise, submitted_at, request_id)


def test_applications_are_stored_whole_and_listed_newest_first_in_pages(
        store: Store) -> None:
    added = [store.add_application(application(f"88.118.{n}", submitted_at=NOW + n))
             for n in range(1, 6)]
    assert [a.sequence for a in added] == sorted({a.sequence for a in added})
    got = store.get_application(added[0].id)
    assert got == added[0] and got.enterprise == ACME and got.prefix.text == "88.118.1"
    assert (got.state, got.decided_at, got.reviewer, got.reason) == (
        ApplicationState.PENDING, 0, "", "")
    assert store.get_application("no-such-id") is None
    store.decide_application(added[1].id, ApplicationState.REJECTED, "300:88.118/ADMIN",
                             "no licence", NOW + 10)
    newest_first = [a.id for a in reversed(added)]
    first = store.list_applications(None, 0, 2)
    assert [a.id for a in first] == newest_first[:2]
    rest = store.list_applications(None, first[-1].sequence, 10)
    assert [a.id for a in first + rest] == newest_first
    pending = store.list_applications(ApplicationState.PENDING, 0, 10)
    assert [a.id for a in pending] == [i for i in newest_first if i != added[1].id]
    assert [a.id for a in store.list_applications(ApplicationState.PENDING,
                                                  pending[1].sequence, 10)] == \
        [a.id for a in pending[2:]]
    rejected = store.list_applications(ApplicationState.REJECTED, 0, 10)
    assert [(a.id, a.reason, a.reviewer, a.decided_at) for a in rejected] == [
        (added[1].id, "no licence", "300:88.118/ADMIN", NOW + 10)]
    assert store.list_applications(ApplicationState.APPROVED, 0, 10) == []


def test_an_application_is_decided_once(store: Store) -> None:
    added = store.add_application(application("88.118.8"))
    approved = store.decide_application(added.id, ApplicationState.APPROVED,
                                        "300:88.118/ADMIN", "", NOW + 1)
    assert (approved.state, approved.decided_at) == (ApplicationState.APPROVED, NOW + 1)
    for state in (ApplicationState.REJECTED, ApplicationState.APPROVED):
        with pytest.raises(StaleEtag, match="already approved"):
            store.decide_application(added.id, state, "300:88.118/OTHER", "late", NOW + 2)
    got = store.get_application(added.id)
    assert got is not None and (got.state, got.reviewer, got.reason) == (
        ApplicationState.APPROVED, "300:88.118/ADMIN", "")
    with pytest.raises(NotFound):
        store.decide_application("no-such-id", ApplicationState.REJECTED, "r", "x", NOW)


def test_concurrent_decisions_of_one_application_let_exactly_one_win(store: Store) -> None:
    added = store.add_application(application("88.118.8"))
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def decide(n: int) -> None:
        barrier.wait(10)
        try:
            outcomes.append(store.decide_application(
                added.id, ApplicationState.APPROVED, f"300:88.118/R{n}", "", NOW))
        except StaleEtag as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [o for o in outcomes if isinstance(o, Application)]
    assert len(outcomes) == 4 and len(won) == 1
    got = store.get_application(added.id)
    assert got is not None and got.reviewer == won[0].reviewer


def test_a_prefix_has_one_pending_application_and_none_once_allocated(store: Store) -> None:
    first = store.add_application(application("88.118.8"))
    with pytest.raises(AlreadyExists, match="pending application"):
        store.add_application(application("88.118.8"))
    with pytest.raises(AlreadyExists, match="pending application"):
        store.add_application(application("88.118.8", enterprise=replace(ACME, name="别家")))
    store.add_application(application("88.118.9"))  # another prefix is independent
    store.decide_application(first.id, ApplicationState.REJECTED, "r", "incomplete", NOW)
    again = store.add_application(application("88.118.8"))  # decided: may apply again
    assert again.state is ApplicationState.PENDING and again.sequence > first.sequence
    with store.unit_of_work() as unit:
        unit.add_prefix(Prefix.parse("88.118.10"), "300:88.118.10/ADMIN", NOW)
    with pytest.raises(AlreadyExists, match="already allocated"):
        store.add_application(application("88.118.10"))
    assert len(store.list_applications(None, 0, 10)) == 3


def test_an_application_request_id_returns_the_first_or_refuses_other_content(
        store: Store) -> None:
    first = store.add_application(application("88.118.8", request_id="apply-1"))
    again = store.add_application(application("88.118.8", request_id="apply-1"))
    assert again == first  # the same application, not a second one
    store.decide_application(first.id, ApplicationState.APPROVED, "r", "", NOW)
    later = store.add_application(application("88.118.8", request_id="apply-1"))
    assert later.id == first.id and later.state is ApplicationState.APPROVED
    with pytest.raises(InvalidArgument, match="request_id 'apply-1'"):
        store.add_application(application("88.118.9", request_id="apply-1"))
    assert len(store.list_applications(None, 0, 10)) == 1


def test_an_approval_commits_with_its_allocation_or_not_at_all(store: Store) -> None:
    added = store.add_application(application("88.118.8"))
    with pytest.raises(RuntimeError, match="crash"), store.unit_of_work() as unit:
        unit.decide_application(added.id, ApplicationState.APPROVED, "r", "", NOW)
        unit.add_prefix(Prefix.parse("88.118.8"), "300:88.118.8/ADMIN", NOW)
        raise RuntimeError("crash")  # between the decision and the commit
    got = store.get_application(added.id)
    assert got is not None and got.state is ApplicationState.PENDING
    assert not store.has_prefix("88.118.8")
    with store.unit_of_work() as unit:
        decided = unit.decide_application(added.id, ApplicationState.APPROVED, "r", "ok",
                                          NOW)
        assert decided.state is ApplicationState.APPROVED
        with pytest.raises(StaleEtag):  # the unit sees its own decision
            unit.decide_application(added.id, ApplicationState.REJECTED, "r", "", NOW)
        unit.add_prefix(Prefix.parse("88.118.8"), "300:88.118.8/ADMIN", NOW)
    got = store.get_application(added.id)
    assert got is not None and got.state is ApplicationState.APPROVED
    assert store.has_prefix("88.118.8")


def test_concurrent_approvals_allocate_the_prefix_exactly_once(store: Store) -> None:
    # What ApproveApplication does: Registrar.allocate with the decision inside its unit.
    registrar = Registrar(store, Prefix.parse("88.118"))
    added = store.add_application(application("88.118.8"))
    outcomes: list[object] = []
    barrier = threading.Barrier(3)

    def approve(n: int) -> None:
        def record(unit: UnitOfWork, now: int) -> None:
            unit.decide_application(added.id, ApplicationState.APPROVED, f"300:88.118/R{n}",
                                    "", now)
        barrier.wait(10)
        try:
            outcomes.append(registrar.allocate(Principal.of(f"300:88.118/R{n}"), "88.118.8",
                                               also=record))
        except (StaleEtag, AlreadyExists) as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [o for o in outcomes if isinstance(o, Allocation)]
    assert len(outcomes) == 3 and len(won) == 1
    got = store.get_application(added.id)
    assert got is not None and got.state is ApplicationState.APPROVED
    assert store.has_prefix("88.118.8") and store.counts().prefixes == 1
    assert store.get("0.na/88.118.8") is not None and store.get("88.118.8/admin") is not None
# --- the audit log -------------------------------------------------------------------------

GRPC_CALL = AuditContext("127.0.0.1", "grpc", "register")


def audit_of(store: Store, query: AuditQuery | None = None) -> list[AuditEntry]:
    """Every entry matching ``query``, newest first, across as many pages as it takes."""
    query = query or AuditQuery()
    out: list[AuditEntry] = []
    while True:
        page = store.audit_entries(query)
        out.extend(page.entries)
        if not page.next_before_id:
            return out
        query = dataclasses.replace(query, before_id=page.next_before_id)


def refusal(target: str, *, at: int = NOW, principal: str = "300:88.118.8/ADMIN",
            outcome: str = "PERMISSION_DENIED") -> AuditEntry:
    return audit.refused(at=at, principal=principal, action="update", target=target,
                         outcome=outcome, message="300:88.118.8/ADMIN may not update it",
                         request_id="r-9", client_address="192.0.2.7", door="http")


def test_every_write_applied_alone_has_exactly_one_audit_entry_with_its_sequence(
        store: Store) -> None:
    h = Handle.parse("88.118.8/Doc")
    first = store.apply(register("88.118.8/Doc", request=RequestKey("t", "req-1", "f"))
                        ._replace(audit=GRPC_CALL), NOW)
    second = store.apply(Write(Operation.UPDATE, h, (Value(1, "URL", "v2"),),
                               Precondition(sequence=first.sequence), "300:88.118.8/ADMIN",
                               None, AuditContext("::1", "http")), NOW + 1)
    third = store.apply(Write(Operation.DELETE, h, None, Precondition(sequence=second.sequence),
                              "300:88.118.8/ADMIN", None, AuditContext("10.0.0.1", "grpc",
                                                                       "delete")), NOW + 2)
    with store.unit_of_work() as unit:
        fourth = unit.apply(register("88.118.8/IN-UNIT"), NOW + 3)
        fifth = unit.apply(register("0.NA/88.118.8"), NOW + 3)
    results = [first, second, third, fourth, fifth]
    entries = audit_of(store)
    by_sequence = {e.sequence: e for e in entries}
    assert len(entries) == len(by_sequence) == len(results)
    assert sorted(by_sequence) == [r.sequence for r in results]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    assert all(e.accepted and e.outcome == "ok" and e.message == "" for e in entries)
    got = by_sequence[first.sequence]
    assert (got.at, got.principal, got.action, got.target, got.request_id, got.client_address,
            got.door, got.prefix_key) == (NOW, "tester", "register", "88.118.8/Doc", "req-1",
                                          "127.0.0.1", "grpc", "88.118.8")
    # No action in the context: the write's operation.
    assert (by_sequence[second.sequence].action, by_sequence[second.sequence].door,
            by_sequence[second.sequence].client_address) == ("update", "http", "::1")
    assert by_sequence[third.sequence].action == "delete"
    assert by_sequence[fourth.sequence].target == "88.118.8/IN-UNIT"
    # A prefix handle's entries belong to the prefix it governs.
    assert by_sequence[fifth.sequence].prefix_key == "88.118.8"


def test_apply_many_records_one_compact_entry_per_prefix_and_caller(store: Store) -> None:
    store.apply(register("88.118.8/TAKEN"), NOW)
    bulk = AuditContext("127.0.0.1", "grpc", "bulk_register")
    out = store.apply_many([register(h)._replace(audit=bulk) for h in (
        "88.118.8/B0", "88.118.9/C0", "88.118.8/TAKEN", "88.118.8/B1", "88.118.8/B2",
        "88.118.9/C1")], NOW + 1)
    ok = [r for r in out if isinstance(r, WriteResult)]
    assert len(ok) == 5
    # Writes with request ids (the other path): a group of one is the write's own entry.
    mixed = store.apply_many([register("88.118.8/M", request=RequestKey("t", "req-2", "f")),
                              register("88.118.8/N", request=RequestKey("t", "req-3", "f"))],
                             NOW + 2)
    assert store.apply_many([register("88.118.8/B0")], NOW + 3)[0].__class__ is AlreadyExists
    newest_first = audit_of(store)
    assert [(e.target, e.request_id) for e in newest_first[:2]] == [
        ("88.118.8/N", "req-3"), ("88.118.8/M", "req-2")]
    assert [e.sequence for e in newest_first[:2]] == [m.sequence for m in reversed(mixed)
                                                      if isinstance(m, WriteResult)]
    c_group, b_group, taken = newest_first[2:]
    seq = {r.handle: r.sequence for r in ok}
    assert (b_group.target, b_group.prefix_key, b_group.action, b_group.sequence,
            b_group.client_address, b_group.door, b_group.at) == (
        "88.118.8", "88.118.8", "bulk_register", seq["88.118.8/B0"], "127.0.0.1", "grpc",
        NOW + 1)
    assert b_group.message == (f"3 identifiers in one transaction, sequences "
                               f"{seq['88.118.8/B0']} to {seq['88.118.8/B2']}: "
                               "88.118.8/B0 to 88.118.8/B2")
    assert (c_group.target, c_group.sequence) == ("88.118.9", seq["88.118.9/C0"])
    assert c_group.message.startswith("2 identifiers")
    assert taken.target == "88.118.8/TAKEN"
    # Each identifier keeps its own attribution in the change log.
    assert {c.handle: (c.principal, c.client_address, c.door)
            for c in store.changes_since(taken.sequence, 10)}["88.118.8/B1"] == (
        "tester", "127.0.0.1", "grpc")


def test_changes_carry_who_made_them_from_where_and_through_which_door(store: Store) -> None:
    store.apply(register("88.118.8/W", request=RequestKey("t", "req-1", "f"))._replace(
        audit=GRPC_CALL), NOW)
    store.apply_many([register("88.118.8/BULK")._replace(audit=AuditContext("::1", "http"))],
                     NOW)
    one, two = store.changes_since(0, 10)
    assert (one.principal, one.request_id, one.client_address, one.door) == (
        "tester", "req-1", "127.0.0.1", "grpc")
    assert (two.principal, two.request_id, two.client_address, two.door) == (
        "tester", "", "::1", "http")


def test_a_write_that_fails_leaves_no_accepted_audit_entry(store: Store) -> None:
    first = store.apply(register("88.118.8/A"), NOW)
    stale = Write(Operation.UPDATE, Handle.parse("88.118.8/A"), (Value(1, "URL", "x"),),
                  Precondition(sequence=first.sequence + 100), "tester")
    with pytest.raises(StaleEtag):
        store.apply(stale, NOW)
    with pytest.raises(AlreadyExists):
        store.apply(register("88.118.8/a"), NOW)
    out = store.apply_many([register("88.118.8/A"), register("88.118.8/NEW")], NOW)
    assert isinstance(out[0], AlreadyExists) and isinstance(out[1], WriteResult)
    out = store.apply_many([stale], NOW)
    assert isinstance(out[0], StaleEtag)
    with pytest.raises(RuntimeError, match="rolled back"), store.unit_of_work() as unit:
        unit.apply(register("88.118.8/GONE"), NOW)
        raise RuntimeError("rolled back")
    # A replayed request id applies nothing: the first entry stands alone.
    key = RequestKey("t", "req-1", "f")
    store.apply(register("88.118.8/R", request=key), NOW)
    assert store.apply(register("88.118.8/R", request=key), NOW).replayed
    entries = audit_of(store)
    assert sorted(e.target for e in entries) == ["88.118.8/A", "88.118.8/NEW", "88.118.8/R"]
    assert {e.sequence for e in entries} == {c.sequence for c in store.changes_since(0, 10)}


def test_refusals_are_stored_apart_from_writes_and_never_as_changes(store: Store) -> None:
    store.apply(register("88.118.8/A"), NOW)
    store.record_refusal(refusal("88.118.8/A"), refusal("88.118.8/B", outcome="ABORTED"))
    store.record_refusal()  # nothing to store is no error
    newest, older, accepted = audit_of(store)
    assert (newest.outcome, older.outcome, accepted.outcome) == (
        "ABORTED", "PERMISSION_DENIED", "ok")
    assert newest.id > older.id > accepted.id > 0
    assert (older.principal, older.action, older.target, older.request_id, older.client_address,
            older.door, older.message, older.sequence, older.prefix_key) == (
        "300:88.118.8/ADMIN", "update", "88.118.8/A", "r-9", "192.0.2.7", "http",
        "300:88.118.8/ADMIN may not update it", 0, "88.118.8")
    assert len(store.changes_since(0, 10)) == 1
    store.close()
    for call in (lambda: store.audit_entries(AuditQuery()),
                 lambda: store.record_refusal(refusal("88.118.8/C"))):
        with pytest.raises(Unavailable):
            call()


def test_audit_filters_by_prefix_principal_time_and_outcome(store: Store) -> None:
    admin = "300:88.118/ADMIN"
    owner = "300:88.118.8/ADMIN"
    store.apply(register("88.118.8/P1")._replace(principal=admin), NOW)
    store.apply(register("0.NA/88.118.8")._replace(principal=admin), NOW + 10)
    store.apply(register("88.118.8.1/DERIVED")._replace(principal=owner), NOW + 20)
    store.apply(register("88.118.9/OTHER")._replace(principal=owner), NOW + 30)
    store.record_refusal(
        refusal("88.118.8/P1", at=NOW + 40, principal=owner),
        refusal("88.118.8", at=NOW + 50, principal="", outcome="UNAUTHENTICATED"),  # a prefix
        refusal("not a handle at all", at=NOW + 60, principal=owner, outcome="INVALID_ARGUMENT"))

    def targets(**filters: object) -> list[str]:
        return [e.target for e in audit_of(store, AuditQuery(**filters))]  # type: ignore[arg-type]

    # The prefix itself (its prefix handle, an allocation) and its identifiers; derived
    # prefixes and other prefixes are theirs.
    assert targets(prefix_key="88.118.8") == ["88.118.8", "88.118.8/P1", "0.NA/88.118.8",
                                              "88.118.8/P1"]
    assert targets(prefix_key="88.118.8.1") == ["88.118.8.1/DERIVED"]
    assert targets(prefix_key="88.118") == []
    assert targets(principal_key=audit.principal_key("300:88.118.8/admin")) == [
        "not a handle at all", "88.118.8/P1", "88.118.9/OTHER", "88.118.8.1/DERIVED"]
    assert targets(principal_key=audit.principal_key(admin)) == ["0.NA/88.118.8",
                                                                 "88.118.8/P1"]
    assert targets(since=NOW + 10, until=NOW + 30) == ["88.118.8.1/DERIVED", "0.NA/88.118.8"]
    assert targets(since=NOW + 60) == ["not a handle at all"]
    assert targets(until=NOW + 1) == ["88.118.8/P1"]
    assert targets(outcome="ok") == ["88.118.9/OTHER", "88.118.8.1/DERIVED", "0.NA/88.118.8",
                                     "88.118.8/P1"]
    assert targets(outcome="refused") == ["not a handle at all", "88.118.8", "88.118.8/P1"]
    assert targets(outcome="UNAUTHENTICATED") == ["88.118.8"]
    assert targets(prefix_key="88.118.8", outcome="refused", since=NOW + 45) == ["88.118.8"]
    # Keys compare byte-wise: no collation folds them together.
    assert targets(prefix_key="88.118.8 ") == [] and targets(principal_key="300:88.118/ADMIN") \
        == []


def test_audit_pages_newest_first_without_gaps_or_repeats(store: Store) -> None:
    for i in range(7):
        store.apply(register(f"88.118.8/N{i:02d}"), NOW)
    store.record_refusal(*(refusal(f"88.118.8/R{i}") for i in range(3)))
    seen: list[AuditEntry] = []
    query = AuditQuery(limit=4)
    pages = 0
    while True:
        page = store.audit_entries(query)
        assert len(page.entries) <= 4
        seen.extend(page.entries)
        pages += 1
        if not page.next_before_id:
            break
        query = dataclasses.replace(query, before_id=page.next_before_id)
    assert pages == 3 and len(seen) == 10 and len({e.id for e in seen}) == 10
    assert [e.id for e in seen] == sorted((e.id for e in seen), reverse=True)
    assert [e.target for e in seen[:3]] == ["88.118.8/R2", "88.118.8/R1", "88.118.8/R0"]
    # An exact page boundary says there is no next page only when there is none.
    full = store.audit_entries(AuditQuery(limit=10))
    assert len(full.entries) == 10 and full.next_before_id == 0
    filtered = store.audit_entries(AuditQuery(outcome="refused", limit=2))
    assert [e.target for e in filtered.entries] == ["88.118.8/R2", "88.118.8/R1"]
    rest = store.audit_entries(AuditQuery(outcome="refused", limit=2,
                                          before_id=filtered.next_before_id))
    assert [e.target for e in rest.entries] == ["88.118.8/R0"] and rest.next_before_id == 0




# --- metadata templates ------------------------------------------------------------------------


def template(prefix: str, version: str, *types: str) -> Template:
    return parse_template({"prefix": prefix, "version": version, "description": "零件",
                           "industryCategory": "C", "industrySpecific": "34", "type": 1,
                           "items": [{"name": f"名{n}", "idType": t, "idIndex": 2000 + n,
                                      "required": n == 0, "state": 1 if n else 0,
                                      "metadata": {"type": "number", "minimum": "0.5",
                                                   "precision": 2, "pattern": "[0-9.]+"},
                                      "grants": ["300:88.118.8/ERP"]}
                                     for n, t in enumerate(types or ("productName",))]})


def put_template(store: Store, t: Template, now: int = NOW) -> Template:
    return store.change_templates(t.prefix.key,
                                  lambda existing: put_draft(existing, t, now, "tester"))


def test_templates_are_stored_whole_and_listed_per_prefix_in_creation_order(
        store: Store) -> None:
    first = put_template(store, template("88.118.8", "2.0", "a", "b"))
    second = put_template(store, template("88.118.8", "1.0", "a"))
    put_template(store, template("88.118.80", "1.0"))
    put_template(store, template("88.118.8.1", "1.0"))
    got = store.get_template("88.118.8", "2.0")
    assert got == first and got is not None
    assert (got.updated_by, got.created_at, got.items[1].grants) == \
        ("tester", NOW, ("300:88.118.8/ERP",))
    assert [t.version for t in store.list_templates("88.118.8")] == ["2.0", "1.0"]
    assert store.list_templates("88.118.8")[1] == second
    assert store.get_template("88.118.8", "3.0") is None
    assert store.get_template("88.118.8", "2.0 ") is None  # versions are exact
    assert store.list_templates("88.118.9") == []


def test_a_template_change_replaces_its_version_and_sees_only_its_prefix(store: Store) -> None:
    put_template(store, template("88.118.8", "1.0", "a"))
    put_template(store, template("88.118.9", "1.0", "z"))
    seen: list[tuple[str, ...]] = []

    def change(existing: tuple[Template, ...]) -> Template:
        seen.append(tuple(t.version for t in existing))
        return publish(existing, "1.0", NOW + 1, "tester")

    published = store.change_templates("88.118.8", change)
    assert seen == [("1.0",)]
    assert store.get_template("88.118.8", "1.0") == published
    assert published.state is TemplateState.PUBLISHED
    assert len(store.list_templates("88.118.8")) == 1
    with pytest.raises(InvalidArgument):  # a change returning another prefix's template
        store.change_templates("88.118.8", lambda _: template("88.118.9", "2.0"))


def test_a_template_change_that_raises_writes_nothing(store: Store) -> None:
    put_template(store, template("88.118.8", "1.0", "a"))
    store.change_templates("88.118.8", lambda ex: publish(ex, "1.0", NOW, "tester"))
    with pytest.raises(AlreadyExists):
        put_template(store, template("88.118.8", "1.0", "b"))
    got = store.get_template("88.118.8", "1.0")
    assert got is not None and [i.id_type for i in got.items] == ["a"]
    # The store is fine afterwards (the failed transaction left nothing open).
    assert put_template(store, template("88.118.8", "1.1", "a")).serial == 2


def test_concurrent_template_changes_of_a_prefix_are_serialised(store: Store) -> None:
    # Each change adds the version after the ones it sees: a lost update would show as
    # two writers storing the same version.
    def add(existing: tuple[Template, ...]) -> Template:
        return put_draft(existing, template("88.118.8", str(len(existing) + 1)), NOW, "t")

    threads = [threading.Thread(target=lambda: [store.change_templates("88.118.8", add)
                                                for _ in range(3)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    listed = store.list_templates("88.118.8")
    assert [t.version for t in listed] == [str(n) for n in range(1, 13)]
    assert [t.serial for t in listed] == list(range(1, 13))


def test_templates_are_not_records_and_do_not_enter_the_change_log(store: Store) -> None:
    before = store.last_sequence()
    put_template(store, template("88.118.8", "1.0"))
    assert store.last_sequence() == before and store.counts().identifiers == 0
