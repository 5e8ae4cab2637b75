"""A mirror: a read-only copy of a primary node, kept by applying its change feed.

``idnode mirror --from HOST:PORT`` runs an ordinary node (every read door, its own store,
its own signing key) whose writes are refused, and a follower (node/rpc/mirror.py) that
reads the primary's ``Sync.WatchChanges`` and hands each page of changes here:

1. :class:`ChangeCheck` verifies every change before anything is applied: the
   SignedRecord is checked against the primary's published keys (``GetSigningKeys``,
   fetched again once when an unknown key id appears, e.g. after a rotation), and the
   change signature binds that payload to the primary's store id, the sequence and the
   operation. The values applied are the signed payload's, never the unsigned copy. A
   change that fails is refused (:class:`ChangeRefused`): nothing from it on is applied,
   it is counted and logged, and the follower reconnects from the same position after a
   back-off, so a change is never skipped.
2. :meth:`Mirror.apply` writes a page of verified changes into the mirror's own store in
   **one unit of work together with the new position** (``meta`` row
   ``mirror.position``: the primary's store id and sequence). A mirror killed at any
   instant restarts from a position that matches exactly what its store holds: no gap,
   no change applied twice. Each change becomes an ordinary write of the mirror's store
   (so the mirror has its own change log, for its own followers and its caches) whose
   version must come out equal to the primary's; a different version means the stores
   have diverged (a mirror store that was not empty, or a primary restored from a
   backup), which is refused like a bad signature rather than papered over.
3. After the commit, the changed identifiers are invalidated in every cache layer (as a
   local write would be) and the lag metrics move.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from idnode.v1 import record_pb2, sync_pb2
from node.observe.logs import event
from node.observe.metrics import Metrics
from node.service.coherence import Coherence
from node.service.payload import change_binding, value_from_wire
from node.verify import VerificationError, verify
from registry.errors import AlreadyExists, IdnodeError, NotFound
from registry.identifier import Handle
from registry.record import ABSENT, AuditContext, Change, Operation, Precondition, Write
from registry.store import Store
from registry.values import Value

log = logging.getLogger("idnode.mirror")

POSITION_META = "mirror.position"
_OPERATIONS = {
    sync_pb2.Change.OPERATION_REGISTER: Operation.REGISTER,
    sync_pb2.Change.OPERATION_UPDATE: Operation.UPDATE,
    sync_pb2.Change.OPERATION_DELETE: Operation.DELETE,
}
# A key id the mirror does not know makes it ask the primary for its keys again, at most
# this often (a forged change naming random key ids must not turn into a request flood).
KEY_REFRESH_SECONDS = 5.0


class ChangeRefused(Exception):
    """A change the mirror must not apply; ``reason`` says which check failed."""

    def __init__(self, sequence: int, reason: str) -> None:
        super().__init__(f"change {sequence}: {reason}")
        self.sequence = sequence
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Position:
    """Where the mirror is in its primary's log: the primary's store id ('' before the
    first change) and the last sequence applied."""

    store_id: str = ""
    sequence: int = 0

    def text(self) -> str:
        return f"{self.store_id}:{self.sequence}"

    @classmethod
    def parse(cls, text: str | None) -> Position:
        if not text:
            return cls()
        store_id, _, sequence = text.rpartition(":")
        return cls(store_id, int(sequence))


Keys = Callable[[], Sequence[record_pb2.SigningKey]]


class ChangeCheck:
    """Verifies changes of the feed with the primary's published keys (``fetch_keys``
    asks the primary; called at the first change and again for an unknown key id)."""

    def __init__(self, fetch_keys: Keys, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.fetch_keys = fetch_keys
        self.clock = clock
        self.wall = wall
        self._keys: Sequence[record_pb2.SigningKey] = ()
        self._fetched_at: float | None = None

    def _keys_for(self, key_id: str) -> Sequence[record_pb2.SigningKey]:
        known = any(k.key_id == key_id for k in self._keys)
        now = self.clock()
        if not known and (self._fetched_at is None
                          or now - self._fetched_at >= KEY_REFRESH_SECONDS):
            self._keys = tuple(self.fetch_keys())
            self._fetched_at = now
        return self._keys

    def verify(self, msg: sync_pb2.Change, store_id: str) -> Change:
        """The change as the mirror applies it (values from the signed payload), or
        ChangeRefused naming the failed check. ``store_id``: the log the mirror follows
        (the first change's, when the mirror starts empty)."""
        seq = msg.sequence
        if not msg.HasField("record") or not msg.change_signature:
            raise ChangeRefused(seq, "the change is not signed (is the primary older than "
                                     "this mirror?)")
        if msg.store_id != store_id:
            raise ChangeRefused(seq, f"the change is of store {msg.store_id!r}, not of "
                                     f"{store_id!r} that this mirror follows")
        operation = _OPERATIONS.get(msg.operation)
        if operation is None:
            raise ChangeRefused(seq, f"unknown operation {msg.operation}")
        signed = msg.record
        try:
            record = verify(signed, self._keys_for(signed.key_id), now=self.wall(),
                            nonce=change_binding(store_id, seq, msg.operation),
                            nonce_signature=msg.change_signature)
        except VerificationError as exc:
            raise ChangeRefused(seq, exc.reason) from None
        if record.handle != msg.handle or record.version != msg.version:
            raise ChangeRefused(seq, "the signed payload names another identifier or "
                                     "version than the change")
        if (operation is Operation.DELETE) != (not record.values):
            raise ChangeRefused(seq, "the signed payload's values do not fit the operation")
        try:
            values = tuple(_value(v) for v in record.values)
            key = Handle.parse(record.handle).key
        except (IdnodeError, DecodeError) as exc:
            raise ChangeRefused(seq, f"the signed payload does not decode: {exc}") from None
        return Change(seq, operation, record.handle, key, record.version, values,
                      int(msg.committed_at.seconds), msg.principal, msg.request_id,
                      msg.client_address, msg.door)


def _value(msg: record_pb2.Value) -> Value:
    return value_from_wire(msg)._replace(timestamp=int(msg.timestamp.seconds))


class Mirror:
    """Applies verified changes and keeps the position and the lag metrics."""

    def __init__(self, store: Store, coherence: Coherence, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.coherence = coherence
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._position = Position.parse(store.meta(POSITION_META))
        self._primary_sequence = self._position.sequence
        self._oldest_pending_at = 0  # committed_at of the first change not yet applied
        self.metrics.mirror_sequence.set(self._position.sequence)

    @property
    def position(self) -> Position:
        return self._position

    def apply(self, changes: Sequence[Change], store_id: str) -> None:
        """Apply verified changes (in sequence order, all after the position) and the new
        position in one unit of work; then invalidate caches. ChangeRefused when the
        stores have diverged (nothing of the page is applied)."""
        if not changes:
            return
        with self._lock:
            done: list[tuple[str, int]] = []
            with self.store.unit_of_work() as unit:
                for change in changes:
                    if change.sequence <= self._position.sequence:
                        raise ChangeRefused(change.sequence, "the change is not after the "
                                            f"mirror's position {self._position.sequence}")
                    try:
                        result = unit.apply(_write(change), change.committed_at)
                    except (NotFound, AlreadyExists) as exc:
                        raise ChangeRefused(change.sequence, f"{exc.message}: the stores "
                                            "have diverged (start the mirror on an empty "
                                            "store)") from None
                    if change.operation is not Operation.DELETE and \
                            result.version != change.version:
                        raise ChangeRefused(
                            change.sequence,
                            f"the mirror's store has {change.handle} at version "
                            f"{result.version}, the primary at {change.version}: the "
                            "stores have diverged (start the mirror on an empty store)")
                    done.append((result.key or change.key, result.sequence))
                position = Position(store_id, changes[-1].sequence)
                unit.set_meta(POSITION_META, position.text())
            self._position = position
        self.coherence.invalidate_many(done)
        self.metrics.mirror_applied.inc(len(changes))
        self.metrics.mirror_sequence.set(position.sequence)
        self.heard(max(self._primary_sequence, position.sequence),
                   changes[-1].committed_at if self._primary_sequence > position.sequence
                   else 0)

    def heard(self, primary_sequence: int, oldest_pending_at: int = 0) -> None:
        """The primary's newest sequence (GetStats, or the stream) and the commit time of
        the oldest change not applied yet (0: none known), for the lag metrics."""
        self._primary_sequence = max(self._primary_sequence, primary_sequence)
        lag = max(0, self._primary_sequence - self._position.sequence)
        self.metrics.mirror_lag_sequences.set(lag)
        if lag == 0:
            self._oldest_pending_at = 0
        elif oldest_pending_at:
            self._oldest_pending_at = oldest_pending_at
        self.metrics.mirror_lag_seconds.set(
            max(0.0, self.clock() - self._oldest_pending_at) if self._oldest_pending_at
            else 0.0)

    def refused(self, exc: ChangeRefused) -> None:
        """Count and log a refused change (the follower then reconnects)."""
        self.metrics.mirror_refused.inc()
        event(log, "mirror refused a change", level=logging.ERROR,
              sequence=exc.sequence, reason=exc.reason,
              position=self._position.sequence)


def _write(change: Change) -> Write:
    """The change as a write of the mirror's own store, without the primary's etag (it
    decided already): a registration needs the identifier absent, an update or delete
    present, and :meth:`Mirror.apply` checks the version; anything else is divergence."""
    return Write(change.operation, Handle.parse(change.handle),
                 None if change.operation is Operation.DELETE else change.values,
                 ABSENT if change.operation is Operation.REGISTER else Precondition(),
                 change.principal, None,
                 AuditContext(change.client_address, change.door,
                              f"mirror-{change.operation.value}"))


__all__ = ["POSITION_META", "ChangeCheck", "ChangeRefused", "Mirror", "Position"]
