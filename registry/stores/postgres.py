"""The shared store: PostgreSQL through psycopg 3 and a ``psycopg_pool`` connection pool.

Stateless idnode processes on several hosts share one PostgreSQL; the tables are the
SQLite ones (one row per value, the change log, idempotency keys, principals, prefixes)
with every key column ``COLLATE "C"``, so keys compare byte-wise on every backend and
listing a prefix is a range scan of the primary key, exactly as in SQLite.

**Writes and the commit-order watermark.** Every write transaction (``apply``,
``apply_many``, a unit of work) starts by locking the one row of ``change_counter``
(``SELECT ... FOR UPDATE``); sequences are numbered from it inside the transaction, and
the row is set to the last one before ``COMMIT``. PostgreSQL marks a transaction
committed (visible to new snapshots) before it releases its locks, so the next writer
reads its first number only after every lower number is visible: **sequence order is
commit order**, and ``changes_since`` can never show a sequence while a lower one is still
in flight (registry/store.py, ``ChangeLog``). A rollback rolls the counter back too.
The lock is taken *first*, before any check or row lock, so write transactions never
wait for each other in two places and cannot deadlock; the precondition checks and the
request-id lookup then run under it and are authoritative, so a duplicate key or a stale
etag is found by a check, never by a constraint (a bad row of a bulk fails alone without
savepoints). The price is that writes are serialised, as in SQLite: each holds the lock
for a few indexed statements (the writes themselves go in one pipelined round trip), and
bulk imports take it once per chunk. Reads never wait for it (MVCC).

**Waiting for changes** uses ``LISTEN idnode_changes``: a trigger on ``changes`` (migration
0002) notifies at commit, one listener connection per store object wakes every waiter.
While that connection is down, waiters poll every 50 ms; while it is up they ask the
database only after a notification, and once a second in case one was lost (so idle
followers, which wait in 50 ms slices, cost no queries).

**Failures** are translated in one place, :func:`_translate`, applied to every public
method by :func:`_errors_mapped`: a database that cannot be reached, is shutting down,
read-only, out of disk or connections, or slower than the statement/lock timeout is
:class:`~registry.errors.Unavailable` (plain words: no SQL, host, user or password), a
duplicate key :class:`~registry.errors.AlreadyExists`, anything else a
:class:`~registry.store.StoreDefect`. No psycopg exception leaves this module. A dead
database fails fast: ``connect_timeout`` bounds connecting, the pool's wait for a free
connection is bounded by the same number, and ``statement_timeout``/``lock_timeout`` bound
every statement. A connection found broken (the server restarted) makes the pool check
its idle connections, and a read is retried once on a fresh one, so the pool recovers by
itself and a restart costs reads nothing; a write is not retried (its commit may have
happened), the caller retries it with its request id.

**Migrations**: ``registry/migrations/postgres/NNNN_name.sql``, applied in order at open
inside one transaction under an advisory lock (processes starting together migrate
once), recorded in ``schema_version``. A database whose schema is newer than this build
knows is refused (Unavailable naming both versions).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from registry import audit
from registry.access.principals import Principal, StoredPrincipal, identity_key
from registry.access.tokens import StoredToken
from registry.applications import Application, ApplicationState
from registry.audit import AuditEntry, AuditPage, AuditQuery
from registry.errors import AlreadyExists, IdnodeError, InvalidArgument, Unavailable
from registry.identifier import Handle, Prefix
from registry.record import (
    NO_AUDIT_CONTEXT,
    Change,
    Operation,
    Record,
    Write,
    WriteResult,
    etag_of,
    values_from_json,
    values_to_json,
)
from registry.store import (
    REQUEST_RETENTION_SECONDS,
    Counts,
    StoreDefect,
    TemplateChange,
    application_conflict,
    check_meta_name,
    check_pending,
    check_precondition,
    replay_application,
    replay_or_conflict,
    template_changed,
)
from registry.stores import dump_rows, template_rows, token_rows
from registry.stores.application_rows import (
    COLUMNS,
    INSERT_COLUMNS,
    application_from_row,
    application_row,
)
from registry.stores.value_codec import decode_value, encode_value
from registry.templates import Template
from registry.values import Permissions, Value

_PURGE_EVERY_WRITES = 1000
_CHANNEL = "idnode_changes"
_MIGRATION_LOCK = 0x1D0DE_5C4E  # pg_advisory_xact_lock key: "idnode schema"
# wait_for_changes: how often to look when the listener is down / as a safety net.
_POLL_WITHOUT_LISTENER = 0.05
_POLL_WITH_LISTENER = 1.0

# --- driver errors -> domain errors (the one place) ----------------------------------------

_UNAVAILABLE = "the store is unavailable: "
_CLOSED = "it has been closed"
_UNREACHABLE = "the database cannot be reached or the connection to it was lost"
# SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) and what they
# mean to a caller.
_UNAVAILABLE_BY_SQLSTATE = {
    "57014": "a statement took longer than the statement timeout",           # query_canceled
    "55P03": "another writer held the write lock for longer than the lock timeout",
    "40P01": "the database detected a deadlock; try again",
    "40001": "the database could not serialise the transaction; try again",
    "25006": "the database is read-only (a standby), so nothing can be written",
    "42501": "permission to use the database was denied",
    "3D000": "the database does not exist",
    "53100": "the database's disk is full",
    "53200": "the database ran out of memory",
    "53300": "the database has too many connections",
    "57P01": "the database is shutting down",
    "57P02": "the database is restarting after a crash",
    "57P03": "the database is starting up and not accepting connections yet",
    "XX001": "the database's data is damaged",
    "XX002": "a database index is damaged",
    "25P03": "a unit of work stayed idle for longer than the idle timeout",
}
_UNAVAILABLE_BY_CLASS = {
    "08": _UNREACHABLE,                                                 # connection exception
    "28": "the database refused the login (wrong user or password, or not allowed)",
    "53": "the database ran out of a resource (disk, memory or connections)",
    "57": "the database stopped the operation (shutdown, restart or cancel)",
    "58": "the database could not read or write its files",
}

_CONNECT_FAILURES = (
    ("authentication failed", _UNAVAILABLE_BY_CLASS["28"]),
    ("no pg_hba.conf entry", _UNAVAILABLE_BY_CLASS["28"]),
    ("password", _UNAVAILABLE_BY_CLASS["28"]),  # "no password supplied", ...
    ("role \"", _UNAVAILABLE_BY_CLASS["28"]),     # role "x" does not exist
    ("database \"", _UNAVAILABLE_BY_SQLSTATE["3D000"]),  # database "x" does not exist
    ("the database system is starting up", _UNAVAILABLE_BY_SQLSTATE["57P03"]),
    ("the database system is shutting down", _UNAVAILABLE_BY_SQLSTATE["57P01"]),
    ("too many clients", _UNAVAILABLE_BY_SQLSTATE["53300"]),
)


def _translate(exc: psycopg.Error) -> IdnodeError | StoreDefect:
    """The domain error for a driver error. Messages name the condition, never SQL, a
    table or column, a host, a user or a password (they reach callers and audit logs)."""
    if isinstance(exc, PoolClosed):
        return Unavailable(_UNAVAILABLE + _CLOSED)
    if isinstance(exc, PoolTimeout):
        return Unavailable(_UNAVAILABLE + "no database connection became free in time (the "
                           "database is slow, overloaded or cannot be reached)")
    if isinstance(exc, TooManyRequests):
        return Unavailable(_UNAVAILABLE + "too many requests are waiting for a database "
                           "connection")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return AlreadyExists("an entry with the same key already exists")
    state = exc.sqlstate
    if state in _UNAVAILABLE_BY_SQLSTATE:
        return Unavailable(_UNAVAILABLE + _UNAVAILABLE_BY_SQLSTATE[state])
    if state is not None and state[:2] in _UNAVAILABLE_BY_CLASS:
        return Unavailable(_UNAVAILABLE + _UNAVAILABLE_BY_CLASS[state[:2]])
    if state is None and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # Raised by libpq or psycopg rather than by a statement: refused, reset, timed
        # out, or a FATAL at login, whose SQLSTATE libpq does not expose: its (English)
        # text is the only way to tell a wrong password from a dead host.
        text = str(exc)
        for phrase, meaning in _CONNECT_FAILURES:
            if phrase in text:
                return Unavailable(_UNAVAILABLE + meaning)
        return Unavailable(_UNAVAILABLE + _UNREACHABLE)
    return StoreDefect("the store sent the database an operation it refused "
                       f"(SQLSTATE {state or 'none'})")


def _connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` means the connection is gone (so another one may work)."""
    if isinstance(exc, PoolClosed | PoolTimeout | TooManyRequests):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


