"""The embedded store: one SQLite file in WAL mode, one row per value.

Writes go through one connection under a lock (SQLite has one writer anyway; BEGIN
IMMEDIATE plus a busy timeout serialises writers across worker processes). Reads use a
connection per thread, so they never wait for a writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path

from registry.access.principals import Principal, Role, StoredPrincipal
from registry.errors import AlreadyExists, IdnodeError
from registry.identifier import Handle, Prefix
from registry.record import (
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
    check_precondition,
    replay_or_conflict,
)
from registry.values import AdminRef, Permissions, Value

_KIND_TEXT, _KIND_BINARY, _KIND_ADMIN = 0, 1, 2
_PURGE_EVERY_WRITES = 1000
_IN_CHUNK = 500  # below SQLite's default limit of bound parameters per statement


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("registry") / "migrations" / "sqlite"
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            out.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def _encode(v: Value) -> tuple[int, bytes]:
    if isinstance(v.data, str):
        return _KIND_TEXT, v.data.encode("utf-8")
    if isinstance(v.data, bytes):
        return _KIND_BINARY, v.data
    a = v.data
    return _KIND_ADMIN, f"{a.index}:{a.permissions}:{a.handle}".encode()


_INSERT_VALUE = ("INSERT INTO record_values (key, idx, type, kind, data, ttl, ts, perms) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _value_row(key: str, v: Value) -> tuple[object, ...]:
    """One record_values row; both write paths insert exactly these columns."""
    return (key, v.index, v.type, *_encode(v), v.ttl, v.timestamp, v.permissions.to_bits())


def _decode(kind: int, data: bytes) -> str | bytes | AdminRef:
    if kind == _KIND_TEXT:
        return bytes(data).decode("utf-8")
    if kind == _KIND_BINARY:
        return bytes(data)
    index, perms, handle = bytes(data).decode("utf-8").split(":", 2)
    return AdminRef(handle, int(index), perms)


class SQLiteStore:
    """See :class:`registry.store.Store`."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 10000) -> None:
        self._path = str(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._writes = 0
        self._writer = self._connect()
        self._migrate()

    # --- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                               timeout=self._busy_timeout_ms / 1000)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, sql in _migrations():
                if version > current:
                    for statement in sql.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        row = self._reader().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    # --- records -----------------------------------------------------------------------

    @staticmethod
    def _load(conn: sqlite3.Connection, key: str) -> Record | None:
        row = conn.execute("SELECT handle, version, seq, updated_at FROM records WHERE key = ?",
                           (key,)).fetchone()
        if row is None:
            return None
        values = tuple(
            Value(idx, typ, _decode(kind, data), ttl, ts, Permissions.from_bits(perms))
            for idx, typ, kind, data, ttl, ts, perms in conn.execute(
                "SELECT idx, type, kind, data, ttl, ts, perms FROM record_values "
                "WHERE key = ? ORDER BY idx", (key,)))
        return Record(Handle.parse(row[0]), values, row[1], row[2], row[3])

    def get(self, key: str) -> Record | None:
        return self._load(self._reader(), key)

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
                for write in writes:
                    try:
                        out.append(self._apply(conn, write, now))
                    except IdnodeError as exc:
                        out.append(exc)
        self._after_writes(len(writes), now)
        return out

    @staticmethod
    def _register_many(conn: sqlite3.Connection, writes: Sequence[Write],
                       now: int) -> list[WriteResult | IdnodeError]:
        """The import path: new identifiers only, so set-based statements replace the
        per-row round trips (one existence query per chunk, sequences assigned here under
        the write lock, three executemany calls). Same rows as :meth:`_apply` writes."""
        existing: set[str] = set()
        keys = [w.handle.key for w in writes]
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i:i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            existing.update(row[0] for row in conn.execute(
                f"SELECT key FROM records WHERE key IN ({marks})", chunk))  # noqa: S608
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        seq = int(row[0]) if row else 0
        out: list[WriteResult | IdnodeError] = []
        changes: list[tuple[object, ...]] = []
        records: list[tuple[object, ...]] = []
        rows: list[tuple[object, ...]] = []
        for write in writes:
            key = write.handle.key
            if key in existing:
                out.append(AlreadyExists(f"identifier {write.handle} already exists"))
                continue
            existing.add(key)
            seq += 1
            display = str(write.handle)
            values = write.values or ()
            changes.append((seq, Operation.REGISTER.value, key, display, 1,
                            values_to_json(values), write.principal, "", now))
            records.append((key, display, write.handle.prefix_key, 1, seq, now))
            rows.extend(_value_row(key, v) for v in values)
            out.append(WriteResult(display, 1, etag_of(seq), seq, key=key))
        conn.executemany(
            "INSERT INTO changes (seq, op, key, handle, version, values_json, principal, "
            "request_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", changes)
        conn.executemany(
            "INSERT INTO records (key, handle, prefix_key, version, seq, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", records)
        conn.executemany(_INSERT_VALUE, rows)
        return out

    def _apply(self, conn: sqlite3.Connection, write: Write, now: int) -> WriteResult:
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
        cur = conn.execute(
            "INSERT INTO changes (op, key, handle, version, values_json, principal, request_id, "
            "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (write.operation.value, key, display, version if write.values is not None else 0,
             values_to_json(values), write.principal,
             write.request.request_id if write.request else "", now))
        seq = int(cur.lastrowid or 0)
        if current is not None:
            conn.execute("DELETE FROM record_values WHERE key = ?", (key,))
        if write.values is None:
            conn.execute("DELETE FROM records WHERE key = ?", (key,))
            result = WriteResult(display, 0, "", seq, key=key)
        else:
            conn.execute(
                "INSERT OR REPLACE INTO records (key, handle, prefix_key, version, seq, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, display, write.handle.prefix_key, version, seq, now))
            conn.executemany(_INSERT_VALUE, [_value_row(key, v) for v in values])
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

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        rows = self._reader().execute(
            "SELECT seq, op, handle, key, version, values_json, at, principal, request_id "
            "FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (sequence, limit)).fetchall()
        return [Change(r[0], Operation(r[1]), r[2], r[3], r[4], values_from_json(r[5]), r[6],
                       r[7], r[8]) for r in rows]

    def last_sequence(self) -> int:
        row = self._reader().execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def counts(self) -> Counts:
        conn = self._reader()
        prefixes = conn.execute("SELECT count(*) FROM prefixes").fetchone()[0]
        identifiers = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        return Counts(int(prefixes), int(identifiers))

    # --- principals and prefixes --------------------------------------------------------

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        row = self._reader().execute(
            "SELECT display, role, prefix_key, secret_hash, created_at FROM principals "
            "WHERE id = ?", (identity_key,)).fetchone()
        if row is None:
            return None
        return StoredPrincipal(Principal(row[0], Role(row[1]), row[2]), row[3], row[4])

    @staticmethod
    def _insert_principal(conn: sqlite3.Connection, key: str, p: StoredPrincipal) -> None:
        try:
            conn.execute(
                "INSERT INTO principals (id, display, role, prefix_key, secret_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, p.principal.id, p.principal.role.value, p.principal.prefix_key,
                 p.secret_hash, p.created_at))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"principal {p.principal.id} already exists") from None

    def add_principal(self, principal: StoredPrincipal) -> None:
        from registry.access.principals import identity_key

        with self._tx() as conn:
            self._insert_principal(conn, identity_key(principal.principal.id), principal)

    def allocate_prefix(self, prefix: Prefix, owner: StoredPrincipal, admin_record: Write,
                        now: int) -> WriteResult:
        from registry.access.principals import identity_key

        with self._tx() as conn:
            try:
                conn.execute(
                    "INSERT INTO prefixes (key, prefix, owner, created_at) VALUES (?, ?, ?, ?)",
                    (prefix.key, prefix.text, owner.principal.id, now))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"prefix {prefix.text} is already allocated") from None
            self._insert_principal(conn, identity_key(owner.principal.id), owner)
            return self._apply(conn, admin_record, now)

    def has_prefix(self, prefix_key: str) -> bool:
        row = self._reader().execute("SELECT 1 FROM prefixes WHERE key = ?",
                                     (prefix_key,)).fetchone()
        return row is not None

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.ProgrammingError):
                conn.close()
