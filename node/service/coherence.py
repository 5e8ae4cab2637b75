"""Cache coherence: after a write is acknowledged, no process serves the old answer.

A write drops the identifier from L2 (and publishes that), from this process's L1 and
bumps the host's change beacon before the caller hears OK. Other processes on the host
see the beacon move and read the change log since they last looked (``catch_up``);
processes on other hosts hear the Redis publication (``remote_invalidate``). Recent
writes are remembered with their sequence so an L2 entry that a failed invalidation
left behind is recognised as old.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.cache.l2 import SharedCache
from node.observe.metrics import Metrics
from registry.errors import IdnodeError
from registry.store import Store

# When the change log moved by more than this since L1 last looked, dropping the whole
# L1 is cheaper than reading every change.
MAX_CATCH_UP_CHANGES = 10_000
# Keys written recently (and the sequence of that write), so an L2 entry that a failed
# Redis invalidation left behind is recognised as old by every process on the host.
MAX_RECENT_WRITES = 65_536


class Forgets(Protocol):
    """Anything else derived from records that must be dropped with them (the rights
    book, remembered credentials)."""

    def forget(self, keys: Iterable[str]) -> None: ...

    def clear(self) -> None: ...


class Coherence:
    """Invalidation in every layer, and catching up with other processes' writes."""

    def __init__(self, store: Store, l1: L1Cache, beacon: Beacon, metrics: Metrics,
                 l2: SharedCache | None = None, derived: Sequence[Forgets] = ()) -> None:
        self.store = store
        self.derived = tuple(derived)
        self.l1 = l1
        self.l2 = l2
        self.beacon = beacon
        self.metrics = metrics
        # Nothing is cached yet, so nothing committed before now needs dropping: start
        # at the store's newest sequence. The beacon is raised to it too, or an
        # in-process beacon (or a new beacon file) reading 0 would make the first
        # catch-up replay the whole log, dropping every remembered credential and L1.
        started_at = store.last_sequence()
        beacon.bump(started_at)
        self.applied_sequence = beacon.read()
        self.recent: OrderedDict[str, int] = OrderedDict()  # O(1) eviction of the oldest
        # What replica reads must have replayed (node.service.reads): the highest
        # sequence this process has written or heard of, and the highest sequence of a
        # write it knows happened but not to which key — whatever left ``recent``, and
        # everything committed before it started (it could not hear of those).
        self.forgotten_sequence = started_at
        self.known_sequence = max(self.applied_sequence, self.forgotten_sequence)
        self._recent_lock = threading.Lock()
        self._catch_up_lock = threading.Lock()

    def invalidate(self, key: str, sequence: int) -> None:
        """A write to ``key`` committed as ``sequence``: drop it everywhere, then the
        caller may acknowledge. L2 goes first: a reader that fetched the old entry from
        L2 before the delete then finds L1's generation moved and does not keep it."""
        self.invalidate_many(((key, sequence),))

    def invalidate_many(self, items: Sequence[tuple[str, int]]) -> None:
        """:meth:`invalidate` for a batch of writes (bulk imports): one L2 round trip and
        one beacon bump instead of one per identifier."""
        if not items:
            return
        self._note_writes(items)
        if self.l2 is not None:
            self.l2.invalidate_many(items)
        self.l1.invalidate_many(key for key, _ in items)
        self._forget([key for key, _ in items])
        self.metrics.cache_invalidations.labels("local").inc(len(items))
        self.beacon.bump(max(sequence for _, sequence in items))

    def remote_invalidate(self, key: str, sequence: int) -> None:
        """Another process (maybe on another host) wrote ``key``: heard over Redis."""
        self._note_write(key, sequence)
        self.l1.invalidate(key)
        self._forget((key,))
        self.metrics.cache_invalidations.labels("redis").inc()

    def resync(self) -> None:
        """Invalidations may have been missed (Redis was unreachable): drop L1, and count
        every write committed until now as known, though not to which key (a replica
        must have replayed them)."""
        self._clear()
        with contextlib.suppress(IdnodeError):
            self._forget_all(self.store.last_sequence())

    def _forget(self, keys: Sequence[str]) -> None:
        for derived in self.derived:
            derived.forget(keys)

    def _clear(self) -> None:
        self.l1.clear()
        for derived in self.derived:
            derived.clear()

    def _note_write(self, key: str, sequence: int) -> None:
        self._note_writes(((key, sequence),))

    def _note_writes(self, items: Iterable[tuple[str, int]]) -> None:
        with self._recent_lock:
            recent = self.recent
            known = self.known_sequence
            for key, sequence in items:
                # Never absent meanwhile (a reader would take the forgotten floor).
                recent[key] = max(sequence, recent.get(key, 0))
                recent.move_to_end(key)  # newest last
                known = max(known, sequence)
                if len(recent) > MAX_RECENT_WRITES:
                    _, dropped = recent.popitem(last=False)
                    self.forgotten_sequence = max(self.forgotten_sequence, dropped)
            self.known_sequence = known

    def required_sequence(self, key: str) -> int:
        """The change-log sequence a copy of the store must have replayed before its
        answer for ``key`` may be served: the newest write of ``key`` this process knows
        of (its own, the host's change log, Redis invalidations), or, for a key no longer
        remembered, the newest write it forgot. 0 when it knows of none."""
        return self.recent.get(key, self.forgotten_sequence)

    def _forget_all(self, sequence: int) -> None:
        """Every write up to ``sequence`` counts as known and forgotten (caches cleared
        instead of reading the changes one by one)."""
        with self._recent_lock:
            self.forgotten_sequence = max(self.forgotten_sequence, sequence)
            self.known_sequence = max(self.known_sequence, sequence)

    def refresh(self) -> None:
        """Catch up if another process on the host wrote since we last looked (before a
        decision that must see every acknowledged write, such as a rights check)."""
        if self.beacon.read() != self.applied_sequence:
            self.catch_up()

    def catch_up(self) -> None:
        """Apply writes other processes committed since L1 last looked."""
        with self._catch_up_lock:
            target = self.beacon.read()
            if target <= self.applied_sequence:
                return
            changes = self.store.changes_since(self.applied_sequence, MAX_CATCH_UP_CHANGES)
            if len(changes) >= MAX_CATCH_UP_CHANGES:
                self._clear()
                self._forget_all(target)
                self.applied_sequence = target
                return
            for change in changes:
                self._note_write(change.key, change.sequence)
                self.l1.invalidate(change.key)
                self._forget((change.key,))
                self.applied_sequence = max(self.applied_sequence, change.sequence)
            self.metrics.cache_invalidations.labels("changelog").inc(len(changes))
            self.applied_sequence = max(self.applied_sequence, target)
            with self._recent_lock:
                self.known_sequence = max(self.known_sequence, target)


__all__ = ["Coherence"]
