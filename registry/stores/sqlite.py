"""The embedded store: one SQLite file in WAL mode, one row per record (its values as JSON).

Writes go through one connection under a lock (SQLite has one writer anyway; BEGIN
IMMEDIATE plus a busy timeout serialises writers across worker processes). Reads use a
connection per thread, so they never wait for a writer.

Failures of the database are translated in one place, :func:`_translate`, applied to
every public method by :func:`_errors_mapped`: a busy, locked, read-only, full, damaged or
unreadable database is :class:`~registry.errors.Unavailable` (a message in plain words,
no SQL and no file path), a duplicate key is :class:`~registry.errors.AlreadyExists`, and
anything else the driver reports is a :class:`~registry.store.StoreDefect` (our bug).
No ``sqlite3`` exception leaves this module.

- A file whose header is damaged (not a database) is refused when the store is opened:
  the constructor raises Unavailable. Damage deeper in the file surfaces as Unavailable
  on the first read or write that touches the damaged pages.
- While another connection holds the write lock longer than ``busy_timeout_ms``, writes
  raise Unavailable; reads go on (WAL readers never wait for a writer).
- A new database file (and its -wal and -shm files, which SQLite creates with the
  database's mode) is created 0600: it holds secret hashes and unpublished values.
  Existing files keep the mode the operator gave them.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

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
from registry.templates import Template

_PURGE_EVERY_WRITES = 1000
_IN_CHUNK = 500  # below SQLite's default limit of bound parameters per statement
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
# How often wait_for_changes looks for commits made by other processes (commits made
# through this store object wake it at once).
_POLL_SECONDS = 0.02

# --- driver errors -> domain errors (the one place) ----------------------------------------

_UNAVAILABLE = "the store is unavailable: "
# Primary result codes (https://sqlite.org/rescode.html) and what they mean to a caller.
_UNAVAILABLE_BY_CODE = {
    3: "permission to use the database file was denied",                          # PERM
    5: "the database is locked by another writer for longer than the busy timeout",  # BUSY
    6: "a table is locked by another operation",                                  # LOCKED
    7: "it ran out of memory",                                                    # NOMEM
    8: "the database is read-only, so nothing can be written",                    # READONLY
    10: "the disk could not be read or written",                                  # IOERR
    11: "the database file is damaged",                                           # CORRUPT
    13: "the disk is full (or the database reached its size limit)",             # FULL
    14: "the database file cannot be opened (missing directory or no permission)",  # CANTOPEN
    15: "the database is locked by another writer",                               # PROTOCOL
    22: "the database file is too large for this system",                         # NOLFS
    23: "access to the database was denied",                                      # AUTH
    26: "the file is not a database (damaged or overwritten)",                    # NOTADB
}
_DUPLICATE_CODES = (1555, 2067)  # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
_CLOSED = "it has been closed"


def _is_duplicate(exc: sqlite3.IntegrityError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _DUPLICATE_CODES


def _translate(exc: sqlite3.Error) -> IdnodeError | StoreDefect:
    """The domain error for a driver error. Messages name the condition, never SQL, a
    table or column name, or the file's path (they reach callers and audit logs)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.IntegrityError):
        if _is_duplicate(exc):
            return AlreadyExists("an entry with the same key already exists")
        return StoreDefect(f"the store broke one of its own constraints (code {code})")
    if code is not None and (code & 0xFF) in _UNAVAILABLE_BY_CODE:
        return Unavailable(_UNAVAILABLE + _UNAVAILABLE_BY_CODE[code & 0xFF])
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return Unavailable(_UNAVAILABLE + _CLOSED)
    if isinstance(exc, sqlite3.OperationalError) and code is None:
        # Raised by the module itself rather than the engine (no result code), e.g. a
        # lock or interrupt outcome: the database could not be used, not a bad statement.
        return Unavailable(_UNAVAILABLE + "the database could not be used")
    return StoreDefect(f"the store sent the database an operation it refused (code {code})")


_P = ParamSpec("_P")
_R = TypeVar("_R")
_C = TypeVar("_C", bound=type)


