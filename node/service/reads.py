"""Where resolve misses and listings read: a read replica that has replayed every write
the caller must see, else the primary.

Read-your-writes is decided per read with the change-log sequence. A replica answers
with the sequence it has replayed, taken in the same snapshot as the rows
(:class:`registry.store.ReplicaReader`); the caller says which sequence the answer must
include (``at_least``: for a resolve, the newest write of that identifier this process
knows of, see :meth:`node.service.coherence.Coherence.required_sequence` and the
resolver; for a listing, every write this process knows of). A replica answer below it
is thrown away and the primary is read instead (``lagging``); so is a replica that
fails (``unavailable``), which is then left out and probed off the request path with a
doubling back-off until it answers again, for the same store. Nothing here ever waits
for a replica to catch up: a read costs at most one replica query and one primary
query, and the replica query is bounded by its statement timeout.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.observe.logs import event
from node.observe.metrics import Metrics
from registry.errors import IdnodeError
from registry.record import Record
from registry.store import ReplicaReader, Store, StoreDefect

log = logging.getLogger("idnode.store")

# The longest pause between probes of a replica that keeps failing.
MAX_RETRY_AFTER_SECONDS = 30.0
# How often replicas in use are asked how far they have replayed (the lag gauge; also
# finds a dead idle replica before a request does).
SAMPLE_EVERY_SECONDS = 1.0


@dataclass
class _Replica:
    reader: ReplicaReader
    index: int  # its place in database_read_url: logs name this, never the URL
    up: bool = False
    retry_at: float = 0.0
    backoff: float = 0.0
    replayed: int = 0  # the highest sequence seen replayed (only grows while up)
    why: str = ""  # the last failure, logged once per state change


class Reads:
    """Reads for the resolver (``get``) and the registrar's listings (``list_keys``),
    routed to the primary ``store`` or one of ``replicas`` (round robin over those in
    use). Replicas start out of use and are probed at once in the background; a replica
    that serves another store (its id differs from the primary's) is never used."""

    def __init__(self, store: Store, replicas: Sequence[ReplicaReader], metrics: Metrics, *,
                 retry_after_seconds: float,
                 max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.metrics = metrics
        self.retry_after = retry_after_seconds
        self.max_retry_after = max(max_retry_after_seconds, retry_after_seconds)
        self.monotonic = monotonic
        self._replicas = [_Replica(r, i, backoff=retry_after_seconds)
                          for i, r in enumerate(replicas)]
        self._in_use: tuple[_Replica, ...] = ()  # swapped whole: read without the lock
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._store_id = store.store_id() if self._replicas else ""
        self._thread: threading.Thread | None = None
        metrics.replicas_up.set(0)
        if self._replicas:
            self._thread = threading.Thread(target=self._probe_loop, daemon=True,
                                            name="idnode-replica-probe")
            self._thread.start()

    # --- reads ---------------------------------------------------------------------------

    @property
    def replicas_in_use(self) -> int:
        return len(self._in_use)

    def out_of_use(self) -> list[str]:
        """Why each replica is out of use, in database_read_url order ('' when in use)."""
        return ["" if r.up else (r.why or "not probed yet") for r in self._replicas]

    def get(self, key: str, at_least: int) -> tuple[Record | None, int]:
        """The record stored under ``key`` as of a state that includes sequence
        ``at_least``, and the sequence a replica's answer is exact for (0: read from the
        primary, current as of the read)."""
        replica = self._pick()
        if replica is not None:
            try:
                replayed, record = replica.reader.get_replayed(key)
            except (IdnodeError, StoreDefect) as exc:
                self._failed(replica, exc)
            else:
                if self._fresh(replica, replayed, at_least):
                    return record, replayed
        self.metrics.read_primary.inc()
        return self.store.get(key), 0

    def list_keys(self, prefix_key: str, after_key: str, limit: int,
                  at_least: int) -> list[tuple[str, str]]:
        """:meth:`registry.store.RecordStore.list_keys`, as of a state that includes
        sequence ``at_least``."""
        replica = self._pick()
        if replica is not None:
            try:
                replayed, rows = replica.reader.list_keys_replayed(prefix_key, after_key,
                                                                   limit)
            except (IdnodeError, StoreDefect) as exc:
                self._failed(replica, exc)
            else:
                if self._fresh(replica, replayed, at_least):
                    return rows
        self.metrics.read_primary.inc()
        return self.store.list_keys(prefix_key, after_key, limit)

    def _pick(self) -> _Replica | None:
        in_use = self._in_use
        if not in_use:
            return None
        return in_use[next(self._turn) % len(in_use)]

    def _fresh(self, replica: _Replica, replayed: int, at_least: int) -> bool:
        replica.replayed = max(replica.replayed, replayed)
        if replayed >= at_least:
            self.metrics.read_replica.inc()
            return True
        self.metrics.fallback_lagging.inc()
        return False

    def _failed(self, replica: _Replica, exc: BaseException) -> None:
        self.metrics.fallback_unavailable.inc()
        self._take_out(replica, exc)

    # --- replicas in and out of use ------------------------------------------------------

    def max_lag(self, last_sequence: int) -> int:
        """How far the furthest-behind replica in use is from ``last_sequence`` (the
        primary's), as last seen; 0 with none in use."""
        return max((max(0, last_sequence - r.replayed) for r in self._in_use), default=0)

    def _take_out(self, replica: _Replica, exc: BaseException) -> None:
        why = str(getattr(exc, "message", "") or type(exc).__name__)
        with self._lock:
            if not replica.up:
                return
            replica.up = False
            replica.why = why
            replica.backoff = self.retry_after
            replica.retry_at = self.monotonic() + replica.backoff
            self._in_use = tuple(r for r in self._replicas if r.up)
            self.metrics.replicas_up.set(len(self._in_use))
        event(log, "read replica out of use; reading the primary", level=logging.WARNING,
              replica=replica.index, reason=why)
        self._changed.set()

    def _put_in(self, replica: _Replica, replayed: int) -> None:
        with self._lock:
            replica.up = True
            replica.replayed = max(replica.replayed, replayed)
            replica.backoff = self.retry_after
            self._in_use = tuple(r for r in self._replicas if r.up)
            self.metrics.replicas_up.set(len(self._in_use))
        event(log, "read replica in use", replica=replica.index, replayed=replayed)

    def _probe(self, replica: _Replica) -> None:
        """One attempt to bring ``replica`` back: fresh connections, the same store."""
        try:
            replica.reader.reset()
            store_id = replica.reader.store_id()
            if store_id != self._store_id:
                raise StoreDefect("it serves another store (its store id differs from the "
                                  "primary's): check database_read_url")
            replayed = replica.reader.replayed_sequence()
        except (IdnodeError, StoreDefect) as exc:
            why = str(getattr(exc, "message", "") or exc)
            with self._lock:
                first = replica.why != why
                replica.why = why
                replica.retry_at = self.monotonic() + replica.backoff
                replica.backoff = min(replica.backoff * 2, self.max_retry_after)
            if first:
                event(log, "read replica still out of use", level=logging.WARNING,
                      replica=replica.index, reason=why)
            return
        replica.why = ""
        self._put_in(replica, replayed)

    def _sample(self, replica: _Replica) -> None:
        try:
            replica.replayed = max(replica.replayed, replica.reader.replayed_sequence())
        except (IdnodeError, StoreDefect) as exc:
            self._take_out(replica, exc)

    def _probe_loop(self) -> None:
        """Probes replicas out of use when their back-off is over, and samples the ones
        in use; sleeps until the next of those is due (woken when one is taken out)."""
        next_sample = 0.0
        while not self._closed.is_set():
            self._changed.clear()  # a replica taken out from now on cuts the wait short
            now = self.monotonic()
            for replica in self._replicas:
                if self._closed.is_set():
                    return
                if not replica.up and replica.retry_at <= now:
                    self._probe(replica)
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY_SECONDS
                for replica in self._in_use:
                    self._sample(replica)
            due = [r.retry_at for r in self._replicas if not r.up] + [next_sample]
            delay = min(due) - self.monotonic()
            if delay > 0:
                self._changed.wait(min(delay, SAMPLE_EVERY_SECONDS))

    def close(self) -> None:
        """Stop probing and close the replicas' connections (idempotent)."""
        self._closed.set()
        self._changed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        for replica in self._replicas:
            replica.reader.close()
        self._in_use = ()


class KnownListing:
    """Listings through ``reads`` that include every write this process knows of (the
    registrar's :class:`registry.store.KeyListing`)."""

    def __init__(self, reads: Reads, known: Callable[[], int]) -> None:
        self.reads = reads
        self.known = known

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        return self.reads.list_keys(prefix_key, after_key, limit, self.known())


__all__ = ["KnownListing", "Reads"]
