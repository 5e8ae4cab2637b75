"""PostgreSQL-specific: driver failures against a real server become domain errors at the
store edge, the pool recovers by itself, migrations refuse what they do not know, and
the watermark check really catches a store that numbers changes in start order.

Each test provokes the condition for real (a dead port, a wrong password, another
connection's lock, terminated backends, a kill -9 of the server) and asserts the exact
exception class and that its message names the condition without SQL, the host, the
port, the user or the password.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from registry.access.principals import Principal, StoredPrincipal
from registry.errors import AlreadyExists, IdnodeError, InvalidArgument, Unavailable
from registry.identifier import Handle
from registry.record import Operation, Precondition, Write
from registry.store import StoreDefect
from registry.stores import open_store
from registry.stores import postgres as pg
from registry.stores.postgres import KNOWN_VERSION, PostgresStore, _translate, migrations
from registry.values import Value
from tests.contract.test_store_contract import follow_while_writing
from tests.pg_server import PASSWORD, SUPERUSER, ExternalServer, PostgresServer
from tests.servers import free_port, wait_until

NOW = 1_700_000_000

MakeDatabase = Callable[[], str]


def register(handle: str, data: str = "u") -> Write:
    return Write(Operation.REGISTER, Handle.parse(handle), (Value(1, "URL", data),),
                 Precondition(absent=True), "tester")


def assert_plain(error: IdnodeError, *words: str, port: int | None = None) -> None:
    message = error.message
    for secret in (PASSWORD, SUPERUSER, "127.0.0.1", "idnode_t_", "postgresql://"):
        assert secret not in message, message
    if port is not None:
        assert str(port) not in message, message
    for sql in ("SELECT", "INSERT", "UPDATE", "BEGIN", "FOR UPDATE", "change_counter",
                "records", "principals"):
        assert sql not in message, message
    assert message.startswith("the store is unavailable: ") or not isinstance(
        error, Unavailable)
    for word in words:
        assert word in message, message


@pytest.fixture
def url(pg_database: MakeDatabase) -> str:
    return pg_database()


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url, lock_timeout_ms=100, connect_timeout_seconds=2)
    s.apply(register("88.118.8/THERE"), NOW)
    yield s
    s.close()


# --- opening -------------------------------------------------------------------------------


def test_a_dead_database_fails_fast_on_open() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        PostgresStore(f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{port}/x",
                      connect_timeout_seconds=2)
    assert time.monotonic() - started < 5.0
    assert type(caught.value) is Unavailable
    assert_plain(caught.value, "cannot be reached", port=port)


def test_a_wrong_password_is_refused_without_naming_it(
        pg_server: PostgresServer | ExternalServer, url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    wrong = urllib.parse.urlunsplit(parts._replace(
        netloc=f"{parts.username}:wrong-Secret-42@{parts.hostname}:{parts.port}"))
    with pytest.raises(Unavailable) as caught:
        PostgresStore(wrong)
    assert type(caught.value) is Unavailable
    assert "wrong-Secret-42" not in caught.value.message
    assert_plain(caught.value, "refused the login")


def test_a_missing_database_is_unavailable(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    with pytest.raises(Unavailable) as caught:
        PostgresStore(urllib.parse.urlunsplit(parts._replace(path="/idnode_nowhere")))
    assert_plain(caught.value, "does not exist")


def test_open_store_opens_postgres_urls_and_refuses_driver_suffixes(url: str) -> None:
    for n, spelling in enumerate((url, url.replace("postgresql://", "postgres://", 1))):
        s = open_store(spelling, postgres_max_connections=4)
        try:
            assert isinstance(s, PostgresStore)
            s.apply(register(f"88.118.8/SPELLING{n}"), NOW)
        finally:
            s.close()
    for bad in ("postgresql+psycopg://u:secret@db/x", "postgresql:relative"):
        with pytest.raises(InvalidArgument) as refused:
            open_store(bad)
        assert "secret" not in refused.value.message


# --- migrations ----------------------------------------------------------------------------


def test_migrations_are_recorded_once_and_reopen_keeps_everything(url: str) -> None:
    # Four processes' worth of stores opening one empty database at once migrate it once.
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len({s.store_id() for s in stores}) == 1
    stores[0].apply(register("88.118.8/KEEP"), NOW)
    first_id = stores[0].store_id()
    for s in stores:
        s.close()
    again = PostgresStore(url)
    try:
        assert again.schema_version() == KNOWN_VERSION
        assert again.get("88.118.8/keep") is not None
        assert again.last_sequence() == 1 and again.store_id() == first_id
        versions = [r[0] for r in again._rows("SELECT version FROM schema_version "
                                              "ORDER BY version")]
        assert versions == [v for v, _ in migrations()]
    finally:
        again.close()


def test_a_schema_newer_than_this_build_is_refused_naming_both_versions(url: str) -> None:
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (KNOWN_VERSION + 5,))
    with pytest.raises(Unavailable) as caught:
        PostgresStore(url)
    assert type(caught.value) is Unavailable
    assert_plain(caught.value, f"version {KNOWN_VERSION + 5}",
                 f"up to version {KNOWN_VERSION}")


# --- while serving -------------------------------------------------------------------------


@pytest.mark.parametrize(("lock_ms", "statement_ms", "words"), [
    (100, 10_000, "longer than the lock timeout"),
    (10_000, 150, "statement timeout"),
])
def test_a_write_waiting_for_another_writer_fails_fast(
        url: str, lock_ms: int, statement_ms: int, words: str) -> None:
    s = PostgresStore(url, lock_timeout_ms=lock_ms, statement_timeout_ms=statement_ms)
    try:
        s.apply(register("88.118.8/THERE"), NOW)
        with psycopg.connect(url) as other:  # not autocommit: holds the lock until rollback
            other.execute("SELECT seq FROM change_counter FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(Unavailable) as caught:
                s.apply(register("88.118.8/BLOCKED"), NOW)
            assert time.monotonic() - started < 5.0
            assert type(caught.value) is Unavailable
            assert_plain(caught.value, words)
            with pytest.raises(Unavailable), s.unit_of_work() as unit:
                unit.apply(register("88.118.8/BLOCKED"), NOW)
            # MVCC: reads never wait for the writer.
            assert s.get("88.118.8/there") is not None
            assert [c.handle for c in s.changes_since(0, 10)] == ["88.118.8/THERE"]
            assert s.last_sequence() == 1 and s.counts().identifiers == 1
            other.rollback()
        s.apply(register("88.118.8/BLOCKED"), NOW)  # nothing was left half done
        assert s.last_sequence() == 2
    finally:
        s.close()


def test_terminated_connections_are_replaced_by_the_pool(store: PostgresStore,
                                                         url: str) -> None:
    def terminate_all() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    assert store.get("88.118.8/there") is not None
    terminate_all()
    # A read that finds its connection dead is retried once on a fresh one.
    assert store.get("88.118.8/there") is not None
    terminate_all()
    try:
        store.apply(register("88.118.8/AFTER"), NOW)
    except Unavailable as exc:  # a write is not retried (its commit may have happened)
        assert_plain(exc)
        store.apply(register("88.118.8/AFTER"), NOW)
    assert store.get("88.118.8/after") is not None


def test_a_duplicate_principal_is_already_exists(store: PostgresStore) -> None:
    owner = StoredPrincipal(Principal.of("300:88.118.8/ADMIN"),
                            "h", NOW)
    store.add_principal(owner)
    with pytest.raises(AlreadyExists) as caught:
        store.add_principal(owner)
    assert type(caught.value) is AlreadyExists
    assert_plain(caught.value, "principal 300:88.118.8/ADMIN already exists")


def test_two_nodes_registering_the_same_identifiers_get_one_winner_each(url: str) -> None:
    nodes = [PostgresStore(url), PostgresStore(url)]
    wins: list[str] = []
    losses: list[IdnodeError] = []
    lock = threading.Lock()

    def race(node: PostgresStore) -> None:
        for i in range(40):
            try:
                result = node.apply(register(f"88.118.8/RACE{i}"), NOW)
                with lock:
                    wins.append(result.key)
            except AlreadyExists as exc:
                with lock:
                    losses.append(exc)

    threads = [threading.Thread(target=race, args=(nodes[n % 2],)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(wins) == sorted({f"88.118.8/race{i}" for i in range(40)})
        assert len(losses) == 6 * 40 - 40
        assert [c.sequence for c in nodes[1].changes_since(0, 1000)] == list(range(1, 41))
        assert nodes[0].counts().identifiers == 40
    finally:
        for n in nodes:
            n.close()


def test_keys_compare_byte_wise_whatever_the_database_collation(
        pg_server: PostgresServer | ExternalServer) -> None:
    # A database whose default collation is linguistic (ICU en-US sorts "_" before
    # letters and "é" next to "e"); the key columns are COLLATE "C", so byte order wins.
    url = pg_server.create_database(icu_locale="en-US")
    s = PostgresStore(url)
    try:
        names = ["b", "a_b", "ab", "é", "e", "Z9", "a-b", "a.b", "0", "~"]
        for name in names:
            s.apply(register(f"88.118.8/{name}"), NOW)
        s.apply(register("88.118.8.1/inside-a-sub-prefix"), NOW)
        keys = [k for k, _ in s.list_keys("88.118.8", "", 100)]
        assert keys == sorted(keys, key=lambda k: k.encode()) and len(keys) == len(names)
        first, second = keys[:2]
        assert [k for k, _ in s.list_keys("88.118.8", first, 1)] == [second]
    finally:
        s.close()
        pg_server.drop_database(url)


# --- the server restarted ------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A private server this test may kill (the session's may be someone else's). Its
    directory is a new one under the system temp dir: pytest's is private to root, and
    the server may run as another user."""
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


