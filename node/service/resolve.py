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
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future

from idnode.v1 import record_pb2, resolver_pb2
from node.cache.beacon import Beacon
from node.cache.l1 import VIEW_SEP, Entry, L1Cache
from node.cache.l2 import SharedCache
from node.observe.metrics import Metrics
from node.rpc.wire import record_to_wire
from node.security.signing import KeyRing
from registry.access.principals import Principal
from registry.errors import InvalidArgument, NotFound, ValuesNotFound
from registry.identifier import Handle
from registry.registrar import Registrar
from registry.store import Store
from registry.views import visible

MAX_ALIASES = 200_000
MAX_NONCE_BYTES = 256
# When the change log moved by more than this since L1 last looked, dropping the whole
# L1 is cheaper than reading every change.
MAX_CATCH_UP_CHANGES = 10_000
_FLIGHT_TIMEOUT_SECONDS = 30.0
# Keys written recently (and the sequence of that write), so an L2 entry that a failed
# Redis invalidation left behind is recognised as old by every process on the host.
MAX_RECENT_WRITES = 65_536


_NONCE_SIGNATURE_TAG = bytes([(3 << 3) | 2])  # ResolveResponse.nonce_signature, bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def view_id(private_ok: bool, types: Collection[str], indexes: Collection[int]) -> str:
    """A canonical name for what a caller gets to see, part of the cache key."""
    if not private_ok and not types and not indexes:
        return ""
    parts = ["p" if private_ok else "a"]
    if types:
        parts.append("t=" + ",".join(sorted(set(types))))
    if indexes:
        parts.append("i=" + ",".join(str(i) for i in sorted(set(indexes))))
    return ";".join(parts)


