"""Cache coherence: after a write is acknowledged, no process serves the old answer.

A write drops the identifier from L2 (and publishes that), from this process's L1 and
bumps the host's change beacon before the caller hears OK. Other processes on the host
see the beacon move and read the change log since they last looked (``catch_up``);
processes on other hosts hear the Redis publication (``remote_invalidate``). Recent
writes are remembered with their sequence so an L2 entry that a failed invalidation
left behind is recognised as old.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.cache.l2 import SharedCache
from node.observe.metrics import Metrics
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
        self.applied_sequence = beacon.read()
        self.recent: OrderedDict[str, int] = OrderedDict()  # O(1) eviction of the oldest
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
        newest = max(sequence for _, sequence in items)
        self.beacon.bump(newest)
        self._applied_own(items, newest)

    def _applied_own(self, items: Sequence[tuple[str, int]], newest: int) -> None:
        """This process's own writes need not be read back from the change log: when they
        are exactly the sequences after :attr:`applied_sequence` (no gap another process
        or thread could hold), they were just applied here, so the mark moves past them.
        Otherwise the next :meth:`refresh` reads the gap as before. Without this, every
        bulk call re-read (and decoded) the previous call's 10,000 changes."""
        with self._catch_up_lock:
            first = self.applied_sequence + 1
            if newest - first + 1 == len(items) and \
                    len({sequence for _, sequence in items if sequence >= first}) == len(items):
                self.applied_sequence = newest

    def remote_invalidate(self, key: str, sequence: int) -> None:
        """Another process (maybe on another host) wrote ``key``: heard over Redis."""
        self._note_write(key, sequence)
        self.l1.invalidate(key)
        self._forget((key,))
        self.metrics.cache_invalidations.labels("redis").inc()

    def resync(self) -> None:
        """Invalidations may have been missed (Redis was unreachable): drop L1."""
        self._clear()

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
            for key, sequence in items:
                recent[key] = max(sequence, recent.pop(key, 0))  # re-inserted: newest last
                if len(recent) > MAX_RECENT_WRITES:
                    recent.popitem(last=False)

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
                self.applied_sequence = target
                return
            for change in changes:
                self._note_write(change.key, change.sequence)
                self.l1.invalidate(change.key)
                self._forget((change.key,))
                self.applied_sequence = max(self.applied_sequence, change.sequence)
            self.metrics.cache_invalidations.labels("changelog").inc(len(changes))
            self.applied_sequence = max(self.applied_sequence, target)


__all__ = ["Coherence"]
