"""An in-memory store: the reference implementation of the contract, for tests and
throw-away nodes. Nothing survives the process.

Every write goes through a unit of work: a private overlay (records, change rows, request
ids, principals, prefixes, application decisions) built under the store lock and merged
into the store at commit, so an exception discards it. Readers take no lock (as SQLite
readers never wait for the writer) and see nothing of a unit before its commit; during
the commit they may see its records appear one by one, but its change-log entries appear
in one step.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from registry import audit
from registry.access.principals import StoredPrincipal, identity_key
from registry.access.tokens import StoredToken
from registry.applications import Application, ApplicationState
from registry.audit import AuditEntry, AuditPage, AuditQuery
from registry.errors import AlreadyExists, IdnodeError, Unavailable
from registry.identifier import Prefix
from registry.record import Change, Record, Write, WriteResult, etag_of
from registry.store import (
    REQUEST_RETENTION_SECONDS,
    Counts,
    TemplateChange,
    application_conflict,
    check_meta_name,
    check_pending,
    check_precondition,
    replay_application,
    replay_or_conflict,
    template_changed,
)
from registry.templates import Template

_CLOSED = "the store is unavailable: it has been closed"


class MemoryUnitOfWork:
    """See :class:`registry.store.UnitOfWork`. Only :meth:`MemoryStore.unit_of_work`
    makes one, with the store lock held for its whole life."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._records: dict[str, Record | None] = {}  # None: deleted in this unit
        self._changes: list[Change] = []
        self._requests: dict[tuple[str, str], tuple[str, WriteResult, int]] = {}
        self._principals: dict[str, StoredPrincipal] = {}
        self._prefixes: dict[str, str] = {}
        self._applications: dict[str, Application] = {}
        self._audit: list[AuditEntry] = []
        self._meta: dict[str, str] = {}
        self._seq = store._seq

    def _record(self, key: str) -> Record | None:
        if key in self._records:
            return self._records[key]
        return self._store._records.get(key)

    def apply(self, write: Write, now: int, *, audit_row: bool = True) -> WriteResult:
        """``audit_row=False``: the write's audit row is the caller's (apply_many)."""
        if write.request is not None:
            rk = (write.request.scope, write.request.request_id)
            seen = self._requests.get(rk) or self._store._requests.get(rk)
            if seen is not None and seen[2] >= now - REQUEST_RETENTION_SECONDS:
                return replay_or_conflict(write, seen[0], seen[1])
        key = write.handle.key
        current = self._record(key)
        check_precondition(current, write)
        # Nothing below raises: a failed check has written nothing.
        self._seq += 1
        seq = self._seq
        handle = current.handle if current is not None else write.handle
        if write.values is None:
            self._records[key] = None
            result = WriteResult(str(handle), 0, "", seq, key=key)
        else:
            version = current.version + 1 if current is not None else 1
            self._records[key] = Record(handle, write.values, version, seq, now)
            result = WriteResult(str(handle), version, etag_of(seq), seq, key=key)
        entry = audit.accepted(write, str(handle), seq, now)
        self._changes.append(Change(
            seq, write.operation, str(handle), key, result.version, write.values or (), now,
            write.principal, entry.request_id, entry.client_address, entry.door))
        if audit_row:
            self._audit.append(entry)
        if write.request is not None:
            self._requests[(write.request.scope, write.request.request_id)] = (
                write.request.fingerprint, result, now)
        return result

    def add_principal(self, principal: StoredPrincipal) -> None:
        key = identity_key(principal.principal.id)
        if key in self._principals or key in self._store._principals:
            raise AlreadyExists(f"principal {principal.principal.id} already exists")
        self._principals[key] = principal

    def add_prefix(self, prefix: Prefix, owner_id: str, now: int) -> None:
        del now  # the memory store keeps no allocation dates
        if prefix.key in self._prefixes or prefix.key in self._store._prefixes:
            raise AlreadyExists(f"prefix {prefix.text} is already allocated")
        self._prefixes[prefix.key] = owner_id

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        current = self._applications.get(application_id) or \
            self._store._applications.get(application_id)
        decided = check_pending(current, application_id).decided(state, reviewer, reason, now)
        self._applications[application_id] = decided
        return decided

    def set_meta(self, name: str, value: str) -> None:
        self._meta[check_meta_name(name)] = value


