"""Store backends: in-memory (tests, ephemeral nodes), SQLite (the embedded default) and
PostgreSQL (shared by several nodes), chosen by URL with :func:`open_store`."""

from __future__ import annotations

from pathlib import Path

from registry.errors import InvalidArgument, Unavailable
from registry.store import ReplicaReader, Store
from registry.stores.memory import MemoryStore
from registry.stores.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "open_replica", "open_store"]

_SUPPORTED = ("use sqlite:///ABSOLUTE/PATH, sqlite:RELATIVE/PATH, "
              "postgresql://USER:PASSWORD@HOST:PORT/DATABASE or memory:")


def open_store(url: str, *, sqlite_synchronous: str = "FULL",
               sqlite_busy_timeout_ms: int = 10_000,
               postgres_max_connections: int = 16, auto_migrate: bool = True) -> Store:
    """The store a database URL names, opened (and migrated).

    - ``memory:`` — a fresh :class:`MemoryStore` (nothing survives the process);
    - ``sqlite:///abs/path`` (absolute) or ``sqlite:relative/path`` (relative to the
      working directory) — a :class:`SQLiteStore`; a missing parent directory is created
      (0700);
    - ``postgresql://…`` or ``postgres://…`` (a libpq URL) — a
      :class:`~registry.stores.postgres.PostgresStore` (psycopg is imported only then, so
      the embedded backends do not load it), with a pool of at most
      ``postgres_max_connections``; ``postgresql+driver://`` is refused;
    - anything else — InvalidArgument naming the scheme (never the whole URL, which may
      carry a password).

    A store that cannot be opened raises Unavailable (see the backend for why).
    ``auto_migrate=False`` leaves pending migrations to the store's ``migrate`` (the
    caller checks ``pending_migrations``); a schema newer than this build is refused.
    """
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise InvalidArgument(f"store URL has no scheme; {_SUPPORTED}")
    if scheme == "memory":
        if rest:
            raise InvalidArgument(f"the memory store takes no path; {_SUPPORTED}")
        return MemoryStore()
    if scheme == "sqlite":
        return _open_sqlite(rest, sqlite_synchronous, sqlite_busy_timeout_ms, auto_migrate)
    if scheme in ("postgres", "postgresql"):
        if not rest.startswith("//"):
            raise InvalidArgument(f"a PostgreSQL URL starts with {scheme}://; {_SUPPORTED}")
        from registry.stores.postgres import PostgresStore
        return PostgresStore(url, max_connections=postgres_max_connections,
                             auto_migrate=auto_migrate)
    raise InvalidArgument(f"store URL scheme {scheme!r} is not supported; {_SUPPORTED}")


def open_replica(url: str, *, max_connections: int = 16,
                 statement_timeout_ms: int = 1_000) -> ReplicaReader:
    """A read-only copy of a PostgreSQL store (a streaming standby) that ``url`` names:
    :class:`~registry.stores.postgres.PostgresReplica`. Opening does not connect (a copy
    that is down now may be up later); only ``postgresql://`` and ``postgres://`` URLs
    name one, anything else is InvalidArgument naming the scheme."""
    scheme = url.partition(":")[0].lower()
    if scheme not in ("postgres", "postgresql") or not url.partition(":")[2].startswith("//"):
        raise InvalidArgument(f"a read replica URL is postgresql://…, not {scheme!r}")
    from registry.stores.postgres import PostgresReplica
    return PostgresReplica(url, max_connections=max_connections,
                           statement_timeout_ms=statement_timeout_ms)


def _open_sqlite(rest: str, synchronous: str, busy_timeout_ms: int,
                 auto_migrate: bool) -> SQLiteStore:
    if rest.startswith("//"):
        # sqlite:///abs/path: an empty authority, then the absolute path.
        authority, _, path = rest[2:].partition("/")
        if authority:
            raise InvalidArgument("a sqlite URL names a file, not a host: write "
                                  "sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH")
        path = "/" + path
    else:
        path = rest  # sqlite:relative/path (or sqlite:/abs/path)
    if not path.strip("/") or "?" in path or "#" in path:
        raise InvalidArgument(f"a sqlite URL needs a file path (no query); {_SUPPORTED}")
    target = Path(path)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:  # no path in the message: it reaches callers
        raise Unavailable("the store is unavailable: its directory cannot be created "
                          f"({exc.strerror})") from None
    return SQLiteStore(target, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                       auto_migrate=auto_migrate)