class Resolver:
    """Answers resolutions from the caches, the store and the key ring."""

    def __init__(self, store: Store, keys: KeyRing, registrar: Registrar, l1: L1Cache,
                 beacon: Beacon, metrics: Metrics, *, node_id: str,
                 signature_validity_seconds: int, resign_before_expiry_seconds: int,
                 l1_max_ttl_seconds: int, negative_ttl_seconds: int,
                 l2: SharedCache | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.keys = keys
        self.registrar = registrar
        self.l1 = l1
        self.l2 = l2
        self.beacon = beacon
        self.metrics = metrics
        self.node_id = node_id
        self.validity = signature_validity_seconds
        self.resign_margin = resign_before_expiry_seconds
        self.l1_max_ttl = l1_max_ttl_seconds
        self.negative_ttl = negative_ttl_seconds
        self.clock = clock
        self.monotonic = monotonic
        self._aliases: dict[str, Handle] = {}
        self._flights: dict[str, Future[Entry]] = {}  # gathering callers
        self._reading: dict[str, Future[Entry]] = {}  # reading L2 / the store
        self._reading_generation: dict[str, int] = {}  # L1 generation when reading began
        self._flight_lock = threading.Lock()
        self._catch_up_lock = threading.Lock()
        self.applied_sequence = beacon.read()
        self._recent: OrderedDict[str, int] = OrderedDict()  # O(1) eviction of the oldest
        self._recent_lock = threading.Lock()
        # Bound once: the hot path calls these on every request.
        self._l1_get = l1.get
        self._beacon_read = beacon.read

    # --- invalidation --------------------------------------------------------------------

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
        self.metrics.cache_invalidations.labels("local").inc(len(items))
        self.beacon.bump(max(sequence for _, sequence in items))

    def remote_invalidate(self, key: str, sequence: int) -> None:
        """Another process (maybe on another host) wrote ``key``: heard over Redis."""
        self._note_write(key, sequence)
        self.l1.invalidate(key)
        self.metrics.cache_invalidations.labels("redis").inc()

    def resync(self) -> None:
        """Invalidations may have been missed (Redis was unreachable): drop L1."""
        self.l1.clear()

    def _note_write(self, key: str, sequence: int) -> None:
        self._note_writes(((key, sequence),))

    def _note_writes(self, items: Iterable[tuple[str, int]]) -> None:
        with self._recent_lock:
            recent = self._recent
            for key, sequence in items:
                recent[key] = max(sequence, recent.pop(key, 0))  # re-inserted: newest last
                if len(recent) > MAX_RECENT_WRITES:
                    recent.popitem(last=False)

    def catch_up(self) -> None:
        """Apply writes other processes committed since L1 last looked."""
        with self._catch_up_lock:
            target = self._beacon_read()
            if target <= self.applied_sequence:
                return
            changes = self.store.changes_since(self.applied_sequence, MAX_CATCH_UP_CHANGES)
            if len(changes) >= MAX_CATCH_UP_CHANGES:
                self.l1.clear()
                self.applied_sequence = target
                return
            for change in changes:
                self._note_write(change.key, change.sequence)
                self.l1.invalidate(change.key)
                self.applied_sequence = max(self.applied_sequence, change.sequence)
            self.metrics.cache_invalidations.labels("changelog").inc(len(changes))
            self.applied_sequence = max(self.applied_sequence, target)

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
        if self._beacon_read() != self.applied_sequence:
            self.catch_up()
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

    def resolve(self, text: str, *, principal: Principal | None = None,
                types: Collection[str] = (), indexes: Collection[int] = ()) -> Entry:
        """Any view: private values for principals with rights, filtered by types/indexes."""
        if principal is None and not types and not indexes:
            return self.public(text)
        if self._beacon_read() != self.applied_sequence:
            self.catch_up()
        handle = self.parse(text)
        private_ok = self.registrar.can_read_private(principal, handle)
        view = view_id(private_ok, types, indexes)
        cache_key = handle.key + VIEW_SEP + view if view else handle.key
        entry = self._l1_get(cache_key, self.monotonic())
        if entry is None:
            self.metrics.l1_miss.inc()
            entry = self._load(handle, view, private_ok, types, indexes)
        else:
            self.metrics.l1_hit.inc()
        if entry.response is None:
            if entry.etag:  # the identifier exists, the filter matched nothing
                raise ValuesNotFound(entry.message)
            raise NotFound(entry.message)
        return entry

    def with_nonce(self, entry: Entry, nonce: bytes) -> bytes:
        """A response whose nonce_signature binds ``nonce`` to this exact payload."""
        if len(nonce) > MAX_NONCE_BYTES:
            raise InvalidArgument(f"nonce is longer than {MAX_NONCE_BYTES} bytes")
        signer = self.keys.active
        digest = hashlib.sha256(entry.payload).digest()
        self.metrics.sign_nonce.inc()
        signature = signer.sign(nonce + digest)
        if signer.key_id == entry.key_id:
            # Appending a field to a serialised message is valid protobuf: the cached
            # answer is reused as is, only nonce_signature is added after it.
            response = entry.response or b""
        else:
            # The view was signed before a key rotation: both signatures must come from
            # the same key, so the payload is signed again with the active one.
            self.metrics.sign_view.inc()
            record = record_pb2.SignedRecord(payload=entry.payload,
                                             signature=signer.sign(entry.payload),
                                             key_id=signer.key_id, algorithm=signer.algorithm)
            response = resolver_pb2.ResolveResponse(record=record,
                                                     etag=entry.etag).SerializeToString()
        return response + _NONCE_SIGNATURE_TAG + _varint(len(signature)) + signature

    def _load(self, handle: Handle, view: str, private_ok: bool, types: Collection[str],
              indexes: Collection[int]) -> Entry:
        """Build the entry once however many threads miss on it at the same time.

        A flight whose L2/store read began before a write was acknowledged may return
        the old answer, and a caller that arrived after the acknowledgement must not get
        it. So a caller joins a flight that is already reading only while no invalidation
        has happened since that read began (the usual case: concurrent misses cost one
        read); otherwise it gathers with others for one new read, which waits for the
        reading flight to finish.
        """
        cache_key = handle.key + VIEW_SEP + view if view else handle.key
        with self._flight_lock:
            reading = self._reading.get(cache_key)
            if reading is not None and \
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
            entry = self._build(handle, view, private_ok, types, indexes)
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
               indexes: Collection[int]) -> Entry:
        # Read before L2 and the store: any invalidation after this point makes the
        # answer we are about to produce unfit for L1 (L1Cache.put checks it).
        generation = self.l1.invalidations
        # Private views are never shared through Redis: they stay in the process.
        l2 = self.l2 if not private_ok else None
        if l2 is not None:
            hit = l2.get(handle.key, view)
            if hit is not None:
                entry, sequence = hit
                if sequence >= self._recent.get(handle.key, 0):
                    self.metrics.l2_hit.inc()
                    self.l1.put(handle.key, view, entry, generation)
                    return entry
                self.metrics.l2_stale.inc()
            self.metrics.l2_miss.inc()
        read_started = self.monotonic()
        # What the store has committed at least up to, read before the record: a "not
        # found" answer is true as of this sequence (the beacon is bumped after commit).
        observed = self._beacon_read()
        started = time.perf_counter()
        record = self.store.get(handle.key)
        self.metrics.store_op("get").observe(time.perf_counter() - started)
        mono = self.monotonic()
        if record is None:
            entry = Entry(None, mono + self.negative_ttl,
                          message=f"identifier {handle} not found")
            self._keep(l2, handle.key, view, entry, observed, read_started, generation)
            return entry
        values = visible(record.values, private_ok=private_ok, types=types, indexes=indexes)
        if (types or indexes) and not values:
            entry = Entry(None, mono + self.negative_ttl, etag=record.etag,
                          message=f"{record.handle} has no values of the requested "
                                  "types or indexes")
            self._keep(l2, handle.key, view, entry, record.sequence, read_started,
                       generation)
            return entry
        now = int(self.clock())
        signer = self.keys.active
        payload = record_to_wire(record, values, node_id=self.node_id, signed_at=now,
                                 expires_at=now + self.validity).SerializeToString()
        signature = signer.sign(payload)
        self.metrics.sign_view.inc()
        signed = record_pb2.SignedRecord(payload=payload, signature=signature,
                                         key_id=signer.key_id, algorithm=signer.algorithm)
        response = resolver_pb2.ResolveResponse(record=signed, etag=record.etag)
        ttl = min(self.l1_max_ttl, record.min_ttl(), self.validity - self.resign_margin)
        entry = Entry(response.SerializeToString(), mono + ttl, payload, signature,
                      signer.key_id, signer.algorithm, record.etag)
        self._keep(l2, handle.key, view, entry, record.sequence, read_started, generation)
        return entry

    def _keep(self, l2: SharedCache | None, key: str, view: str, entry: Entry, sequence: int,
              read_started: float, generation: int) -> None:
        """Cache a freshly built answer: L2 first (it refuses answers older than a known
        write), then L1 (which refuses them if an invalidation arrived meanwhile)."""
        if l2 is not None:
            l2.set(key, view, entry, sequence, read_started)
        self.l1.put(key, view, entry, generation)