_P = ParamSpec("_P")
_R = TypeVar("_R")
_C = TypeVar("_C", bound=type)


def _mapped(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except psycopg.Error as exc:
            store = args[0] if args else None
            raise _translate_for(store, exc) from exc
    return call


def _translate_for(owner: object, exc: psycopg.Error) -> IdnodeError | StoreDefect:
    """:func:`_translate`, except that anything after ``close`` says so, and a lost
    connection makes the pool look at its idle ones (so the next call gets a good one)."""
    store = owner if isinstance(owner, PostgresStore) else getattr(owner, "_store", None)
    if isinstance(store, PostgresStore):
        if store._closed and store._was_open:
            return Unavailable(_UNAVAILABLE + _CLOSED)
        if _connection_lost(exc):
            store._check_pool()
    return _translate(exc)


def _errors_mapped(cls: _C) -> _C:
    """Wrap every public method of ``cls`` (and ``__init__``) with :func:`_translate`.
    Generator-based context managers are wrapped inside (see ``unit_of_work``)."""
    for name, attr in list(vars(cls).items()):
        if callable(attr) and (not name.startswith("_") or name == "__init__"):
            setattr(cls, name, _mapped(attr))
    return cls


# --- migrations ----------------------------------------------------------------------------


def migrations() -> list[tuple[int, str]]:
    """``(version, SQL)`` of every shipped PostgreSQL migration, in order."""
    folder = resources.files("registry") / "migrations" / "postgres"
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            out.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


KNOWN_VERSION = max(v for v, _ in migrations())


def _applied(conn: psycopg.Connection[Any]) -> set[int]:
    """The versions recorded in ``schema_version`` (none before the first migration)."""
    exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()
    if exists is None or exists[0] is None:
        return set()
    return {int(r[0]) for r in conn.execute("SELECT version FROM schema_version").fetchall()}


def _pending(applied: set[int]) -> list[tuple[int, str]]:
    """Every shipped migration not recorded, in order: a number left free by another
    branch and shipped later (0003 after 0004) is applied when it arrives instead of
    being skipped as "older than the schema"."""
    return [(v, sql) for v, sql in migrations() if v not in applied]


def _refuse_newer(version: int) -> None:
    if version > KNOWN_VERSION:
        raise Unavailable(
            f"{_UNAVAILABLE}the database schema is version {version}, newer than this build "
            f"knows (up to version {KNOWN_VERSION}); run a newer idnode")


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations ``conn``'s database has not had, in one transaction; the
    versions applied, in order. An up-to-date database is only read (a user without DDL
    rights can open it); otherwise an advisory lock makes concurrent openers migrate once.
    A migration file is sent whole (several statements, dollar-quoted bodies): the
    server splits it, so the runner needs no SQL parser."""
    applied = _applied(conn)
    _refuse_newer(max(applied, default=0))
    if not _pending(applied):
        return []
    done: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     "version integer PRIMARY KEY, applied_at timestamptz NOT NULL "
                     "DEFAULT now())")
        applied = _applied(conn)  # again, under the lock
        _refuse_newer(max(applied, default=0))
        for version, sql in _pending(applied):
            conn.execute(sql.encode())  # bytes: no parameters, so no %-escaping
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            done.append(version)
    return done


def _store_id(conn: psycopg.Connection[Any]) -> str:
    """The store id ('' while the migration that creates it is pending)."""
    exists = conn.execute("SELECT to_regclass('meta')").fetchone()
    if exists is None or exists[0] is None:
        return ""
    row = conn.execute("SELECT value FROM meta WHERE name = 'store_id'").fetchone()
    return str(row[0]) if row is not None else ""


# --- rows ----------------------------------------------------------------------------------


def _value_row(key: str, v: Value) -> tuple[object, ...]:
    """One record_values row; both write paths insert exactly these columns."""
    kind, data = encode_value(v)
    return (key, v.index, v.type, kind, data, v.ttl, v.timestamp, v.permissions.to_bits())


_INSERT_VALUE = ("INSERT INTO record_values (key, idx, type, kind, data, ttl, ts, perms) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")
_CHANGE_COLUMNS = ("seq, op, key, handle, version, values_json, principal, request_id, at, "
                   "client_address, door")
_INSERT_CHANGE = ("INSERT INTO changes (seq, op, key, handle, version, values_json, principal, "
                  "request_id, at, client_address, door) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
# audit.COLUMNS, in order
_INSERT_AUDIT = ("INSERT INTO audit (at, principal, principal_key, action, target, prefix_key, "
                 "request_id, outcome, client_address, door, message, seq) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
_SET_COUNTER = "UPDATE change_counter SET seq = %s, records = %s"
_LIST_KEYS = ("SELECT key, handle FROM records WHERE key > %s AND key < %s ORDER BY key "
              "LIMIT %s")


def _load_application(conn: psycopg.Connection[Any],
                      application_id: str) -> Application | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM applications WHERE id = %s",  # noqa: S608
                       (application_id,)).fetchone()
    return application_from_row(row) if row is not None else None


def _decide(conn: psycopg.Connection[Any], application_id: str, state: ApplicationState,
            reviewer: str, reason: str, now: int) -> Application:
    """Under the counter lock (every write transaction holds it), so the check is
    authoritative: of two concurrent decisions the second sees the first's."""
    current = check_pending(_load_application(conn, application_id), application_id)
    conn.execute("UPDATE applications SET state = %s, reviewer = %s, reason = %s, "
                 "decided_at = %s WHERE id = %s AND state = 'pending'",
                 (state.value, reviewer, reason, now, application_id))
    return current.decided(state, reviewer, reason, now)


def _conninfo(url: str, application_name: str, connect_timeout: float,
              settings: Sequence[str], **extra: str | int) -> str:
    """The libpq connection string for ``url`` with our server settings (``-c name=value``
    options), a bounded connect timeout and ``extra`` libpq parameters (the URL's own
    win); InvalidArgument when it does not parse."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise InvalidArgument("the PostgreSQL URL cannot be parsed") from None
    options = " ".join(filter(None, [str(params.get("options") or ""), *settings]))
    params.update(options=options, application_name=application_name)
    # libpq's connect_timeout is whole seconds, at least 2.
    params.setdefault("connect_timeout", max(2, round(connect_timeout)))
    for name, value in extra.items():
        params.setdefault(name, value)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


# One record and its values; the replica's query puts the replayed sequence first.
_GET_COLUMNS = ("r.handle, r.version, r.seq, r.updated_at, v.idx, v.type, v.kind, v.data, "
                "v.ttl, v.ts, v.perms")


def _record(rows: Sequence[Sequence[Any]]) -> Record | None:
    """The record in ``rows`` of :data:`_GET_COLUMNS` (None: no rows, or a NULL handle)."""
    if not rows or rows[0][0] is None:
        return None
    first = rows[0]
    values = tuple(
        Value(r[4], r[5], decode_value(r[6], r[7]), r[8], r[9], Permissions.from_bits(r[10]))
        for r in rows if r[4] is not None)
    return Record(Handle.parse(first[0]), values, first[1], first[2], first[3])


class _Tx:
    """One write transaction holding the counter lock: the next sequence, and the
    identifier count as this transaction leaves it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        row = conn.execute("SELECT seq, records FROM change_counter FOR UPDATE").fetchone()
        if row is None:
            raise StoreDefect("the change counter row is missing")
        self.seq = int(row[0])
        self.records = int(row[1])
        self.writes = 0
        self.now = 0  # the latest write time (request-id retention is measured from it)


@_errors_mapped
class PostgresUnitOfWork:
    """See :class:`registry.store.UnitOfWork`. Only :meth:`PostgresStore.unit_of_work`
    makes one, inside its transaction (which holds the counter lock)."""

    def __init__(self, store: PostgresStore, tx: _Tx) -> None:
        self._store = store
        self._tx = tx

    def apply(self, write: Write, now: int) -> WriteResult:
        return self._store._apply(self._tx, write, now)

    def add_principal(self, principal: StoredPrincipal) -> None:
        PostgresStore._insert_principal(self._tx.conn, principal)

    def add_prefix(self, prefix: Prefix, owner_id: str, now: int) -> None:
        # ON CONFLICT DO NOTHING: a duplicate is found without aborting the transaction,
        # so the unit goes on after AlreadyExists.
        row = self._tx.conn.execute(
            "INSERT INTO prefixes (key, prefix, owner, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (prefix.key, prefix.text, owner_id, now)).fetchone()
        if row is None:
            raise AlreadyExists(f"prefix {prefix.text} is already allocated")

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        return _decide(self._tx.conn, application_id, state, reviewer, reason, now)

    def set_meta(self, name: str, value: str) -> None:
        self._tx.conn.execute(
            "INSERT INTO meta (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (check_meta_name(name), value))


@_errors_mapped
class PostgresStore:
    """See :class:`registry.store.Store` and the module docstring.

    ``url`` is a libpq URL (``postgresql://user:password@host:port/db?...``; ``postgres://``
    too). ``max_connections`` bounds the pool (size it to the node's threads);
    ``connect_timeout_seconds`` bounds connecting and waiting for a free connection;
    ``statement_timeout_ms`` any statement; ``lock_timeout_ms`` how long a write waits for
    another writer; ``idle_in_transaction_timeout_ms`` how long a unit of work may sit
    idle holding the write lock (a frozen process cannot stall every writer for ever).
    ``auto_migrate=False`` opens the database without applying pending migrations (a
    schema newer than this build is still refused): :meth:`migrate` applies them.
    """

    BACKEND = "postgresql"

    def __init__(self, url: str, *, min_connections: int = 1, max_connections: int = 16,
                 connect_timeout_seconds: float = 5.0, statement_timeout_ms: int = 10_000,
                 lock_timeout_ms: int = 5_000, idle_in_transaction_timeout_ms: int = 30_000,
                 application_name: str = "idnode", auto_migrate: bool = True) -> None:
        if not 1 <= min_connections <= max_connections:
            raise InvalidArgument("the pool needs 1 <= min_connections <= max_connections")
        self._closed = False
        self._was_open = False  # errors while opening keep their own message
        self._local = threading.local()
        self._changed = threading.Condition()
        self._generation = 0
        # The last look at the counter while listening: (generation, sequence, when).
        # Until a notification (or the listener reconnecting) moves the generation,
        # nothing new has committed, so waiters need not ask the database again.
        self._looked: tuple[int, int, float] | None = None
        self._listener: threading.Thread | None = None
        self._listening = False
        self._listener_lock = threading.Lock()
        self._writes = 0
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._connect_timeout = max(connect_timeout_seconds, 0.1)
        self._conninfo = _conninfo(url, application_name, self._connect_timeout, [
            f"-c statement_timeout={int(statement_timeout_ms)}",
            f"-c lock_timeout={int(lock_timeout_ms)}",
            f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout_ms)}",
        ])
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                if auto_migrate:
                    migrate(conn)
                else:
                    _refuse_newer(max(_applied(conn), default=0))
                self._id = _store_id(conn)
                if auto_migrate and not self._id:
                    raise StoreDefect("the store id is missing")
            self._pool = ConnectionPool(
                self._conninfo, min_size=min_connections, max_size=max_connections,
                kwargs={"autocommit": True}, timeout=self._connect_timeout,
                reconnect_timeout=3600, name="idnode-store", open=True)
            self._was_open = True
        except BaseException:
            self.close()
            raise

    # --- connections -------------------------------------------------------------------

    def _check_open(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._closed or self._pool is None:
            raise Unavailable(_UNAVAILABLE + _CLOSED)
        return self._pool

    def _check_pool(self) -> None:
        """A connection was lost (the server restarted?): drop the pool's broken idle
        connections now instead of handing them out one failure at a time."""
        pool = self._pool
        if pool is not None and not self._closed:
            with suppress(psycopg.Error):
                pool.check()

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read. A read that lost its connection is retried once after
        the pool dropped its broken connections: reads are safe to repeat."""
        pool = self._check_open()
        try:
            with pool.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            if self._closed or not _connection_lost(exc):
                raise
            self._check_pool()
            with self._check_open().connection() as conn:
                return conn.execute(sql, params).fetchall()

    @contextmanager
    def _write_tx(self) -> Iterator[_Tx]:
        """One write transaction holding the counter lock (see the module docstring)."""
        if getattr(self._local, "in_unit", False):
            raise RuntimeError("units of work are not re-entrant")
        pool = self._check_open()
        self._local.in_unit = True
        try:
            with pool.connection() as conn, conn.transaction():
                tx = _Tx(conn)
                yield tx
        finally:
            self._local.in_unit = False
        if tx.writes:
            self._wake()
            self._after_writes(tx.writes, tx.now)

    def schema_version(self) -> int:
        """The highest migration recorded (0 for a database never migrated)."""
        with self._check_open().connection() as conn:
            return max(_applied(conn), default=0)

    def shipped_migrations(self) -> list[int]:
        """The migration versions this build ships, in order."""
        return [v for v, _ in migrations()]

    def pending_migrations(self) -> list[int]:
        """The shipped migrations this database has not had, in order."""
        with self._check_open().connection() as conn:
            return [v for v, _ in _pending(_applied(conn))]

    def migrate(self) -> list[int]:
        """Apply the pending migrations (one transaction, under the advisory lock, so
        nodes starting at the same time wait for it); the versions applied."""
        with self._check_open().connection() as conn:
            applied = migrate(conn)
            self._id = _store_id(conn)
        return applied

    # --- whole-store dumps (registry/stores/dump_rows.py) -------------------------------

    def iter_records(self, after_key: str, limit: int) -> list[Record]:
        """At most ``limit`` records with a key above ``after_key``, in key order."""
        return dump_rows.group_records(self._rows(dump_rows.records_sql("%s"),
                                                  (after_key, limit)))

    def dump_rows(self, table: str, after: str | int, limit: int) -> list[tuple[object, ...]]:
        """A page of ``table``'s rows (dump_rows.TABLES) after ``after``, as stored."""
        t = dump_rows.table(table)
        return [tuple(r) for r in self._rows(dump_rows.page_sql(t, "%s"), (after, limit))]

    def restore_rows(self, table: str, rows: Sequence[Sequence[object]]) -> None:
        """Write rows as :meth:`dump_rows` read them, in one write transaction."""
        t = dump_rows.table(table)
        with self._write_tx() as tx, tx.conn.cursor() as cur:
            cur.executemany(dump_rows.insert_sql(t, "%s"), dump_rows.insert_rows(t, rows))

    def meta(self, name: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE name = %s", (name,))
        return str(rows[0][0]) if rows else None

    def store_id(self) -> str:
        self._check_open()
        return self._id

    # --- units of work -----------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[PostgresUnitOfWork]:
        try:
            with self._write_tx() as tx:
                yield PostgresUnitOfWork(self, tx)
        except psycopg.Error as exc:
            raise _translate_for(self, exc) from exc

    # --- records -----------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        # One statement (one snapshot): the record and its values together.
        return _record(self._rows(
            f"SELECT {_GET_COLUMNS} FROM records r "  # noqa: S608
            "LEFT JOIN record_values v ON v.key = r.key WHERE r.key = %s ORDER BY v.idx",
            (key,)))

    def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        # One statement: the rows are records_sql's shape (key, then _GET_COLUMNS).
        if not keys:
            return {}
        rows = self._rows(f"SELECT r.key, {_GET_COLUMNS} FROM records r "  # noqa: S608
                          "LEFT JOIN record_values v ON v.key = r.key "
                          "WHERE r.key = ANY(%s) ORDER BY r.key, v.idx", (list(keys),))
        return {record.handle.key: record for record in dump_rows.group_records(rows)}

    def apply(self, write: Write, now: int) -> WriteResult:
        with self._write_tx() as tx:
            return self._apply(tx, write, now)

    def apply_many(self, writes: Sequence[Write], now: int) -> list[WriteResult | IdnodeError]:
        out: list[WriteResult | IdnodeError] = []
        with self._write_tx() as tx:
            if all(w.operation is Operation.REGISTER and w.precondition.absent
                   and w.request is None and w.values is not None for w in writes):
                return self._register_many(tx, writes, now)
            applied: list[tuple[Write, str, int]] = []
            for write in writes:
                try:  # checks run before anything is written: a failure writes nothing
                    result = self._apply(tx, write, now, audit_row=False)
                except IdnodeError as exc:
                    out.append(exc)
                    continue
                out.append(result)
                if not result.replayed:
                    applied.append((write, result.handle, result.sequence))
            rows = audit.bulk_rows(applied, now)
            if rows:
                with tx.conn.cursor() as cur:
                    cur.executemany(_INSERT_AUDIT, rows)
        return out

    @staticmethod
    def _register_many(tx: _Tx, writes: Sequence[Write],
                       now: int) -> list[WriteResult | IdnodeError]:
        """The import path: new identifiers only, so one existence query for the chunk
        and COPY for the rows (sequences assigned here, under the counter lock)."""
        conn = tx.conn
        keys = [w.handle.key for w in writes]
        existing = {row[0] for row in conn.execute(
            "SELECT key FROM records WHERE key = ANY(%s)", (keys,)).fetchall()}
        out: list[WriteResult | IdnodeError] = []
        changes: list[tuple[object, ...]] = []
        records: list[tuple[object, ...]] = []
        rows: list[tuple[object, ...]] = []
        applied: list[tuple[Write, str, int]] = []
        seq = tx.seq
        for write in writes:
            key = write.handle.key
            if key in existing:
                out.append(AlreadyExists(f"identifier {write.handle} already exists"))
                continue
            existing.add(key)
            seq += 1
            display = str(write.handle)
            values = write.values or ()
            ctx = write.audit or NO_AUDIT_CONTEXT
            changes.append((seq, Operation.REGISTER.value, key, display, 1,
                            values_to_json(values), write.principal, "", now,
                            ctx.peer, ctx.door))
            records.append((key, display, write.handle.prefix_key, 1, seq, now))
            rows.extend(_value_row(key, v) for v in values)
            applied.append((write, display, seq))
            out.append(WriteResult(display, 1, etag_of(seq), seq, key=key))
        if not records:
            return out
        with conn.cursor() as cur:
            for table, columns, data in (
                    ("changes", _CHANGE_COLUMNS, changes),
                    ("records", "key, handle, prefix_key, version, seq, updated_at", records),
                    ("record_values", "key, idx, type, kind, data, ttl, ts, perms", rows),
                    ("audit", audit.COLUMNS, audit.bulk_rows(applied, now))):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for item in data:
                        copy.write_row(item)
        tx.seq = seq
        tx.records += len(records)
        tx.writes += len(records)
        tx.now = max(tx.now, now)
        conn.execute(_SET_COUNTER, (tx.seq, tx.records))
        return out

    @staticmethod
    def _apply(tx: _Tx, write: Write, now: int, *, audit_row: bool = True) -> WriteResult:
        """One write under the counter lock: checks first (they write nothing), then every
        row in one pipelined round trip (``audit_row=False``: its audit row is the
        caller's, apply_many)."""
        conn = tx.conn
        key = write.handle.key
        if write.request is not None:
            row = conn.execute(
                "SELECT fingerprint, handle, version, seq FROM requests "
                "WHERE scope = %s AND request_id = %s",
                (write.request.scope, write.request.request_id)).fetchone()
            if row is not None:
                return replay_or_conflict(
                    write, row[0], WriteResult(row[1], row[2], etag_of(row[3]), row[3]))
        row = conn.execute("SELECT handle, version, seq FROM records WHERE key = %s",
                           (key,)).fetchone()
        # The precondition needs the version and sequence only, not the values.
        current = (Record(Handle.parse(row[0]), (), row[1], row[2], 0)
                   if row is not None else None)
        check_precondition(current, write)
        seq = tx.seq + 1
        display = str(current.handle) if current is not None else str(write.handle)
        version = current.version + 1 if current is not None else 1
        values = write.values if write.values is not None else ()
        records = tx.records + (current is None) - (write.values is None)
        row = audit.accepted_row(write, display, seq, now)
        with conn.pipeline():
            conn.execute(_INSERT_CHANGE, (
                seq, write.operation.value, key, display,
                version if write.values is not None else 0, values_to_json(values),
                write.principal, row[6], now, row[8], row[9]))
            if audit_row:
                conn.execute(_INSERT_AUDIT, row)
            if current is not None:
                conn.execute("DELETE FROM record_values WHERE key = %s", (key,))
            if write.values is None:
                conn.execute("DELETE FROM records WHERE key = %s", (key,))
                result = WriteResult(display, 0, "", seq, key=key)
            else:
                conn.execute(
                    "INSERT INTO records (key, handle, prefix_key, version, seq, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "version = EXCLUDED.version, seq = EXCLUDED.seq, "
                    "updated_at = EXCLUDED.updated_at",
                    (key, display, write.handle.prefix_key, version, seq, now))
                if values:
                    with conn.cursor() as cur:
                        cur.executemany(_INSERT_VALUE, [_value_row(key, v) for v in values])
                result = WriteResult(display, version, etag_of(seq), seq, key=key)
            if write.request is not None:
                conn.execute(
                    "INSERT INTO requests (scope, request_id, fingerprint, handle, version, "
                    "seq, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (write.request.scope, write.request.request_id,
                     write.request.fingerprint, result.handle, result.version, seq, now))
            conn.execute(_SET_COUNTER, (seq, records))
        tx.seq = seq
        tx.records = records
        tx.writes += 1
        tx.now = max(tx.now, now)
        return result

    def _after_writes(self, n: int, now: int) -> None:
        """Every ~1,000 writes of this process, drop idempotency keys past retention
        (outside the write lock: it touches no row a writer checks under it)."""
        self._writes += n
        if self._writes >= _PURGE_EVERY_WRITES and self._pool is not None:
            self._writes = 0
            with self._pool.connection() as conn:
                conn.execute("DELETE FROM requests WHERE created_at < %s",
                             (now - REQUEST_RETENTION_SECONDS,))

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        # Keys of prefix P are exactly those in ["P/", "P0"): '0' follows '/' in ASCII,
        # and a sub-prefix's keys start with "P." instead. COLLATE "C" on the column makes
        # this a byte-wise range scan of the primary key.
        rows = self._rows(_LIST_KEYS, (after_key or prefix_key + "/", prefix_key + "0", limit))
        return [(r[0], r[1]) for r in rows]

    def counts(self) -> Counts:
        row = self._rows("SELECT (SELECT count(*) FROM prefixes), records "
                         "FROM change_counter")[0]
        return Counts(int(row[0]), int(row[1]))

    # --- change log --------------------------------------------------------------------

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        rows = self._rows(
            "SELECT seq, op, handle, key, version, values_json, at, principal, request_id, "
            "client_address, door FROM changes WHERE seq > %s ORDER BY seq LIMIT %s",
            (sequence, max(limit, 0)))
        return [Change(r[0], Operation(r[1]), r[2], r[3], r[4], values_from_json(r[5]), r[6],
                       r[7], r[8], r[9], r[10]) for r in rows]

    def last_sequence(self) -> int:
        # The counter holds the highest committed sequence (a rollback rolls it back).
        return int(self._rows("SELECT seq FROM change_counter")[0][0])

    def wait_for_changes(self, after_sequence: int, timeout_seconds: float) -> bool:
        """Woken by LISTEN/NOTIFY (commits by any process) and at once by commits through
        this object; polls every 50 ms while the listener is reconnecting.

        While listening, the database is asked only after a notification (or once a
        second, in case one was lost): waiters that find the generation where the last
        look left it know nothing has committed since, so idle followers (which call
        this in short slices) cost no queries."""
        deadline = time.monotonic() + max(timeout_seconds, 0.0)
        self._start_listener()
        while True:
            with self._changed:
                generation = self._generation
            if self._committed_since_look(generation) > after_sequence:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poll = _POLL_WITH_LISTENER if self._listening else _POLL_WITHOUT_LISTENER
            with self._changed:
                if self._generation == generation and not self._closed:
                    self._changed.wait(min(poll, remaining))

    def _committed_since_look(self, generation: int) -> int:
        """The highest committed sequence, from the last look when no notification came
        since (and it is under a second old), else from the database."""
        looked = self._looked
        now = time.monotonic()
        if (looked is not None and looked[0] == generation and self._listening
                and now - looked[2] < _POLL_WITH_LISTENER):
            return looked[1]
        listening = self._listening  # before the query: a commit after it notifies
        sequence = self.last_sequence()
        self._looked = (generation, sequence, now) if listening else None
        return sequence

    def _wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _start_listener(self) -> None:
        with self._listener_lock:
            self._check_open()
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, daemon=True,
                                                  name="idnode-store-listen")
                self._listener.start()

    def _listen(self) -> None:
        """The listener thread: one connection LISTENing; reconnects with a back-off."""
        backoff = 0.1
        while not self._closed:
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {_CHANNEL}")
                    self._listening = True
                    self._wake()  # a commit may have happened while nobody listened
                    backoff = 0.1
                    while not self._closed:
                        for _ in conn.notifies(timeout=0.25):
                            self._wake()
            except psycopg.Error:
                pass
            self._listening = False
            self._wake()  # waiters switch to polling
            deadline = time.monotonic() + backoff
            while not self._closed and time.monotonic() < deadline:
                time.sleep(0.05)
            backoff = min(backoff * 2, 2.0)

    # --- audit log ---------------------------------------------------------------------

    def record_refusal(self, *entries: AuditEntry) -> None:
        """A transaction of its own that does not take the counter lock: refusals never
        wait for writers, nor writers for them."""
        if not entries:
            return
        with self._check_open().connection() as conn, conn.transaction(), \
                conn.cursor() as cur:
            cur.executemany(_INSERT_AUDIT, [e.row() for e in entries])

    def audit_entries(self, query: AuditQuery) -> AuditPage:
        where, params = audit.sql_filter(query, "%s")
        rows = self._rows(
            f"SELECT id, {audit.COLUMNS} FROM audit WHERE {where} "  # noqa: S608
            "ORDER BY id DESC LIMIT %s", [*params, query.limit + 1])
        return audit.page_of([AuditEntry.from_row(r) for r in rows], query.limit)

    # --- principals and prefixes --------------------------------------------------------

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        rows = self._rows(
            "SELECT display, role, prefix_key, secret_hash, created_at FROM principals "
            "WHERE id = %s", (identity_key,))
        if not rows:
            return None
        r = rows[0]
        return StoredPrincipal(Principal.of(r[0]), r[3], r[4])

    @staticmethod
    def _insert_principal(conn: psycopg.Connection[Any], p: StoredPrincipal) -> None:
        row = conn.execute(
            "INSERT INTO principals (id, display, role, prefix_key, secret_hash, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (identity_key(p.principal.id), p.principal.id, "principal", "",
             p.secret_hash, p.created_at)).fetchone()
        if row is None:
            raise AlreadyExists(f"principal {p.principal.id} already exists")

    def add_principal(self, principal: StoredPrincipal) -> None:
        with self._write_tx() as tx:
            self._insert_principal(tx.conn, principal)

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, token: StoredToken) -> None:
        with self._write_tx() as tx:
            row = tx.conn.execute(
                token_rows.POSTGRES["insert"], token_rows.to_row(token)).fetchone()
            if row is None:
                raise AlreadyExists(f"token {token.token_id} already exists")

    def get_token(self, token_id: str) -> StoredToken | None:
        rows = self._rows(token_rows.POSTGRES["by_id"],
                          (token_id,))
        return token_rows.from_row(rows[0]) if rows else None

    def list_tokens(self, principal_key: str) -> list[StoredToken]:
        rows = self._rows(token_rows.POSTGRES["by_principal"], (principal_key,))
        return [token_rows.from_row(r) for r in rows]

    def revoke_token(self, token_id: str, now: int) -> StoredToken | None:
        with self._write_tx() as tx:
            tx.conn.execute(token_rows.POSTGRES["revoke"], (now, token_id))
            row = tx.conn.execute(token_rows.POSTGRES["by_id"],
                                  (token_id,)).fetchone()
        return token_rows.from_row(row) if row is not None else None

    def has_prefix(self, prefix_key: str) -> bool:
        return bool(self._rows("SELECT 1 FROM prefixes WHERE key = %s", (prefix_key,)))

    # --- applications ------------------------------------------------------------------

    def add_application(self, application: Application) -> Application:
        """Under the counter lock like every write, so the checks are authoritative and
        ``seq`` (an identity column) is assigned in commit order."""
        a = application
        with self._write_tx() as tx:
            conn = tx.conn
            if a.request_id:
                row = conn.execute(
                    f"SELECT {COLUMNS} FROM applications WHERE request_id = %s",  # noqa: S608
                    (a.request_id,)).fetchone()
                if row is not None:
                    return replay_application(a, application_from_row(row))
            if conn.execute("SELECT 1 FROM prefixes WHERE key = %s",
                            (a.prefix.key,)).fetchone() is not None:
                raise application_conflict(a.prefix, allocated=True)
            if conn.execute("SELECT 1 FROM applications WHERE prefix_key = %s AND "
                            "state = 'pending'", (a.prefix.key,)).fetchone() is not None:
                raise application_conflict(a.prefix, allocated=False)
            fields = application_row(a)
            inserted = conn.execute(
                f"INSERT INTO applications ({INSERT_COLUMNS}) VALUES "  # noqa: S608
                f"({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING RETURNING seq",
                fields).fetchone()
            if inserted is None:
                raise AlreadyExists(f"application {a.id} already exists")
            return replace(a, sequence=int(inserted[0]))

    def get_application(self, application_id: str) -> Application | None:
        rows = self._rows(f"SELECT {COLUMNS} FROM applications WHERE id = %s",  # noqa: S608
                          (application_id,))
        return application_from_row(rows[0]) if rows else None

    def list_applications(self, state: ApplicationState | None, before: int,
                          limit: int) -> list[Application]:
        where = ["seq < %s"]
        params: list[object] = [before if before > 0 else 2**63 - 1]
        if state is not None:
            where.append("state = %s")
            params.append(state.value)
        rows = self._rows(
            f"SELECT {COLUMNS} FROM applications "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT %s",
            (*params, max(limit, 0)))
        return [application_from_row(r) for r in rows]

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        with self._write_tx() as tx:
            return _decide(tx.conn, application_id, state, reviewer, reason, now)

    # --- templates -------------------------------------------------------------------

    def get_template(self, prefix_key: str, version: str) -> Template | None:
        rows = self._rows(template_rows.POSTGRES["get"], (prefix_key, version))
        return template_rows.from_row(rows[0]) if rows else None

    def list_templates(self, prefix_key: str) -> list[Template]:
        rows = self._rows(template_rows.POSTGRES["list"], (prefix_key,))
        return [template_rows.from_row(r) for r in rows]

    def change_templates(self, prefix_key: str, change: TemplateChange) -> Template:
        """Under the counter lock like every write, so ``change`` sees what is committed
        and no other template write of any prefix runs meanwhile."""
        with self._write_tx() as tx:
            existing = [template_rows.from_row(r) for r in tx.conn.execute(
                template_rows.POSTGRES["list"], (prefix_key,)).fetchall()]
            template = template_changed(prefix_key, change, existing)
            tx.conn.execute(template_rows.POSTGRES["put"], template_rows.to_row(template))
        return template

    def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            with suppress(psycopg.Error):
                pool.close(timeout=1.0)
        self._wake()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(2.0)