def _mapped(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
    return call


def _errors_mapped(cls: _C) -> _C:
    """Wrap every public method of ``cls`` (and ``__init__``) with :func:`_translate`.

    A try/except costs nothing on the way through, so the hot read path keeps its speed.
    Generator-based context managers are wrapped inside (see ``unit_of_work``).
    """
    for name, attr in list(vars(cls).items()):
        if callable(attr) and (not name.startswith("_") or name == "__init__"):
            setattr(cls, name, _mapped(attr))
    return cls


@contextmanager
def _errors_translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _translate(exc) from exc


# --- migrations ----------------------------------------------------------------------------


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("registry") / "migrations" / "sqlite"
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            out.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def split_statements(script: str) -> list[str]:
    """The statements of an SQL script, each with its terminating ``;``.

    Pieces between ``;`` are accumulated until :func:`sqlite3.complete_statement` says
    the text so far is a whole statement, so a ``;`` inside a string literal, a quoted
    name, a comment or a trigger body (``BEGIN ...; ...; END;``) does not split it.
    (``executescript`` would do the splitting too, but it commits first, and migrations
    must run inside the migration's transaction.) Text after the last statement that is
    not blank is returned as a last statement, so the database reports what is wrong
    with it.
    """
    out: list[str] = []
    pieces = script.split(";")
    buf = ""
    for piece in pieces[:-1]:
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if not _blank(buf[:-1]):
                out.append(buf.strip())
            buf = ""
    buf += pieces[-1]
    if not _blank(buf):
        out.append(buf.strip())
    return out


def _blank(text: str) -> bool:
    """Only whitespace and ``--`` comments."""
    lines = [line.strip() for line in text.splitlines()]
    return all(not line or line.startswith("--") for line in lines)


# --- records and changes ---------------------------------------------------------------------


# A record's values are its row's ``vals``: the change row's JSON snapshot (migration 0008).
_RECORD_COLUMNS = ("(key, handle, prefix_key, version, seq, updated_at, vals) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)")
_INSERT_RECORD = "INSERT INTO records " + _RECORD_COLUMNS
_UPSERT_RECORD = "INSERT OR REPLACE INTO records " + _RECORD_COLUMNS
# Every write that adds or removes a record moves the count in its transaction (0009).
_COUNT_RECORDS = "UPDATE record_count SET n = n + ?"
_RECORD_READ = "handle, version, seq, updated_at, vals"


def _records_among(conn: sqlite3.Connection, columns: str,
                   keys: Sequence[str]) -> Iterator[Any]:
    """``columns`` of the records whose key is among ``keys``: one statement per
    :data:`_IN_CHUNK` keys."""
    for i in range(0, len(keys), _IN_CHUNK):
        chunk = keys[i:i + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(
            f"SELECT {columns} FROM records WHERE key IN ({marks})", chunk)  # noqa: S608


def _record(row: Sequence[Any]) -> Record:
    """A record from the columns of :data:`_RECORD_READ`."""
    return Record(Handle.parse(row[0]), values_from_json(row[4]), row[1], row[2], row[3])

_INSERT_CHANGE = ("INSERT INTO changes (seq, op, key, handle, version, values_json, principal, "
                  "request_id, at, client_address, door) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# audit.COLUMNS, in order
_INSERT_AUDIT = ("INSERT INTO audit (at, principal, principal_key, action, target, prefix_key, "
                 "request_id, outcome, client_address, door, message, seq) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


# --- applications ------------------------------------------------------------------------------

def _load_application(conn: sqlite3.Connection, application_id: str) -> Application | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM applications "  # noqa: S608
                       "WHERE id = ?", (application_id,)).fetchone()
    return application_from_row(row) if row is not None else None


def _decide(conn: sqlite3.Connection, application_id: str, state: ApplicationState,
            reviewer: str, reason: str, now: int) -> Application:
    current = check_pending(_load_application(conn, application_id), application_id)
    conn.execute("UPDATE applications SET state = ?, reviewer = ?, reason = ?, decided_at = ? "
                 "WHERE id = ? AND state = 'pending'",
                 (state.value, reviewer, reason, now, application_id))
    return current.decided(state, reviewer, reason, now)


def _create_private(path: str) -> None:
    """Create an empty database file with mode 0600 unless it exists. SQLite then
    creates the -wal and -shm files with the database's mode."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:  # no path in the message: it reaches callers
        raise Unavailable(f"{_UNAVAILABLE}the database file cannot be created "
                          f"({exc.strerror})") from None
    os.close(fd)


@_errors_mapped
class SQLiteUnitOfWork:
    """See :class:`registry.store.UnitOfWork`. Only :meth:`SQLiteStore.unit_of_work`
    makes one, inside its transaction."""

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn
        self.writes = 0
        self.now = 0

    def apply(self, write: Write, now: int) -> WriteResult:
        result = self._store._apply(self._conn, write, now)
        self.writes += 1
        self.now = max(self.now, now)
        return result

    def add_principal(self, principal: StoredPrincipal) -> None:
        SQLiteStore._insert_principal(self._conn, principal)

    def add_prefix(self, prefix: Prefix, owner_id: str, now: int) -> None:
        try:
            self._conn.execute(
                "INSERT INTO prefixes (key, prefix, owner, created_at) VALUES (?, ?, ?, ?)",
                (prefix.key, prefix.text, owner_id, now))
        except sqlite3.IntegrityError as exc:
            if _is_duplicate(exc):
                raise AlreadyExists(f"prefix {prefix.text} is already allocated") from None
            raise

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        return _decide(self._conn, application_id, state, reviewer, reason, now)

    def set_meta(self, name: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                           (check_meta_name(name), value))


@_errors_mapped
class SQLiteStore:
    """See :class:`registry.store.Store`.

    ``busy_timeout_ms`` is how long a write waits for another process's write lock
    before it fails with Unavailable. ``read_only`` opens the file read-only (it must
    exist and be migrated already): reads work, every write raises Unavailable.
    ``auto_migrate=False`` opens the file without applying pending migrations (``idnode
    db status``; a node with ``database_auto_migrate = false`` then refuses to start while
    :meth:`pending_migrations` is not empty): :meth:`migrate` applies them.
    """

    BACKEND = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 10000, read_only: bool = False,
                 auto_migrate: bool = True) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise InvalidArgument(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, "
                                  f"got {synchronous!r}")
        self._path = str(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._read_only = read_only
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._unit_owner: int | None = None
        self._committed = threading.Condition()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._writes = 0
        try:
            if not read_only:
                _create_private(self._path)
            self._writer = self._connect()
            self._refuse_newer()
            if auto_migrate:
                self._migrate()
            self._id = self._load_id()
        except BaseException:
            self.close()
            raise

    # --- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            uri = "file:" + urllib.parse.quote(os.path.abspath(self._path)) + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                   check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
        else:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
        with self._all_lock:
            self._all.append(conn)
        if not self._read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise Unavailable(_UNAVAILABLE + _CLOSED)
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._unit_owner == threading.get_ident():
            raise RuntimeError("units of work are not re-entrant")
        with self._write_lock:
            if self._closed:
                raise Unavailable(_UNAVAILABLE + _CLOSED)
            self._unit_owner = threading.get_ident()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (after a full disk, an I/O
                    # error): then there is nothing to undo, and the first error counts.
                    if conn.in_transaction:
                        with suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            finally:
                self._unit_owner = None
        with self._committed:
            self._committed.notify_all()

    def _load_id(self) -> str:
        """The store id ('' while the migration that creates it is pending)."""
        if not self._has_table(self._writer, "meta"):
            return ""
        row = self._writer.execute("SELECT value FROM meta WHERE name = 'store_id'").fetchone()
        return str(row[0]) if row is not None else ""

    @staticmethod
    def _has_table(conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (name,)).fetchone() is not None

    def _refuse_newer(self) -> None:
        """A schema a newer build migrated (an operator rolled the binary back) is refused
        before anything is read or written, naming both versions, as on PostgreSQL."""
        if not self._has_table(self._writer, "schema_version"):
            return
        row = self._writer.execute("SELECT max(version) FROM schema_version").fetchone()
        newest, known = int(row[0] or 0), max(v for v, _ in _migrations())
        if newest > known:
            raise Unavailable(
                f"{_UNAVAILABLE}the database schema is version {newest}, newer than this "
                f"build knows (up to version {known}); run a newer idnode")

    def _migrate(self) -> list[int]:
        """Apply the migrations this database has not had, in one transaction; the
        versions applied, in order.

        ``schema_version`` holds one row per applied migration (``max(version)`` is the
        schema's version). A database that is up to date is only read, so a read-only
        file opens; one that needs migrating takes the write lock and checks again, so
        processes opening the same file at once migrate it once.
        """
        pending = self._pending(self._writer)
        if not pending:
            return []
        if self._read_only:
            raise Unavailable(_UNAVAILABLE + "the database is read-only and its schema is "
                              "older than this build")
        applied: list[int] = []
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for version, sql in self._pending(conn):
                for statement in split_statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                applied.append(version)
        return applied

    @staticmethod
    def _pending(conn: sqlite3.Connection) -> list[tuple[int, str]]:
        """Every shipped migration without its row in ``schema_version``, in order: a
        number left free by another branch and shipped later (0004 after 0005) is applied
        when it arrives instead of being skipped as "older than the schema"."""
        applied: set[int] = set()
        if SQLiteStore._has_table(conn, "schema_version"):
            applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_version")}
        return [(v, sql) for v, sql in _migrations() if v not in applied]

    def schema_version(self) -> int:
        """The highest migration recorded (0 for a database never migrated)."""
        conn = self._reader()
        if not self._has_table(conn, "schema_version"):
            return 0
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def shipped_migrations(self) -> list[int]:
        """The migration versions this build ships, in order."""
        return [v for v, _ in _migrations()]

    def pending_migrations(self) -> list[int]:
        """The shipped migrations this database has not had, in order."""
        return [v for v, _ in self._pending(self._reader())]

    def migrate(self) -> list[int]:
        """Apply the pending migrations (one transaction); the versions applied."""
        applied = self._migrate()
        self._id = self._load_id()
        return applied

    def store_id(self) -> str:
        if self._closed:
            raise Unavailable(_UNAVAILABLE + _CLOSED)
        return self._id

    def meta(self, name: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE name = ?",
                                     (name,)).fetchone()
        return str(row[0]) if row is not None else None

    # --- units of work -----------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[SQLiteUnitOfWork]:
        with _errors_translated():
            with self._tx() as conn:
                unit = SQLiteUnitOfWork(self, conn)
                yield unit
            if unit.writes:
                self._after_writes(unit.writes, unit.now)

    # --- records -----------------------------------------------------------------------

    @staticmethod
    def _load(conn: sqlite3.Connection, key: str) -> Record | None:
        row = conn.execute(f"SELECT {_RECORD_READ} FROM records WHERE key = ?",  # noqa: S608
                           (key,)).fetchone()
        return _record(row) if row is not None else None

    def get(self, key: str) -> Record | None:
        return self._load(self._reader(), key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        return {row[0]: _record(row[1:])
                for row in _records_among(self._reader(), f"key, {_RECORD_READ}", keys)}

    def apply(self, write: Write, now: int) -> WriteResult:
        with self._tx() as conn:
            result = self._apply(conn, write, now)
        self._after_writes(1, now)
        return result

    def apply_many(self, writes: Sequence[Write], now: int) -> list[WriteResult | IdnodeError]:
        out: list[WriteResult | IdnodeError] = []
        with self._tx() as conn:
            if all(w.operation is Operation.REGISTER and w.precondition.absent
                   and w.request is None and w.values is not None for w in writes):
                out = self._register_many(conn, writes, now)
            else:
                applied: list[tuple[Write, str, int]] = []
                for write in writes:
                    try:
                        result = self._apply(conn, write, now, audit_row=False)
                    except IdnodeError as exc:
                        out.append(exc)
                        continue
                    out.append(result)
                    if not result.replayed:
                        applied.append((write, result.handle, result.sequence))
                conn.executemany(_INSERT_AUDIT, audit.bulk_rows(applied, now))
        self._after_writes(len(writes), now)
        return out

    @staticmethod
    def _register_many(conn: sqlite3.Connection, writes: Sequence[Write],
                       now: int) -> list[WriteResult | IdnodeError]:
        """The import path: new identifiers only, so set-based statements replace the
        per-row round trips (one existence query per chunk, sequences assigned here under
        the write lock, three executemany calls). Same rows as :meth:`_apply` writes; the
        record row carries the change row's values snapshot (one encoding for both)."""
        existing = {row[0] for row in _records_among(conn, "key",
                                                    [w.handle.key for w in writes])}
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        seq = int(row[0]) if row else 0
        out: list[WriteResult | IdnodeError] = []
        changes: list[tuple[object, ...]] = []
        records: list[tuple[object, ...]] = []
        applied: list[tuple[Write, str, int]] = []
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
            snapshot = values_to_json(values)
            changes.append((seq, Operation.REGISTER.value, key, display, 1, snapshot,
                            write.principal, "", now, ctx.peer, ctx.door))
            records.append((key, display, write.handle.prefix_key, 1, seq, now, snapshot))
            applied.append((write, display, seq))
            out.append(WriteResult(display, 1, etag_of(seq), seq, key=key))
        conn.executemany(_INSERT_CHANGE, changes)
        conn.executemany(_INSERT_RECORD, records)
        conn.execute(_COUNT_RECORDS, (len(records),))
        conn.executemany(_INSERT_AUDIT, audit.bulk_rows(applied, now))
        return out

    def _apply(self, conn: sqlite3.Connection, write: Write, now: int, *,
               audit_row: bool = True) -> WriteResult:
        """One write; ``audit_row=False``: its audit row is the caller's (apply_many)."""
        key = write.handle.key
        if write.request is not None:
            row = conn.execute(
                "SELECT fingerprint, handle, version, seq FROM requests "
                "WHERE scope = ? AND request_id = ?",
                (write.request.scope, write.request.request_id)).fetchone()
            if row is not None:
                return replay_or_conflict(
                    write, row[0], WriteResult(row[1], row[2], etag_of(row[3]), row[3]))
        # A registration (the bulk case) only needs to know the key is free.
        if write.precondition.absent and conn.execute(
                "SELECT 1 FROM records WHERE key = ?", (key,)).fetchone() is None:
            current = None
        else:
            current = self._load(conn, key)
        check_precondition(current, write)
        display = str(current.handle) if current is not None else str(write.handle)
        version = current.version + 1 if current is not None else 1
        values = write.values if write.values is not None else ()
        snapshot = values_to_json(values)
        row = audit.accepted_row(write, display, 0, now)
        cur = conn.execute(_INSERT_CHANGE, (
            None, write.operation.value, key, display,
            version if write.values is not None else 0, snapshot,
            write.principal, row[6], now, row[8], row[9]))
        seq = int(cur.lastrowid or 0)
        if audit_row:
            conn.execute(_INSERT_AUDIT, (*row[:-1], seq))
        if (current is None) != (write.values is None):  # a record appears or goes
            conn.execute(_COUNT_RECORDS, (1 if current is None else -1,))
        if write.values is None:
            conn.execute("DELETE FROM records WHERE key = ?", (key,))
            result = WriteResult(display, 0, "", seq, key=key)
        else:
            conn.execute(_UPSERT_RECORD,
                         (key, display, write.handle.prefix_key, version, seq, now, snapshot))
            result = WriteResult(display, version, etag_of(seq), seq, key=key)
        if write.request is not None:
            conn.execute(
                "INSERT INTO requests (scope, request_id, fingerprint, handle, version, seq, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (write.request.scope, write.request.request_id, write.request.fingerprint,
                 result.handle, result.version, seq, now))
        return result

    def _after_writes(self, n: int, now: int) -> None:
        self._writes += n
        if self._writes >= _PURGE_EVERY_WRITES:
            self._writes = 0
            with self._tx() as conn:
                conn.execute("DELETE FROM requests WHERE created_at < ?",
                             (now - REQUEST_RETENTION_SECONDS,))

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        # Keys of prefix P are exactly those in ["P/", "P0"): '0' follows '/' in ASCII,
        # and a sub-prefix's keys start with "P." instead.
        rows = self._reader().execute(
            "SELECT key, handle FROM records WHERE key > ? AND key < ? ORDER BY key LIMIT ?",
            (after_key or prefix_key + "/", prefix_key + "0", limit)).fetchall()
        return [(r[0], r[1]) for r in rows]

    # --- whole-store dumps (registry/stores/dump_rows.py) -------------------------------

    def iter_records(self, after_key: str, limit: int) -> list[Record]:
        """At most ``limit`` records with a key above ``after_key``, in key order."""
        return [_record(r) for r in self._reader().execute(
            f"SELECT {_RECORD_READ} FROM records WHERE key > ? "  # noqa: S608
            "ORDER BY key LIMIT ?", (after_key, limit))]

    def dump_rows(self, table: str, after: str | int, limit: int) -> list[tuple[object, ...]]:
        """A page of ``table``'s rows (dump_rows.TABLES) after ``after``, as stored."""
        t = dump_rows.table(table)
        return [tuple(r) for r in self._reader().execute(dump_rows.page_sql(t, "?"),
                                                         (after, limit))]

    def restore_rows(self, table: str, rows: Sequence[Sequence[object]]) -> None:
        """Write rows as :meth:`dump_rows` read them, in one transaction."""
        t = dump_rows.table(table)
        with self._tx() as conn:
            conn.executemany(dump_rows.insert_sql(t, "?"), dump_rows.insert_rows(t, rows))

    def counts(self) -> Counts:
        conn = self._reader()
        prefixes = conn.execute("SELECT count(*) FROM prefixes").fetchone()[0]
        identifiers = conn.execute("SELECT n FROM record_count").fetchone()[0]
        return Counts(int(prefixes), int(identifiers))

    # --- change log --------------------------------------------------------------------

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        rows = self._reader().execute(
            "SELECT seq, op, handle, key, version, values_json, at, principal, request_id, "
            "client_address, door FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (sequence, limit)).fetchall()
        return [Change(r[0], Operation(r[1]), r[2], r[3], r[4], values_from_json(r[5]), r[6],
                       r[7], r[8], r[9], r[10]) for r in rows]

    def last_sequence(self) -> int:
        row = self._reader().execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def wait_for_changes(self, after_sequence: int, timeout_seconds: float) -> bool:
        """Commits through this object wake the waiter at once; commits by other
        processes are noticed by polling every 20 ms. Bounded by ``timeout_seconds``."""
        deadline = time.monotonic() + max(timeout_seconds, 0.0)
        while True:
            with self._committed:
                if self.last_sequence() > after_sequence:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._committed.wait(min(_POLL_SECONDS, remaining))

    # --- audit log ---------------------------------------------------------------------

    def record_refusal(self, *entries: AuditEntry) -> None:
        if not entries:
            return
        with self._tx() as conn:
            conn.executemany(_INSERT_AUDIT, [e.row() for e in entries])

    def audit_entries(self, query: AuditQuery) -> AuditPage:
        where, params = audit.sql_filter(query, "?")
        rows = self._reader().execute(
            f"SELECT id, {audit.COLUMNS} FROM audit WHERE {where} "  # noqa: S608
            "ORDER BY id DESC LIMIT ?", [*params, query.limit + 1]).fetchall()
        return audit.page_of([AuditEntry.from_row(r) for r in rows], query.limit)

    # --- principals and prefixes --------------------------------------------------------

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        row = self._reader().execute(
            "SELECT display, role, prefix_key, secret_hash, created_at FROM principals "
            "WHERE id = ?", (identity_key,)).fetchone()
        if row is None:
            return None
        return StoredPrincipal(Principal.of(row[0]), row[3], row[4])

    @staticmethod
    def _insert_principal(conn: sqlite3.Connection, p: StoredPrincipal) -> None:
        try:
            conn.execute(
                "INSERT INTO principals (id, display, role, prefix_key, secret_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (identity_key(p.principal.id), p.principal.id, "principal", "",
                 p.secret_hash, p.created_at))
        except sqlite3.IntegrityError as exc:
            if _is_duplicate(exc):
                raise AlreadyExists(f"principal {p.principal.id} already exists") from None
            raise

    def add_principal(self, principal: StoredPrincipal) -> None:
        with self._tx() as conn:
            self._insert_principal(conn, principal)

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, token: StoredToken) -> None:
        with self._tx() as conn:
            try:
                conn.execute(token_rows.SQLITE["insert"],
                             token_rows.to_row(token))
            except sqlite3.IntegrityError as exc:
                if _is_duplicate(exc):
                    raise AlreadyExists(f"token {token.token_id} already exists") from None
                raise

    def get_token(self, token_id: str) -> StoredToken | None:
        row = self._reader().execute(token_rows.SQLITE["by_id"],
                                     (token_id,)).fetchone()
        return token_rows.from_row(row) if row is not None else None

    def list_tokens(self, principal_key: str) -> list[StoredToken]:
        rows = self._reader().execute(
            token_rows.SQLITE["by_principal"], (principal_key,)).fetchall()
        return [token_rows.from_row(r) for r in rows]

    def revoke_token(self, token_id: str, now: int) -> StoredToken | None:
        with self._tx() as conn:
            conn.execute(token_rows.SQLITE["revoke"],
                         (now, token_id))
            row = conn.execute(token_rows.SQLITE["by_id"],
                               (token_id,)).fetchone()
        return token_rows.from_row(row) if row is not None else None

    def has_prefix(self, prefix_key: str) -> bool:
        row = self._reader().execute("SELECT 1 FROM prefixes WHERE key = ?",
                                     (prefix_key,)).fetchone()
        return row is not None

    # --- applications ------------------------------------------------------------------

    def add_application(self, application: Application) -> Application:
        a = application
        with self._tx() as conn:
            if a.request_id:
                row = conn.execute(
                    f"SELECT {COLUMNS} FROM applications "  # noqa: S608
                    "WHERE request_id = ?", (a.request_id,)).fetchone()
                if row is not None:
                    return replay_application(a, application_from_row(row))
            if conn.execute("SELECT 1 FROM prefixes WHERE key = ?",
                            (a.prefix.key,)).fetchone() is not None:
                raise application_conflict(a.prefix, allocated=True)
            if conn.execute("SELECT 1 FROM applications WHERE prefix_key = ? AND "
                            "state = 'pending'", (a.prefix.key,)).fetchone() is not None:
                raise application_conflict(a.prefix, allocated=False)
            fields = application_row(a)
            try:
                cur = conn.execute(
                    f"INSERT INTO applications ({INSERT_COLUMNS}) VALUES "  # noqa: S608
                    f"({', '.join('?' * len(fields))})", fields)
            except sqlite3.IntegrityError as exc:
                if _is_duplicate(exc):
                    raise AlreadyExists(f"application {a.id} already exists") from None
                raise
            return replace(a, sequence=int(cur.lastrowid or 0))

    def get_application(self, application_id: str) -> Application | None:
        return _load_application(self._reader(), application_id)

    def list_applications(self, state: ApplicationState | None, before: int,
                          limit: int) -> list[Application]:
        where = ["seq < ?"]
        params: list[object] = [before if before > 0 else 2**63 - 1]
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        rows = self._reader().execute(
            f"SELECT {COLUMNS} FROM applications "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
            (*params, max(limit, 0))).fetchall()
        return [application_from_row(r) for r in rows]

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        with self._tx() as conn:
            return _decide(conn, application_id, state, reviewer, reason, now)

    # --- templates -------------------------------------------------------------------

    def get_template(self, prefix_key: str, version: str) -> Template | None:
        row = self._reader().execute(template_rows.SQLITE["get"],
                                     (prefix_key, version)).fetchone()
        return template_rows.from_row(row) if row is not None else None

    def list_templates(self, prefix_key: str) -> list[Template]:
        rows = self._reader().execute(template_rows.SQLITE["list"], (prefix_key,)).fetchall()
        return [template_rows.from_row(r) for r in rows]

    def change_templates(self, prefix_key: str, change: TemplateChange) -> Template:
        with self._tx() as conn:
            existing = [template_rows.from_row(r) for r in conn.execute(
                template_rows.SQLITE["list"], (prefix_key,)).fetchall()]
            template = template_changed(prefix_key, change, existing)
            conn.execute(template_rows.SQLITE["put"], template_rows.to_row(template))
        return template

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        with self._committed:
            self._committed.notify_all()
