"""The storage interface every backend implements (see tests/contract/test_store_contract.py).

Backends are deliberately dumb: they apply one write atomically (precondition check,
values, version bump, change-log row, idempotency row) and answer lookups. Rules about
who may write what, and how values merge, live in :mod:`registry.registrar`.

The interface is split by concern so that a second backend (PostgreSQL) can be built and
reviewed one concern at a time, and so that a caller can ask for only what it uses (the
change follower needs :class:`ChangeLog`, not the principals):

- :class:`RecordStore` — identifiers and their values;
- :class:`ChangeLog` — the ordered log mirrors and the top-level node follow;
- :class:`AccessStore` — principals and allocated prefixes;
- :class:`ApplicationStore` — enterprises' applications for prefixes and their review;
- :class:`AuditLog` — who wrote what from where, and every refused attempt;
- :class:`TemplateStore` — metadata templates, per prefix and version;
- :class:`Store` — all of the above, plus the store's identity, units of work and
  ``close``. Existing callers keep typing against ``Store``.

Errors: a backend raises only :mod:`registry.errors` (and :class:`StoreDefect` for its own
bugs). Driver exceptions never cross this interface: a store that cannot answer because
its database is busy, full, read-only, damaged or closed raises
:class:`~registry.errors.Unavailable` with a message in plain words (no SQL, no file
path), and a duplicate key is :class:`~registry.errors.AlreadyExists`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from registry.access.principals import StoredPrincipal
from registry.access.tokens import StoredToken
from registry.applications import Application, ApplicationState
from registry.audit import AuditEntry, AuditPage, AuditQuery
from registry.errors import (
    AlreadyExists,
    IdnodeError,
    InvalidArgument,
    NotFound,
    StaleEtag,
)
from registry.identifier import Prefix
from registry.record import Change, Record, Write, WriteResult
from registry.templates import Template

# Idempotency keys are kept at least this long (the contract says 24 h).
REQUEST_RETENTION_SECONDS = 48 * 3600


@dataclass(frozen=True, slots=True)
class Counts:
    prefixes: int
    identifiers: int


class StoreDefect(RuntimeError):
    """The database refused an operation the store should never have sent (a bug in the
    store, e.g. a constraint other than a duplicate key). Not an :class:`IdnodeError`: the
    transports report it as an internal error, without details, and log it."""


class RecordStore(Protocol):
    """Identifiers and their values. Every method is safe to call from several threads."""

    def get(self, key: str) -> Record | None:
        """The record whose normalised key is ``key``."""
        ...

    def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """The records among ``keys`` that exist, by key: a few queries for many keys
        (a re-import compares every row it finds stored)."""
        ...

    def apply(self, write: Write, now: int) -> WriteResult:
        """Apply one write atomically together with its change-log row and its audit
        entry (one transaction).

        Raises AlreadyExists / NotFound / StaleEtag when the precondition fails, and
        InvalidArgument when ``write.request`` repeats a request id with other content.
        A repeat with the same content returns the first result with ``replayed=True``.
        """
        ...

    def apply_many(self, writes: Sequence[Write], now: int) -> list[WriteResult | IdnodeError]:
        """Apply independent writes in one transaction; a failed check fails that row only.
        The applied ones get compact audit entries (:func:`registry.audit.bulk_rows`)."""
        ...

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        """``(key, display handle)`` under ``prefix_key``, ordered by key, after ``after_key``."""
        ...

    def counts(self) -> Counts:
        """How many prefixes are allocated and identifiers registered."""
        ...


class ChangeLog(Protocol):
    """The ordered log of every accepted write, appended in the write's own transaction.

    Followers (mirrors, standbys, the top-level node, ``Sync.WatchChanges``) page through
    it with :meth:`changes_since` from the last sequence they processed and never look
    back, so the one rule every backend must honour is the **commit-order watermark**:

        ``changes_since`` may return a sequence only once every lower sequence that will
        ever commit is visible.

    Otherwise a follower that saw 8 and resumes "after 8" silently loses a 7 that was
    still in flight. Sequences are strictly increasing in commit order and never reused
    (an etag names one); gaps (sequences that will never commit) are allowed but a
    follower must never be shown a sequence before a lower one that does commit.

    - Memory: sequences are assigned and published under one lock — trivially true.
    - SQLite: one writer at a time (``BEGIN IMMEDIATE``), and the sequence is assigned
      inside that transaction, so commit order is sequence order — trivially true.
    - PostgreSQL (a later issue): a ``bigserial`` is *not* enough, because transactions
      take numbers in start order and commit in any order. Recommended approach: take
      the sequence from a single-row counter table (``UPDATE change_counter SET seq =
      seq + 1 RETURNING seq``) after the precondition checks, write the rows that carry
      it (``changes``, ``records.seq``) and commit at once. The row lock is held until
      commit, so the next writer gets its number only after this one is visible:
      sequence order is commit order. Only that short tail of each write transaction is
      serialised (reads and checks before it run in parallel), and a rollback also rolls
      the counter back. If the tail ever becomes the bottleneck, the alternative is
      ``bigserial`` plus a ``pg_current_xact_id()`` column, with ``changes_since``
      returning only rows below the lowest sequence still in flight (rows whose
      transaction precedes ``pg_snapshot_xmin(pg_current_snapshot())``), at the cost of
      follower latency while a long transaction is open.

    The contract test ``test_a_follower_sees_every_acknowledged_write_once_in_order``
    checks the rule with concurrent writers against every backend.
    """

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        """At most ``limit`` changes with a sequence above ``sequence``, in sequence order."""
        ...

    def last_sequence(self) -> int:
        """The highest committed sequence (0 for an empty log)."""
        ...

    def wait_for_changes(self, after_sequence: int, timeout_seconds: float) -> bool:
        """Block until a change above ``after_sequence`` is visible to :meth:`changes_since`
        (True) or ``timeout_seconds`` have passed (False); returns at once when one
        already is. Lets a follower wait without a busy loop; backends that cannot be
        notified poll briefly (SQLite: writes in other processes are only seen by polling).
        """
        ...


class KeyListing(Protocol):
    """Where listings read (:meth:`RecordStore.list_keys`): the store itself, or
    something the node puts in front of it (a replica that has replayed enough)."""

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        ...


class ReplicaReader(Protocol):
    """A read-only copy of a store (a PostgreSQL streaming standby) that says, with every
    answer, how far it has replayed the change log.

    The sequence comes from the same snapshot as the rows, so an answer with sequence
    ``s`` reflects every write up to ``s`` and none after it: the caller decides whether
    that is recent enough (read-your-writes) and reads the primary otherwise. Every
    method raises Unavailable when the copy cannot answer.
    """

    def store_id(self) -> str:
        """The id of the store this is a copy of (must be the primary's)."""
        ...

    def replayed_sequence(self) -> int:
        """The highest change-log sequence the copy has replayed."""
        ...

    def get_replayed(self, key: str) -> tuple[int, Record | None]:
        """The replayed sequence and :meth:`RecordStore.get`, in one snapshot."""
        ...

    def list_keys_replayed(self, prefix_key: str, after_key: str,
                           limit: int) -> tuple[int, list[tuple[str, str]]]:
        """The replayed sequence and :meth:`RecordStore.list_keys`, in one snapshot."""
        ...

    def reset(self) -> None:
        """Drop connections that may be broken (before probing a copy that failed)."""
        ...

    def close(self) -> None:
        ...


class AccessStore(Protocol):
    """Principals (hashed secrets) and the enterprise prefixes allocated to owners."""

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        """The principal whose normalised identity is ``identity_key``."""
        ...

    def add_principal(self, principal: StoredPrincipal) -> None:
        """Add a principal; AlreadyExists when its id is taken."""
        ...

    def has_prefix(self, prefix_key: str) -> bool:
        """Whether ``prefix_key`` is allocated."""
        ...


class TokenStore(Protocol):
    """Bearer tokens (their secrets' hashes, never the secrets)."""

    def add_token(self, token: StoredToken) -> None:
        """Store a new token; AlreadyExists when its id is taken."""
        ...

    def get_token(self, token_id: str) -> StoredToken | None:
        ...

    def list_tokens(self, principal_key: str) -> list[StoredToken]:
        """The tokens acting for ``principal_key``, oldest first, revoked ones included."""
        ...

    def revoke_token(self, token_id: str, now: int) -> StoredToken | None:
        """Mark the token revoked at ``now`` (kept if it already was); None if unknown."""
        ...


class ApplicationStore(Protocol):
    """Applications for prefixes (registry/applications.py): submitted by enterprises,
    decided once by a reviewer. Newest first is the order of :attr:`Application.sequence`,
    which the store assigns at :meth:`add_application` in commit order."""

    def add_application(self, application: Application) -> Application:
        """Store a new pending application and return it with its sequence; in order:

        - a ``request_id`` seen before returns that stored application (in whatever state
          it is now) when the fingerprints match, else InvalidArgument;
        - AlreadyExists when the prefix is allocated already, or has a pending
          application (one pending application per prefix);
        - AlreadyExists when the id is taken.
        """
        ...

    def get_application(self, application_id: str) -> Application | None:
        """The application with this id."""
        ...

    def list_applications(self, state: ApplicationState | None, before: int,
                          limit: int) -> list[Application]:
        """At most ``limit`` applications in ``state`` (None: every state), newest first,
        with a sequence below ``before`` (0: from the newest)."""
        ...

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        """Move a pending application to ``state`` (approved or rejected) and return it.
        NotFound when there is no such application; StaleEtag when it was decided already
        (a decision is taken once, so of two concurrent ones exactly one succeeds)."""
class AuditLog(Protocol):
    """The audit log (see :mod:`registry.audit`).

    Accepted writes need no call here: ``apply`` and :meth:`UnitOfWork.apply` insert one
    entry per applied write, and ``apply_many`` one compact entry per prefix and caller
    (:func:`registry.audit.bulk_rows`), in the writes' own transaction (none for a
    replayed request id), so an acknowledged write always has its entry and a failed or
    rolled-back one never has an accepted entry.
    """

    def record_refusal(self, *entries: AuditEntry) -> None:
        """Insert entries of refused attempts (``outcome`` not ``ok``) in one transaction
        of their own; their ``id`` is assigned here. Raises Unavailable like any write
        (the caller decides that a failed audit insert must not fail its request)."""
        ...

    def audit_entries(self, query: AuditQuery) -> AuditPage:
        """Entries matching ``query``, newest (highest id) first, at most ``query.limit``."""
        ...


TemplateChange = Callable[[tuple[Template, ...]], Template]


class TemplateStore(Protocol):
    """Metadata templates (registry/templates.py): one per prefix and version, kept
    whole. The rules (lifecycle, stable indexes) are the domain's; the store runs them
    under its write lock, so they are checked against what is committed."""

    def get_template(self, prefix_key: str, version: str) -> Template | None:
        """The template of ``prefix_key`` (a prefix key) at ``version`` (exact)."""
        ...

    def list_templates(self, prefix_key: str) -> list[Template]:
        """Every version of the prefix's templates, in creation order (``serial``)."""
        ...

    def change_templates(self, prefix_key: str, change: TemplateChange) -> Template:
        """Under the write lock: call ``change`` with every template of ``prefix_key``
        (creation order) and store the template it returns — a new version, or in place
        of the one with the same version — in one transaction; return it. What ``change``
        raises is raised, with nothing written. Changes of templates are not records:
        they do not enter the change log."""
        ...


class UnitOfWork(Protocol):
    """Writes that commit together or not at all (see :meth:`Store.unit_of_work`).

    A method that raises has written nothing of its own, so a caller may catch the error
    and go on; an exception that leaves the ``with`` block rolls back everything.
    Reads of records inside the unit see its earlier writes.
    """

    def apply(self, write: Write, now: int) -> WriteResult:
        """As :meth:`RecordStore.apply`, inside the unit."""
        ...

    def add_principal(self, principal: StoredPrincipal) -> None:
        """As :meth:`AccessStore.add_principal`, inside the unit."""
        ...

    def add_prefix(self, prefix: Prefix, owner_id: str, now: int) -> None:
        """Record ``prefix`` as allocated to ``owner_id``; AlreadyExists when it is."""
        ...

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        """As :meth:`ApplicationStore.decide_application`, inside the unit (an approval
        commits together with the allocation it makes)."""
        ...

    def set_meta(self, name: str, value: str) -> None:
        """Set a fact about the store (the ``meta`` table) inside the unit, e.g. a
        mirror's position in its primary's change log, so that it commits with the
        changes it counts (:func:`check_meta_name` says which names may be set)."""
        ...

class Store(RecordStore, ChangeLog, AccessStore, TokenStore, ApplicationStore, AuditLog,
            TemplateStore,
            Protocol):
    """Durable state of the node: the union of the concerns above.

    Every method is safe to call from several threads. After :meth:`close`, every method
    raises Unavailable.
    """

    def store_id(self) -> str:
        """A random id created once, when the store's database is created (or, for a
        database older than this build, when it is first upgraded), and the same for its
        whole life, across restarts and processes. Tells one store from another: a
        follower can notice it is now following a different database (restored from
        another backup, or a fresh one), where sequences mean something else."""
        ...

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """A context manager yielding a :class:`UnitOfWork`; on a normal exit everything
        written through it commits in one transaction, on an exception nothing does.

        Other writers wait while a unit is open (keep it short), and units are not
        re-entrant: opening one inside another in the same thread raises RuntimeError.
        Changes become visible to readers and followers only at commit.
        """
        ...

    def meta(self, name: str) -> str | None:
        """A fact set by :meth:`UnitOfWork.set_meta` (None when never set)."""
        ...

    def close(self) -> None:
        """Release connections; later calls raise Unavailable. Idempotent."""
        ...


@runtime_checkable
class SchemaStore(Store, Protocol):
    """A store with a schema: what ``idnode db status`` and ``db migrate`` use
    (node/cli/db.py). Every backend is one (the memory store has no migrations)."""

    BACKEND: str  # "sqlite", "postgresql" or "memory"

    def schema_version(self) -> int:
        """The highest migration recorded (0 for a database never migrated)."""
        ...

    def shipped_migrations(self) -> list[int]:
        """The migration versions this build ships, in order."""
        ...

    def pending_migrations(self) -> list[int]:
        """The shipped migrations the database has not had, in order (the same query
        the migration runner uses)."""
        ...

    def migrate(self) -> list[int]:
        """Apply the pending migrations in one transaction; the versions applied."""
        ...


@runtime_checkable
class DumpableStore(SchemaStore, Protocol):
    """A store ``idnode db export``/``import`` can read in pages and restore (the SQL
    backends; registry/stores/dump_rows.py)."""

    def iter_records(self, after_key: str, limit: int) -> list[Record]:
        """At most ``limit`` records with a key above ``after_key``, in key order."""
        ...

    def dump_rows(self, table: str, after: str | int, limit: int) -> list[tuple[object, ...]]:
        """A page of a table the dump carries besides records (prefixes, principals,
        tokens, applications), ordered by its first column, after ``after``, as stored."""
        ...

    def restore_rows(self, table: str, rows: Sequence[Sequence[object]]) -> None:
        """Write rows as :meth:`dump_rows` read them, in one transaction."""
        ...


def check_precondition(current: Record | None, write: Write) -> None:
    """Raise the error a backend reports when ``write`` may not apply to ``current``."""
    pre = write.precondition
    name = str(write.handle)
    if pre.absent:
        if current is not None:
            raise AlreadyExists(f"identifier {name} already exists")
        return
    if current is None:
        raise NotFound(f"identifier {name} not found")
    if pre.sequence is not None and current.sequence != pre.sequence:
        raise StaleEtag(
            f"etag is stale: {name} was changed since (now version {current.version}, "
            f"etag {current.etag})")


def check_meta_name(name: str) -> str:
    """``name`` when a unit of work may set it: 1-64 characters of ``[a-z0-9_.:-]``, and
    never ``store_id`` (the store's identity is made once, by its migration)."""
    if name == "store_id" or re.fullmatch(r"[a-z0-9_.:-]{1,64}", name) is None:
        raise InvalidArgument(f"{name!r} is not a name a store fact may be set under")
    return name


def replay_application(new: Application, stored: Application) -> Application:
    """A request id seen before: the stored application for the same content, else an
    error (every backend answers a repeated ApplyPrefix the same way)."""
    if stored.fingerprint != new.fingerprint:
        raise InvalidArgument(f"request_id {new.request_id!r} was already used for a "
                              "different application")
    return stored


def application_conflict(prefix: Prefix, *, allocated: bool) -> AlreadyExists:
    """Why a new application for ``prefix`` is refused (the same words on every backend)."""
    if allocated:
        return AlreadyExists(f"prefix {prefix.text} is already allocated")
    return AlreadyExists(f"prefix {prefix.text} already has a pending application: it is "
                         "decided before another one can be made")


def check_pending(application: Application | None, application_id: str) -> Application:
    """The application a decision may apply to, else the error every backend reports."""
    if application is None:
        raise NotFound(f"application {application_id} not found")
    if application.state is not ApplicationState.PENDING:
        raise StaleEtag(f"application {application.id} was already "
                        f"{application.state.value} by {application.reviewer or 'a reviewer'}"
                        ": an application is decided once")
    return application


def template_changed(prefix_key: str, change: TemplateChange,
                     existing: Sequence[Template]) -> Template:
    """Run ``change`` on ``existing`` and check that what it returns belongs there (every
    backend's change_templates does this)."""
    template = change(tuple(existing))
    if template.prefix.key != prefix_key:
        raise InvalidArgument(f"{template.name} is not of prefix {prefix_key}")
    return template


def replay_or_conflict(write: Write, fingerprint: str, result: WriteResult) -> WriteResult:
    """A request id seen before: the first result for the same content, else an error."""
    assert write.request is not None
    if fingerprint != write.request.fingerprint:
        raise InvalidArgument(
            f"request_id {write.request.request_id!r} was already used for a different request")
    return WriteResult(result.handle, result.version, result.etag, result.sequence,
                       replayed=True, key=write.handle.key)
