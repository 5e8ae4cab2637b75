"""Routing reads to replicas without I/O: a copy that has not replayed what the caller
must see is never served, the L2 floor another host left counts as such a write, a
failing copy is taken out and probed back, and the resolver's requirement survives the
bounded recent-writes memory. The copy is a frozen snapshot of the memory store that
says which sequence it has replayed (registry.store.ReplicaReader); PostgreSQL standbys
are exercised in tests/integration/test_read_replicas.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from idnode.v1 import record_pb2
from node.cache.beacon import Beacon
from node.cache.l1 import Entry, L1Cache
from node.cache.l2 import ChangeLog
from node.observe.metrics import Metrics
from node.security.signing import KeyRing
from node.service import coherence as coherence_module
from node.service.coherence import Coherence
from node.service.reads import KnownListing, Reads
from node.service.resolve import Resolver
from node.service.views import ViewSigner
from registry.access.principals import Principal
from registry.errors import Unavailable
from registry.identifier import Handle, Prefix
from registry.record import Record
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore
from registry.values import Value

ADMIN = Principal.of("300:88.118/ADMIN")


def record_of(entry: Entry) -> record_pb2.Record:
    return record_pb2.Record.FromString(entry.payload)


def key(text: str) -> str:
    return Handle.parse(text).key


class FrozenCopy:
    """A copy of ``store`` as it is now: it replays nothing more until :meth:`catch_up`."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.failing = False
        self.records: dict[str, Record] = {}
        self.replayed = 0
        self.catch_up()

    def catch_up(self) -> None:
        self.replayed = self.store.last_sequence()
        self.records = {k: r for k, _ in self.store.list_keys("88.118.8", "", 10_000)
                        if (r := self.store.get(k)) is not None}

    def _check(self) -> None:
        if self.failing:
            raise Unavailable("the store is unavailable: the copy is down")

    def store_id(self) -> str:
        self._check()
        return self.store.store_id()

    def replayed_sequence(self) -> int:
        self._check()
        return self.replayed

    def get_replayed(self, k: str) -> tuple[int, Record | None]:
        self._check()
        return self.replayed, self.records.get(k)

    def list_keys_replayed(self, prefix_key: str, after_key: str,
                           limit: int) -> tuple[int, list[tuple[str, str]]]:
        self._check()
        rows = sorted((k, str(r.handle)) for k, r in self.records.items()
                      if k.startswith(prefix_key + "/") and k > after_key)
        return self.replayed, rows[:limit]

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class FloorOnlyL2:
    """A shared cache holding no answers, only the floors writers left (another host's
    write is known here before its pub/sub message arrives)."""

    def __init__(self) -> None:
        self.floors: dict[str, int] = {}

    @property
    def up(self) -> bool:
        return True

    def get(self, k: str, view: str) -> tuple[Entry, int] | None:
        return None

    def lookup(self, k: str, view: str) -> tuple[tuple[Entry, int] | None, int]:
        return None, self.floors.get(k, 0)

    def set(self, k: str, view: str, entry: Entry, sequence: int,
            read_started: float) -> bool:
        return False

    def invalidate(self, k: str, sequence: int) -> bool:
        self.floors[k] = max(self.floors.get(k, 0), sequence)
        return True

    def invalidate_many(self, items: Sequence[tuple[str, int]]) -> bool:
        for k, sequence in items:
            self.invalidate(k, sequence)
        return True

    def start(self, on_invalidate: Callable[[str, int], None],
              on_resync: Callable[[], None], changes: ChangeLog | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def wait_for(condition: Callable[[], bool]) -> bool:
    """Bounded: the probe thread runs at once, with nothing to wait for."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def routed(store: MemoryStore, copy: FrozenCopy, metrics: Metrics) -> Reads:
    reads = Reads(store, [copy], metrics, retry_after_seconds=0.01)
    assert wait_for(lambda: reads.replicas_in_use == 1)
    return reads


def test_a_copy_behind_the_required_sequence_is_not_served(store: MemoryStore) -> None:
    registrar = Registrar(store, Prefix.parse("88.118"))
    first = registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "one")])
    copy = FrozenCopy(store)
    metrics = Metrics()
    reads = routed(store, copy, metrics)
    try:
        second = registrar.update(ADMIN, "88.118.8/A", [Value(1, "URL", "two")], first.etag)
        record, replayed = reads.get(key("88.118.8/A"), first.sequence)
        assert record is not None and record.version == 1 and replayed == first.sequence
        record, replayed = reads.get(key("88.118.8/A"), second.sequence)
        assert record is not None and record.version == 2 and replayed == 0
        assert count(metrics, "idnode_store_reads_total", target="replica") == 1
        assert count(metrics, "idnode_store_reads_total", target="primary") == 1
        assert count(metrics, "idnode_store_replica_fallbacks_total", reason="lagging") == 1
        # Listings too: a copy behind what is known is not used.
        listing = KnownListing(reads, lambda: second.sequence)
        registrar.register(ADMIN, "88.118.8/B", [Value(1, "URL", "b")])
        assert [shown for _, shown in listing.list_keys("88.118.8", "", 10)] == [
            "88.118.8/A", "88.118.8/B"]
        copy.catch_up()
        assert reads.get(key("88.118.8/A"), second.sequence)[1] == copy.replayed
    finally:
        reads.close()


def test_a_failing_copy_is_taken_out_and_used_again_once_it_answers(
        store: MemoryStore) -> None:
    registrar = Registrar(store, Prefix.parse("88.118"))
    registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "one")])
    copy = FrozenCopy(store)
    metrics = Metrics()
    reads = routed(store, copy, metrics)
    try:
        copy.failing = True
        record, replayed = reads.get(key("88.118.8/A"), 0)  # answered by the primary
        assert record is not None and replayed == 0
        assert reads.replicas_in_use == 0
        assert count(metrics, "idnode_store_replica_fallbacks_total",
                     reason="unavailable") == 1
        assert count(metrics, "idnode_store_replicas_up") == 0
        assert "the copy is down" in reads.out_of_use()[0]
        reads.get(key("88.118.8/A"), 0)  # out of use: not even tried
        assert count(metrics, "idnode_store_replica_fallbacks_total",
                     reason="unavailable") == 1
        copy.failing = False
        assert wait_for(lambda: reads.replicas_in_use == 1)
        assert reads.get(key("88.118.8/A"), 0)[1] == copy.replayed
    finally:
        reads.close()


def resolver_on(store: MemoryStore, reads: Reads, l2: FloorOnlyL2,
                metrics: Metrics) -> Resolver:
    registrar = Registrar(store, Prefix.parse("88.118"))
    coherence = Coherence(store, L1Cache(0, 0), Beacon(None), metrics, l2)
    views = ViewSigner(KeyRing.ephemeral(), metrics, node_id="n",
                       signature_validity_seconds=86400, resign_before_expiry_seconds=3600,
                       l1_max_ttl_seconds=600)
    return Resolver(store, registrar, coherence, views, metrics, negative_ttl_seconds=30,
                    reads=reads)


def test_the_floor_another_host_left_in_l2_keeps_an_older_copy_from_being_served(
        store: MemoryStore) -> None:
    """Another host wrote and acknowledged; its pub/sub message has not arrived, so this
    process knows nothing of the write, but the floor it left in L2 says it happened."""
    other_host = Registrar(store, Prefix.parse("88.118"))
    first = other_host.register(ADMIN, "88.118.8/A", [Value(1, "URL", "one")])
    copy = FrozenCopy(store)
    metrics = Metrics()
    reads = routed(store, copy, metrics)
    l2 = FloorOnlyL2()
    resolver = resolver_on(store, reads, l2, metrics)
    try:
        # Control: with no write known anywhere, the copy answers.
        assert record_of(resolver.public("88.118.8/A")).version == 1
        assert count(metrics, "idnode_store_reads_total", target="replica") == 1
        result = other_host.update(ADMIN, "88.118.8/A", [Value(1, "URL", "two")], first.etag)
        l2.invalidate(key("88.118.8/A"), result.sequence)  # before the acknowledgement
        assert record_of(resolver.public("88.118.8/A")).version == 2
        assert count(metrics, "idnode_store_replica_fallbacks_total", reason="lagging") == 1
    finally:
        reads.close()


def test_a_write_this_process_forgot_still_bounds_what_a_copy_may_answer(
        store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coherence_module, "MAX_RECENT_WRITES", 2)
    metrics = Metrics(enabled=False)
    coherence = Coherence(store, L1Cache(0, 0), Beacon(None), metrics)
    coherence.invalidate_many([("88.118.8/a", 5), ("88.118.8/b", 6)])
    coherence.invalidate("88.118.8/c", 7)  # "a" leaves the memory
    coherence.invalidate("88.118.8/b", 8)  # "b" again: it stays, never absent
    assert coherence.required_sequence("88.118.8/a") == 5  # forgotten, not lost
    assert coherence.required_sequence("88.118.8/b") == 8
    assert coherence.required_sequence("88.118.8/never") == 5
    assert coherence.known_sequence == 8
    coherence.remote_invalidate("88.118.8/d", 9)
    assert coherence.known_sequence == 9 and coherence.required_sequence("88.118.8/d") == 9
    assert coherence.required_sequence("88.118.8/c") == 7  # "c" left for "d"


def test_writes_before_the_process_started_or_while_it_was_deaf_bound_a_copy(
        store: MemoryStore) -> None:
    """It never heard which keys they touched, but it knows they were committed."""
    registrar = Registrar(store, Prefix.parse("88.118"))
    first = registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "one")])
    coherence = Coherence(store, L1Cache(0, 0), Beacon(None), Metrics(enabled=False))
    assert coherence.required_sequence("88.118.8/a") == first.sequence
    assert coherence.known_sequence == first.sequence
    missed = registrar.register(ADMIN, "88.118.8/B", [Value(1, "URL", "b")])
    coherence.resync()  # the Redis subscription was lost and is back
    assert coherence.required_sequence("88.118.8/b") == missed.sequence
    assert coherence.known_sequence == missed.sequence