@_errors_mapped
class PostgresReplica:
    """A streaming standby of a :class:`PostgresStore`'s database, read-only (see
    :class:`registry.store.ReplicaReader`).

    **How fresh is an answer.** Every query reads the ``change_counter`` row in the same
    statement as the rows it answers with: one statement is one snapshot, and a standby's
    snapshot shows transactions in the primary's commit order (it replays commit records
    in WAL order). The primary's writers take the counter row lock before numbering
    and release it only once their commit is visible, so a commit record with a higher
    counter always follows every lower one in the WAL: a snapshot whose counter says
    ``s`` holds every write up to ``s`` and nothing after it. That is the change-log
    sequence callers already use as the currency of freshness (etags, cache floors,
    invalidations), so no WAL position has to be fetched after each commit and compared
    (``pg_current_wal_lsn`` / ``pg_last_wal_replay_lsn`` would work too, at the price of
    a second query per write and per read), and a copy that is not a physical standby
    (logical replication of these tables) works the same way.

    **Failures** raise Unavailable at once: nothing is retried here (the caller reads the
    primary instead and probes the copy later, off the request path, after
    :meth:`reset`). Opening never waits for the copy: a copy that is down at start only
    makes the pool keep trying in the background. ``connect_timeout_seconds`` bounds a
    connection attempt and the wait for a free pooled connection; ``statement_timeout_ms``
    any query (a standby may also cancel a query that conflicts with replay: that is one
    failed read too); a host that stops acknowledging fails a read after twice that.
    A replica *process* that is frozen while its host still acknowledges (SIGSTOP) holds
    the reads that reached it until it resumes: neither bound can end them.
    """

    BACKEND = "postgresql"

    def __init__(self, url: str, *, max_connections: int = 16,
                 connect_timeout_seconds: float = 2.0, statement_timeout_ms: int = 1_000,
                 application_name: str = "idnode-read") -> None:
        if max_connections < 1:
            raise InvalidArgument("a replica pool needs at least one connection")
        self._closed = False
        # tcp_user_timeout: a replica host that stops acknowledging (a network partition,
        # a paused machine) fails the read after twice the statement timeout instead of
        # holding it for as long as TCP retransmits.
        self._conninfo = _conninfo(url, application_name, connect_timeout_seconds, [
            f"-c statement_timeout={int(statement_timeout_ms)}",
            "-c default_transaction_read_only=on",
        ], tcp_user_timeout=2 * int(statement_timeout_ms))
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = ConnectionPool(
            self._conninfo, min_size=1, max_size=max_connections,
            kwargs={"autocommit": True}, timeout=max(connect_timeout_seconds, 0.1),
            reconnect_timeout=3600, name="idnode-replica", open=True)

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        pool = self._pool
        if self._closed or pool is None:
            raise Unavailable(_UNAVAILABLE + _CLOSED)
        with pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def store_id(self) -> str:
        return _store_id_of(self._rows("SELECT value FROM meta WHERE name = 'store_id'"))

    def replayed_sequence(self) -> int:
        return int(self._rows("SELECT seq FROM change_counter")[0][0])

    def get_replayed(self, key: str) -> tuple[int, Record | None]:
        rows = self._rows(
            f"SELECT c.seq, {_GET_COLUMNS} FROM change_counter c "  # noqa: S608
            "LEFT JOIN records r ON r.key = %s LEFT JOIN record_values v ON v.key = r.key "
            "ORDER BY v.idx", (key,))
        return int(rows[0][0]), _record([r[1:] for r in rows])

    def list_keys_replayed(self, prefix_key: str, after_key: str,
                           limit: int) -> tuple[int, list[tuple[str, str]]]:
        rows = self._rows(
            f"SELECT c.seq, k.key, k.handle FROM change_counter c LEFT JOIN LATERAL "  # noqa: S608
            f"({_LIST_KEYS}) k ON true ORDER BY k.key",
            (after_key or prefix_key + "/", prefix_key + "0", limit))
        return int(rows[0][0]), [(r[1], r[2]) for r in rows if r[1] is not None]

    def reset(self) -> None:
        """Let the pool test its idle connections and replace the broken ones (the copy
        restarted): the next query then gets a live connection, or fails at once."""
        pool = self._pool
        if pool is not None and not self._closed:
            with suppress(psycopg.Error):
                pool.check()

    def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            with suppress(psycopg.Error):
                pool.close(timeout=1.0)


def _store_id_of(rows: Sequence[Sequence[Any]]) -> str:
    return str(rows[0][0]) if rows else ""