def test_a_restarted_server_fails_fast_then_the_pool_recovers_by_itself(
        own_server: PostgresServer) -> None:
    url = own_server.create_database()
    s = PostgresStore(url, connect_timeout_seconds=2)
    try:
        acked = [s.apply(register(f"88.118.8/BEFORE{i}"), NOW).key for i in range(20)]
        own_server.kill()
        for call in (lambda: s.apply(register("88.118.8/DOWN"), NOW),
                     lambda: s.get("88.118.8/before0"), s.last_sequence):
            started = time.monotonic()
            with pytest.raises(Unavailable) as caught:
                call()
            assert time.monotonic() - started < 6.0  # the connect timeout, not a hang
            assert_plain(caught.value, port=own_server.port)
        own_server.start()

        def writes_again() -> bool:
            try:
                acked.append(s.apply(register("88.118.8/AFTER"), NOW).key)
            except Unavailable:
                return False
            return True

        wait_until(writes_again, 20, 0.1, "the pool did not recover after the restart")
        for key in acked:  # nothing acknowledged was lost
            assert s.get(key) is not None
        assert s.last_sequence() == 21
    finally:
        s.close()


# --- the error table -----------------------------------------------------------------------


@pytest.mark.parametrize(("error", "kind", "words"), [
    (psycopg.errors.UniqueViolation, AlreadyExists, "already exists"),
    (psycopg.errors.QueryCanceled, Unavailable, "statement timeout"),
    (psycopg.errors.LockNotAvailable, Unavailable, "lock timeout"),
    (psycopg.errors.ReadOnlySqlTransaction, Unavailable, "read-only"),
    (psycopg.errors.DiskFull, Unavailable, "disk is full"),
    (psycopg.errors.TooManyConnections, Unavailable, "too many connections"),
    (psycopg.errors.AdminShutdown, Unavailable, "shutting down"),
    (psycopg.errors.ConnectionFailure, Unavailable, "cannot be reached"),
    (psycopg.errors.InvalidPassword, Unavailable, "refused the login"),
    (psycopg.errors.IoError, Unavailable, "files"),
    (psycopg.OperationalError, Unavailable, "cannot be reached"),
    (psycopg.errors.ForeignKeyViolation, StoreDefect, "SQLSTATE 23503"),
    (psycopg.errors.SyntaxError, StoreDefect, "SQLSTATE 42601"),
])
def test_every_driver_error_has_one_domain_meaning(
        error: type[psycopg.Error], kind: type[Exception], words: str) -> None:
    translated = _translate(error("SELECT secret FROM records WHERE host='127.0.0.1'"))
    assert type(translated) is kind
    text = translated.message if isinstance(translated, IdnodeError) else str(translated)
    assert words in text and "secret" not in text and "127.0.0.1" not in text


# --- the watermark check has teeth on PostgreSQL --------------------------------------------


class _StartOrderTx(pg._Tx):
    """A broken write transaction, as with a bigserial: the number is taken when the
    transaction starts, without the counter lock, so transactions commit out of order."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:  # no super(): no lock
        self.conn = conn
        row = conn.execute("SELECT nextval('start_order')").fetchone()
        assert row is not None
        self.seq = int(row[0]) - 1
        self.records = 0
        self.writes = 0
        self.now = 0
        time.sleep(random.random() * 0.002)  # widen the window between number and commit


def test_the_follower_check_catches_a_postgres_store_numbering_in_start_order(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s = PostgresStore(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SEQUENCE start_order")
        monkeypatch.setattr(pg, "_Tx", _StartOrderTx)
        monkeypatch.setattr(pg, "_SET_COUNTER", "UPDATE change_counter SET "
                            "seq = greatest(seq, %s), records = %s")
        with pytest.raises(AssertionError, match=r"skipped|out of order"):
            follow_while_writing(s, deadline_seconds=30)
    finally:
        s.close()
