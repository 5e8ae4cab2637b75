"""Writes with every effect that must follow a commit, whichever door they came through.

A write is acknowledged only after (1) the store committed it with its change-log row
and its audit entry (who, what, from which address and door: the
:class:`~registry.record.AuditContext` built here), (2) every cache layer dropped the old
answer (L2 delete + publish, L1, the host beacon), (3) the metrics moved and (4) one
audit line was written. A refused write gets an audit line too, and an audit entry
through the :class:`~node.service.audit.RefusalRecorder` (bounded, never failing the
request). A front door that called :class:`registry.registrar.Registrar` directly would
skip all of this; front doors call this instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.errors import mapping_for
from node.observe.logs import AUDIT, event
from node.observe.metrics import Metrics
from node.service.admission import Admission
from node.service.caller import Authenticate, Caller
from node.service.coherence import Coherence
from registry.access.principals import Principal
from registry.errors import IdnodeError, Unauthenticated
from registry.record import AuditContext, WriteResult
from registry.registrar import Allocation, BulkRow, Registrar
from registry.values import Value

if TYPE_CHECKING:
    from node.service.audit import RefusalRecorder

audit = logging.getLogger(AUDIT)

BULK_BATCH_ROWS = 2000
MAX_BULK_FAILURES_REPORTED = 10_000

# A registrar call bound to its arguments, given the authenticated principal.
_Run = Callable[[Principal | None], WriteResult]


@dataclass(slots=True)
class RowFailure:
    """One refused row of a bulk registration: its 0-based position in the stream."""

    row: int
    handle: str
    error: IdnodeError


@dataclass(slots=True)
class BulkOutcome:
    """What a bulk registration stored: ``accepted`` rows are committed and visible."""

    accepted: int = 0
    unchanged: int = 0  # found stored as they are (only when the session reports them)
    rows: int = 0
    failures: list[RowFailure] = field(default_factory=list)
    failures_dropped: int = 0


class Writes:
    """Register, update, delete, bulk-register and allocate prefixes for any door."""

    def __init__(self, registrar: Registrar, coherence: Coherence, auth: Authenticate,
                 metrics: Metrics, recorder: RefusalRecorder | None = None, *,
                 admission: Admission | None = None) -> None:
        self.registrar = registrar
        self.coherence = coherence
        self.auth = auth
        self.metrics = metrics
        # Rate limits + credentials: every write entry point asks it for the principal.
        self.admission = admission if admission is not None else Admission(auth)
        self.recorder = recorder  # None: refused attempts are only logged

    @staticmethod
    def context(caller: Caller, action: str = "") -> AuditContext:
        """What the store's audit entry of a write by ``caller`` records beyond the write
        (``action`` empty: the write's operation)."""
        return AuditContext(caller.address, caller.door, action)

    # --- one identifier ----------------------------------------------------------------

    def register(self, caller: Caller, handle: str, values: Sequence[Value],
                 request_id: str = "") -> WriteResult:
        def run(principal: Principal | None) -> WriteResult:
            return self.registrar.register(principal, handle, values, request_id,
                                           audit=self.context(caller, "register"))
        return self._one(caller, "register", handle, request_id, run)

    def update(self, caller: Caller, handle: str, values: Sequence[Value], etag: str, *,
               merge: bool = False, request_id: str = "") -> WriteResult:
        def run(principal: Principal | None) -> WriteResult:
            return self.registrar.update(principal, handle, values, etag, merge=merge,
                                         request_id=request_id,
                                         audit=self.context(caller, "update"))
        return self._one(caller, "update", handle, request_id, run)

    def delete(self, caller: Caller, handle: str, etag: str | None,
               indexes: Iterable[int] = (), request_id: str = "") -> WriteResult:
        """``etag=None`` deletes whatever is current (the Handle REST API has no etags)."""
        drop = tuple(indexes)

        def run(principal: Principal | None) -> WriteResult:
            return self.registrar.delete(principal, handle, etag, drop, request_id,
                                         audit=self.context(caller, "delete"))
        return self._one(caller, "delete", handle, request_id, run)

    def put(self, caller: Caller, handle: str, values: Sequence[Value], *,
            overwrite: bool = True, indexes: Iterable[int] = ()) -> tuple[WriteResult, bool]:
        """Create or replace the Handle REST way (see Registrar.put); also says whether
        the identifier was created."""
        created: list[bool] = []
        chosen = tuple(indexes)

        def run(principal: Principal | None) -> WriteResult:
            # No action: the entry says what the PUT turned into (register or update).
            result, was_created = self.registrar.put(principal, handle, values,
                                                     overwrite=overwrite, indexes=chosen,
                                                     audit=self.context(caller))
            created.append(was_created)
            return result
        result = self._one(caller, "put", handle, "", run)
        return result, created[0]

    def _one(self, caller: Caller, operation: str, handle: str, request_id: str,
             run: _Run) -> WriteResult:
        principal: Principal | None = None
        started = time.perf_counter()
        try:
            self.coherence.refresh()  # rights other processes changed count from now
            principal = self.admission.writer(caller)
            result = run(principal)
        except IdnodeError as exc:
            self.refused(caller, operation, exc, handle=handle, request_id=request_id,
                         principal=principal)
            raise
        finally:
            self.metrics.store_op(operation).observe(time.perf_counter() - started)
        self._committed(operation, [result])
        event(audit, "write", operation=operation, handle=result.handle,
              principal=principal.id if principal else "", request_id=request_id,
              version=result.version, sequence=result.sequence, replayed=result.replayed,
              door=caller.door)
        return result

    # --- many identifiers --------------------------------------------------------------

    def bulk(self, caller: Caller) -> BulkSession:
        """Start a bulk registration; credentials are checked now, once for the stream:
        an anonymous or wrong credential fails the whole call, never row by row."""
        try:
            self.coherence.refresh()
            principal = self.admission.writer(caller)
            if principal is None:
                raise Unauthenticated("bulk registration requires credentials "
                                      "(authorization metadata)")
        except IdnodeError as exc:
            self.refused(caller, "bulk-register", exc)
            raise
        return BulkSession(self, caller, principal)

    # --- prefixes ----------------------------------------------------------------------

    def allocate_prefix(self, caller: Caller, prefix: str, owner_secret: str = "") -> Allocation:
        principal: Principal | None = None
        try:
            principal = self.admission.writer(caller)
            allocation = self.registrar.allocate_prefix(
                principal, prefix, owner_secret, audit=self.context(caller, "allocate_prefix"))
        except IdnodeError as exc:
            self.refused(caller, "allocate-prefix", exc, handle=prefix, principal=principal)
            raise
        self.allocated(allocation)
        event(audit, "allocate-prefix", prefix=allocation.prefix, owner=allocation.owner,
              principal=principal.id if principal else "", door=caller.door)
        return allocation

    def allocated(self, allocation: Allocation) -> None:
        """The effects of an allocation (AllocatePrefix or an approved application): the
        identifiers it created are invalidated everywhere and counted."""
        self.coherence.invalidate_many([(r.key, r.sequence) for r in allocation.results])
        self.metrics.prefixes.inc()
        self.metrics.identifiers.inc(len(allocation.results))
        if allocation.results:
            self.metrics.changelog_sequence.set(max(r.sequence for r in allocation.results))

    # --- effects -----------------------------------------------------------------------

    def _committed(self, operation: str, results: Sequence[WriteResult]) -> None:
        """After commit, before the caller hears OK: no process may serve the old answer."""
        fresh = [r for r in results if not r.replayed]
        if not fresh:
            return
        if operation == "put":  # counted as what it turned out to be
            operation = "register" if fresh[0].version == 1 else "update"
        self.coherence.invalidate_many([(r.key, r.sequence) for r in fresh])
        self.metrics.write(operation).inc(len(fresh))
        self.metrics.changelog_sequence.set(max(r.sequence for r in fresh))
        if operation == "register":
            self.metrics.identifiers.inc(len(fresh))
        elif operation == "delete":
            self.metrics.identifiers.dec(sum(1 for r in fresh if r.version == 0))

    def refused(self, caller: Caller, operation: str, exc: IdnodeError, *, handle: str = "",
                request_id: str = "", principal: Principal | None = None) -> None:
        """One audit line per refused write, with what the caller sent (escaped by the
        log formatter) and why; and an audit entry, within the recorder's bounds (the
        action spelled with ``_``: ``allocate_prefix``, ``bulk_register``)."""
        event(audit, "write refused", logging.WARNING, method=operation,
              code=mapping_for(exc).status, reason=exc.message, handle=handle,
              request_id=request_id, principal=principal.id if principal else "",
              peer=caller.peer, door=caller.door)
        if self.recorder is not None:
            self.recorder.record(caller, operation.replace("-", "_"), exc, target=handle,
                                 request_id=request_id, principal=principal)


class BulkSession:
    """Rows arrive in chunks; every BULK_BATCH_ROWS rows commit in one transaction.

    Each committed chunk is invalidated and counted before the next is read, so if the
    stream dies midway the rows of committed chunks stay stored (and visible), and
    :attr:`outcome` says exactly how many: a client resumes after ``outcome.accepted``
    rows only if no row failed, otherwise it retries the failed rows.
    """

    def __init__(self, writes: Writes, caller: Caller, principal: Principal) -> None:
        self._writes = writes
        self._caller = caller
        self._principal = principal
        self._batch: list[tuple[int, BulkRow]] = []
        self.outcome = BulkOutcome()
        # A re-import asks for rows already stored as they are to be counted, not failed
        # (Registrar.register_many's report_unchanged); from the row it is set on.
        self.report_unchanged = False

    def add(self, handle: str, values: Iterable[Value] | IdnodeError) -> None:
        """Queue one row; ``values`` is the error when the door could not decode them."""
        row = self.outcome.rows
        self.outcome.rows += 1
        if isinstance(values, IdnodeError):
            self._fail(row, handle, values)
            return
        self._batch.append((row, BulkRow(handle, tuple(values))))
        if len(self._batch) >= BULK_BATCH_ROWS:
            self.flush()

    def _fail(self, row: int, handle: str, exc: IdnodeError) -> None:
        if len(self.outcome.failures) < MAX_BULK_FAILURES_REPORTED:
            self.outcome.failures.append(RowFailure(row, handle, exc))
        else:
            self.outcome.failures_dropped += 1

    def flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        started = time.perf_counter()
        results = self._writes.registrar.register_many(
            self._principal, [item for _, item in batch],
            audit=Writes.context(self._caller, "bulk_register"),
            report_unchanged=self.report_unchanged)
        self._writes.metrics.store_op("register_many").observe(time.perf_counter() - started)
        committed: list[WriteResult] = []
        for (row, item), result in zip(batch, results, strict=True):
            if isinstance(result, WriteResult):
                if result.replayed:
                    self.outcome.unchanged += 1
                else:
                    committed.append(result)
            else:
                self._fail(row, item.handle, result)
        self._writes._committed("register", committed)
        self.outcome.accepted += len(committed)

    def finish(self, error: IdnodeError | None = None) -> BulkOutcome:
        """Commit what is queued (unless the stream broke) and write the audit line."""
        if error is None:
            self.flush()
        else:
            self._batch.clear()
        self._audit_refusals(error)
        event(audit, "bulk-register", principal=self._principal.id, rows=self.outcome.rows,
              accepted=self.outcome.accepted, unchanged=self.outcome.unchanged,
              failed=len(self.outcome.failures) + self.outcome.failures_dropped,
              broken=error.message if error else "", door=self._caller.door)
        return self.outcome

    def _audit_refusals(self, error: IdnodeError | None) -> None:
        """Rows refused alone make one audit entry per stream (a re-import of a million
        existing rows is one entry, not a million), outcome and target from the first;
        a stream that broke makes one more."""
        recorder = self._writes.recorder
        if recorder is None:
            return
        failed = len(self.outcome.failures) + self.outcome.failures_dropped
        if self.outcome.failures:
            first = self.outcome.failures[0]
            recorder.record(
                self._caller, "bulk_register", first.error, target=first.handle,
                principal=self._principal,
                message=f"{failed} of {self.outcome.rows} rows refused (each alone; "
                        f"{self.outcome.accepted} stored); the first, row {first.row}: "
                        f"{first.error.message}")
        if error is not None:
            recorder.record(self._caller, "bulk_register", error, principal=self._principal)


__all__ = ["BulkOutcome", "BulkSession", "RowFailure", "Writes"]