class MemoryStore:
    """See :class:`registry.store.Store`. It has no schema (nothing to migrate) and lives
    in one process, so ``idnode db export``/``import`` do not apply to it."""

    BACKEND = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._records: dict[str, Record] = {}
        self._changes: list[Change] = []
        self._requests: dict[tuple[str, str], tuple[str, WriteResult, int]] = {}
        self._principals: dict[str, StoredPrincipal] = {}
        self._prefixes: dict[str, str] = {}  # prefix key -> owner id
        self._tokens: dict[str, StoredToken] = {}
        self._applications: dict[str, Application] = {}  # id -> application
        self._application_seq = 0
        self._audit: list[AuditEntry] = []  # in id order; ids are 1..n
        self._templates: dict[tuple[str, str], Template] = {}  # (prefix key, version)
        self._seq = 0
        self._meta: dict[str, str] = {}
        self._id = uuid.uuid4().hex
        self._unit_owner: int | None = None  # thread holding an open unit of work
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(_CLOSED)

    def store_id(self) -> str:
        self._check_open()
        return self._id

    def meta(self, name: str) -> str | None:
        self._check_open()
        return self._id if name == "store_id" else self._meta.get(name)

    def schema_version(self) -> int:
        return 0

    def shipped_migrations(self) -> list[int]:
        return []

    def pending_migrations(self) -> list[int]:
        return []

    def migrate(self) -> list[int]:
        return []

    # --- units of work -----------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[MemoryUnitOfWork]:
        with self._lock:
            if self._unit_owner == threading.get_ident():
                raise RuntimeError("units of work are not re-entrant")
            self._check_open()
            self._unit_owner = threading.get_ident()
            try:
                unit = MemoryUnitOfWork(self)
                yield unit
                self._check_open()
                self._commit(unit)
            finally:
                self._unit_owner = None

    def _commit(self, unit: MemoryUnitOfWork) -> None:
        for key, record in unit._records.items():
            if record is None:
                self._records.pop(key, None)
            else:
                self._records[key] = record
        self._requests.update(unit._requests)
        self._principals.update(unit._principals)
        self._prefixes.update(unit._prefixes)
        self._applications.update(unit._applications)
        self._add_audit(unit._audit)
        self._meta.update(unit._meta)
        if unit._changes:
            self._changes.extend(unit._changes)
            self._seq = unit._seq
            self._changed.notify_all()

    # --- records -----------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        self._check_open()
        return self._records.get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        self._check_open()
        return {k: r for k in keys if (r := self._records.get(k)) is not None}

    def apply(self, write: Write, now: int) -> WriteResult:
        with self.unit_of_work() as unit:
            return unit.apply(write, now)

    def apply_many(self, writes: Sequence[Write], now: int) -> list[WriteResult | IdnodeError]:
        out: list[WriteResult | IdnodeError] = []
        applied: list[tuple[Write, str, int]] = []
        with self.unit_of_work() as unit:
            for write in writes:
                try:
                    result = unit.apply(write, now, audit_row=False)
                except IdnodeError as exc:
                    out.append(exc)
                    continue
                out.append(result)
                if not result.replayed:
                    applied.append((write, result.handle, result.sequence))
            unit._audit.extend(AuditEntry.from_row((0, *row))
                               for row in audit.bulk_rows(applied, now))
        return out

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        self._check_open()
        items = list(self._records.items())  # one atomic copy: readers never take the lock
        found = sorted((k, str(r.handle)) for k, r in items
                       if r.handle.prefix_key == prefix_key and k > after_key)
        return found[:limit]

    def counts(self) -> Counts:
        self._check_open()
        return Counts(len(self._prefixes), len(self._records))

    # --- change log --------------------------------------------------------------------

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        self._check_open()
        # Sequences are 1..n without gaps, so the change after ``sequence`` is at index
        # ``sequence``. A commit extends the list in one step, so a slice (no lock:
        # readers never wait for an open unit) never shows part of a unit.
        start = max(sequence, 0)
        return self._changes[start:start + max(limit, 0)]

    def last_sequence(self) -> int:
        self._check_open()
        return self._seq

    def wait_for_changes(self, after_sequence: int, timeout_seconds: float) -> bool:
        with self._changed:
            self._check_open()
            self._changed.wait_for(lambda: self._closed or self._seq > after_sequence,
                                   max(timeout_seconds, 0.0))
            self._check_open()  # closed while waiting
            return self._seq > after_sequence

    # --- audit log ---------------------------------------------------------------------

    def _add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Number and publish ``entries`` (the store lock is held)."""
        if entries:
            start = len(self._audit) + 1
            # One extend (one step under the GIL): readers see all of them or none.
            numbered = [replace(e, id=start + i) for i, e in enumerate(entries)]
            self._audit.extend(numbered)

    def record_refusal(self, *entries: AuditEntry) -> None:
        with self._lock:
            self._check_open()
            self._add_audit(entries)

    def audit_entries(self, query: AuditQuery) -> AuditPage:
        self._check_open()
        entries = self._audit  # one atomic read: readers never take the lock
        end = len(entries) if query.before_id <= 0 else min(query.before_id - 1, len(entries))
        found: list[AuditEntry] = []
        for i in range(end - 1, -1, -1):
            if audit.matches(entries[i], query):
                found.append(entries[i])
                if len(found) > query.limit:
                    break
        return audit.page_of(found, query.limit)

    # --- principals and prefixes -------------------------------------------------------

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        self._check_open()
        return self._principals.get(identity_key)

    def add_principal(self, principal: StoredPrincipal) -> None:
        with self.unit_of_work() as unit:
            unit.add_principal(principal)

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, token: StoredToken) -> None:
        with self._lock:
            self._check_open()
            if token.token_id in self._tokens:
                raise AlreadyExists(f"token {token.token_id} already exists")
            self._tokens[token.token_id] = token

    def get_token(self, token_id: str) -> StoredToken | None:
        self._check_open()
        return self._tokens.get(token_id)

    def list_tokens(self, principal_key: str) -> list[StoredToken]:
        with self._lock:
            self._check_open()
            return sorted((t for t in self._tokens.values() if t.principal_key == principal_key),
                          key=lambda t: (t.created_at, t.token_id))

    def revoke_token(self, token_id: str, now: int) -> StoredToken | None:
        with self._lock:
            self._check_open()
            token = self._tokens.get(token_id)
            if token is not None and token.revoked_at is None:
                token = self._tokens[token_id] = dataclasses.replace(token, revoked_at=now)
            return token

    def has_prefix(self, prefix_key: str) -> bool:
        self._check_open()
        return prefix_key in self._prefixes

    # --- applications --------------------------------------------------------------------

    def add_application(self, application: Application) -> Application:
        with self._lock:
            self._check_open()
            items = list(self._applications.values())
            if application.request_id:
                for seen in items:
                    if seen.request_id == application.request_id:
                        return replay_application(application, seen)
            prefix = application.prefix
            if prefix.key in self._prefixes:
                raise application_conflict(prefix, allocated=True)
            if any(a.prefix.key == prefix.key and a.state is ApplicationState.PENDING
                   for a in items):
                raise application_conflict(prefix, allocated=False)
            if application.id in self._applications:
                raise AlreadyExists(f"application {application.id} already exists")
            self._application_seq += 1
            stored = replace(application, sequence=self._application_seq)
            self._applications[stored.id] = stored
            return stored

    def get_application(self, application_id: str) -> Application | None:
        self._check_open()
        return self._applications.get(application_id)

    def list_applications(self, state: ApplicationState | None, before: int,
                          limit: int) -> list[Application]:
        self._check_open()
        items = list(self._applications.values())  # one atomic copy, as list_keys
        found = sorted((a for a in items
                        if (state is None or a.state is state)
                        and (before <= 0 or a.sequence < before)),
                       key=lambda a: a.sequence, reverse=True)
        return found[:max(limit, 0)]

    def decide_application(self, application_id: str, state: ApplicationState,
                           reviewer: str, reason: str, now: int) -> Application:
        with self.unit_of_work() as unit:
            return unit.decide_application(application_id, state, reviewer, reason, now)

    # --- templates -------------------------------------------------------------------------

    def get_template(self, prefix_key: str, version: str) -> Template | None:
        self._check_open()
        return self._templates.get((prefix_key, version))

    def list_templates(self, prefix_key: str) -> list[Template]:
        self._check_open()
        items = list(self._templates.values())  # one atomic copy, as list_keys
        return sorted((t for t in items if t.prefix.key == prefix_key), key=lambda t: t.serial)

    def change_templates(self, prefix_key: str, change: TemplateChange) -> Template:
        with self._lock:
            self._check_open()
            template = template_changed(prefix_key, change, self.list_templates(prefix_key))
            self._templates[(prefix_key, template.version)] = template
            return template

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._changed.notify_all()
