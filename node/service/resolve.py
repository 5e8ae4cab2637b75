"""The resolve pipeline: validate → L1 → (L2) → store → sign → cache.

The common case, a full public view of an identifier resolved again, is one dict
lookup returning bytes that were serialised and signed when the record version was
first resolved. Misses for one key are collapsed into a single flight, which asks the
shared L2 (Redis, when configured) before it reads the store; an L1 hit never touches
Redis. Every L2 entry carries the change-log sequence it reflects, so an answer older
than a write this process knows about is never taken from L2 (see docs/ARCHITECTURE.md,
"Caching").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future

from node.cache.l1 import VIEW_SEP, Entry
from node.cache.l2 import SharedCache
from node.observe.metrics import Metrics
from node.service.coherence import Coherence
from node.service.reads import Reads
from node.service.views import ViewSigner
from registry.access.data_access import audience_id
from registry.access.grants import EMPTY
from registry.access.principals import Principal
from registry.access.rights import is_secret
from registry.errors import NotFound, PermissionDenied, Unauthenticated, ValuesNotFound
from registry.identifier import Handle
from registry.registrar import Registrar
from registry.store import Store
from registry.views import visible

MAX_ALIASES = 200_000
# Ends the message of a filtered answer whose only matches are values the caller may not
# read: refused (Unauthenticated / PermissionDenied), not "values not found". A message,
# not a flag, so the verdict survives the shared cache's encoding.
_PRIVATE_ONLY = " are private: reading them needs read_value on it"
_FLIGHT_TIMEOUT_SECONDS = 30.0


def view_id(private_ok: bool, types: Collection[str], indexes: Collection[int],
            granted: frozenset[int] = EMPTY) -> str:
    """A canonical name for what a caller gets to see, part of the cache key: whether it
    reads private values, which restricted items it is granted (registry.access.grants:
    every caller granted the same items shares one signed view), and its filter."""
    if not private_ok and not types and not indexes and not granted:
        return ""
    parts = ["p" if private_ok else "a"]
    if granted and not private_ok:
        parts.append("g=" + audience_id(granted))
    if types:
        parts.append("t=" + ",".join(sorted(set(types))))
    if indexes:
        parts.append("i=" + ",".join(str(i) for i in sorted(set(indexes))))
    return ";".join(parts)


class Resolver:
    """Answers resolutions: parse (remembered per spelling), L1, single flight, L2, the
    store, then a signed view (:mod:`node.service.views`) cached back. Invalidation and
    catching up with other processes live in :mod:`node.service.coherence`."""

    def __init__(self, store: Store, registrar: Registrar, coherence: Coherence,
                 views: ViewSigner, metrics: Metrics, *, negative_ttl_seconds: int,
                 monotonic: Callable[[], float] = time.monotonic,
                 reads: Reads | None = None) -> None:
        self.store = store
        # Misses read here: the primary, or a read replica that has replayed enough.
        self.reads = reads or Reads(store, (), metrics, retry_after_seconds=1.0)
        self.registrar = registrar
        self.coherence = coherence
        self.views = views
        self.l1 = coherence.l1
        self.l2 = coherence.l2
        self.beacon = coherence.beacon
        self.metrics = metrics
        self.negative_ttl = negative_ttl_seconds
        self.monotonic = monotonic
        self._aliases: dict[str, Handle] = {}
        self._granted_views: dict[frozenset[int], str] = {}
        self._flights: dict[str, Future[Entry]] = {}  # gathering callers
        self._reading: dict[str, Future[Entry]] = {}  # reading L2 / the store
        self._reading_generation: dict[str, int] = {}  # L1 generation when reading began
        self._flight_lock = threading.Lock()
        self._join_reading = self.l1.max_entries > 0
        # Bound once: the hot path calls these on every request.
        self._l1_get = self.l1.get
        self._beacon_read = coherence.beacon.read

    # --- the pipeline --------------------------------------------------------------------

    def parse(self, text: str) -> Handle:
        """Parse and check that this node serves it; results are remembered per spelling."""
        handle = self._aliases.get(text)
        if handle is None:
            handle = Handle.parse(text)
            self.registrar.check_served(handle)
            if len(self._aliases) >= MAX_ALIASES:
                self._aliases.clear()
            self._aliases[text] = handle
        return handle

    def public(self, text: str) -> Entry:
        """The full public view of ``text``: the hot path."""
        if self._beacon_read() != self.coherence.applied_sequence:
            self.coherence.catch_up()
        handle = self.parse(text)
        entry = self._l1_get(handle.key, self.monotonic())
        if entry is None:
            self.metrics.l1_miss.inc()
            entry = self._load(handle, "", False, (), ())
        elif entry.response is not None:
            self.metrics.l1_hit.inc()
            return entry
        else:
            self.metrics.negative_hit.inc()
        if entry.response is None:
            raise NotFound(entry.message)
        return entry

    def cached_public(self, text: str) -> Entry | None:
        """The full public view of ``text`` when L1 has it current, else None — without
        waiting for anything (no catch-up, no store): for a door's thread that must not
        block (the Handle protocol's UDP loop), which hands a None to a worker."""
        if self._beacon_read() != self.coherence.applied_sequence:
            return None
        handle = self._aliases.get(text)
        if handle is None:
            return None
        entry = self._l1_get(handle.key, self.monotonic())
        if entry is None or entry.response is None:
            return None
        self.metrics.l1_hit.inc()
        return entry

    def resolve(self, text: str, *, principal: Principal | None = None,
                types: Collection[str] = (), indexes: Collection[int] = ()) -> Entry:
        """Any view: private values for principals with rights, filtered by types/indexes."""
        if principal is None and not types and not indexes:
            return self.public(text)
        if self._beacon_read() != self.coherence.applied_sequence:
            self.coherence.catch_up()
        handle = self.parse(text)
        private_ok, granted = self.registrar.audience(principal, handle)
        if types or indexes or private_ok:
            view = view_id(private_ok, types, indexes, granted)
        else:  # the common authenticated case: a name per granted set, built once
            found = self._granted_views.get(granted)
            if found is None:
                if len(self._granted_views) >= MAX_ALIASES:
                    self._granted_views.clear()
                found = self._granted_views[granted] = view_id(False, (), (), granted)
            view = found
        cache_key = handle.key + VIEW_SEP + view if view else handle.key
        entry = self._l1_get(cache_key, self.monotonic())
        if entry is None:
            self.metrics.l1_miss.inc()
            entry = self._load(handle, view, private_ok, types, indexes, granted)
        else:
            self.metrics.l1_hit.inc()
        if entry.response is None:
            if entry.etag:  # the identifier exists, the filter matched nothing visible
                if entry.message.endswith(_PRIVATE_ONLY):
                    if principal is None:
                        raise Unauthenticated(entry.message)
                    raise PermissionDenied(f"{principal.id}: {entry.message}")
                raise ValuesNotFound(entry.message)
            raise NotFound(entry.message)
        return entry

    def _load(self, handle: Handle, view: str, private_ok: bool, types: Collection[str],
              indexes: Collection[int], granted: frozenset[int] = EMPTY) -> Entry:
        """Build the entry once however many threads miss on it at the same time.

        A flight whose L2/store read began before a write was acknowledged may return
        the old answer, and a caller that arrived after the acknowledgement must not get
        it. So a caller joins a flight that is already reading only while no invalidation
        has happened since that read began (the usual case: concurrent misses cost one
        read); otherwise it gathers with others for one new read, which waits for the
        reading flight to finish.

        "No invalidation since" only proves "no write acknowledged since" for writes this
        process hears of before the acknowledgement (its own, and the host's through the
        beacon). Another host's write arrives over pub/sub a little later; a process with
        an L1 already accepts that delay for its L1 hits, so joining is no weaker, but a
        process run without an L1 promises that no acknowledged write is ever read stale
        (docs/ARCHITECTURE.md, "The guarantee"), so it never joins a reading flight.
        """
        cache_key = handle.key + VIEW_SEP + view if view else handle.key
        with self._flight_lock:
            reading = self._reading.get(cache_key)
            if reading is not None and self._join_reading and \
                    self._reading_generation.get(cache_key) == self.l1.invalidations:
                joined: Future[Entry] | None = reading
            else:
                joined = self._flights.get(cache_key)
                if joined is None:
                    flight = self._flights[cache_key] = Future()
        if joined is not None:
            return joined.result(_FLIGHT_TIMEOUT_SECONDS)
        if reading is not None:
            with contextlib.suppress(BaseException):  # not our answer: we read anew
                reading.result(_FLIGHT_TIMEOUT_SECONDS)
        with self._flight_lock:
            self._flights.pop(cache_key, None)  # from here on, newcomers gather anew
            self._reading[cache_key] = flight
            # Read before the store read starts (in _build): an invalidation from now on
            # makes newcomers gather for a fresh read instead of joining this one.
            self._reading_generation[cache_key] = self.l1.invalidations
        try:
            entry = self._build(handle, view, private_ok, types, indexes, granted)
            flight.set_result(entry)
            return entry
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            with self._flight_lock:
                if self._reading.get(cache_key) is flight:
                    del self._reading[cache_key]
                    del self._reading_generation[cache_key]

    def _build(self, handle: Handle, view: str, private_ok: bool, types: Collection[str],
               indexes: Collection[int], granted: frozenset[int] = EMPTY) -> Entry:
        # Read before L2 and the store: any invalidation after this point makes the
        # answer we are about to produce unfit for L1 (L1Cache.put checks it).
        generation = self.l1.invalidations
        # Private and granted views are never shared through Redis: they stay in the
        # process.
        l2 = self.l2 if not private_ok and not granted else None
        floor = 0
        if l2 is not None:
            hit, floor = l2.lookup(handle.key, view)
            if hit is not None:
                entry, sequence = hit
                if sequence >= self.coherence.recent.get(handle.key, 0):
                    self.metrics.l2_hit.inc()
                    self.l1.put(handle.key, view, entry, generation)
                    return entry
                self.metrics.l2_stale.inc()
            self.metrics.l2_miss.inc()
        elif self.l2 is not None and self.reads.replicas_in_use:
            # Private views are not shared through L2, but its floor still tells a
            # replica what it must have replayed.
            floor = self.l2.lookup(handle.key, view)[1]
        read_started = self.monotonic()
        # What the store has committed at least up to, read before the record: a "not
        # found" answer is true as of this sequence (the beacon is bumped after commit).
        observed = self._beacon_read()
        # A replica's answer must include the newest write of this identifier that this
        # process knows of, or that L2's floor records (another host's, acknowledged).
        at_least = max(self.coherence.required_sequence(handle.key), floor)
        started = time.perf_counter()
        record, replayed = self.reads.get(handle.key, at_least)
        self.metrics.store_op("get").observe(time.perf_counter() - started)
        if replayed:  # a replica's answer: exact as of the sequence it had replayed
            observed = replayed
        mono = self.monotonic()
        if record is None:
            entry = Entry(None, mono + self.negative_ttl,
                          message=f"identifier {handle} not found")
            self._keep(l2, handle.key, view, entry, observed, read_started, generation)
            return entry
        restricted = self.registrar.restricted_items(record, private_ok)
        values = visible(record.values, private_ok=private_ok, types=types, indexes=indexes,
                         restricted=restricted, granted=granted)
        if (types or indexes) and not values:
            hidden = not private_ok and any(
                (not v.permissions.public_read or v.index in restricted)
                and (v.type in types or v.index in indexes)
                and not is_secret(v) for v in record.values)
            message = (f"the requested values of {record.handle}{_PRIVATE_ONLY}" if hidden
                       else f"{record.handle} has no values of the requested types or indexes")
            entry = Entry(None, mono + self.negative_ttl, etag=record.etag, message=message)
            self._keep(l2, handle.key, view, entry, record.sequence, read_started,
                       generation)
            return entry
        entry = self.views.sign(record, values, mono)
        self._keep(l2, handle.key, view, entry, record.sequence, read_started, generation)
        return entry

    def _keep(self, l2: SharedCache | None, key: str, view: str, entry: Entry, sequence: int,
              read_started: float, generation: int) -> None:
        """Cache a freshly built answer: L2 first (it refuses answers older than a known
        write), then L1 (which refuses them if an invalidation arrived meanwhile)."""
        if l2 is not None:
            l2.set(key, view, entry, sequence, read_started)
        self.l1.put(key, view, entry, generation)
