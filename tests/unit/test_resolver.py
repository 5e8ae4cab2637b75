"""The resolve pipeline without I/O: caching, single flight, negative answers, views,
invalidation from other processes, nonce answers across a key rotation."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from idnode.v1 import record_pb2, resolver_pb2
from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.observe.metrics import Metrics
from node.rpc.wire import keys_to_wire
from node.security.signing import KeyRing, KeySigner, PublishedKey
from node.service.coherence import Coherence
from node.service.resolve import Resolver
from node.service.views import ViewSigner
from node.verify import verify
from registry.access.principals import Principal
from registry.errors import NotFound, ValuesNotFound
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore
from registry.values import Permissions, Value

ADMIN = Principal.of("300:88.118/ADMIN")


class CountingStore(MemoryStore):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.reads = 0
        self.delay = delay
        self.reading = threading.Event()  # set once a read has taken its snapshot
        self.gate: threading.Event | None = None  # when set, reads answer only once it opens

    def get(self, key: str) -> Any:
        """Reads, then takes ``delay`` (or waits for ``gate``) to answer: a slow store
        whose answer may be old by the time it arrives."""
        self.reads += 1
        found = super().get(key)
        self.reading.set()
        gate = self.gate
        if gate is not None:
            assert gate.wait(5), "the test never opened the gate"
        else:
            time.sleep(self.delay)
        return found


def make(store: MemoryStore | None = None, beacon: Beacon | None = None,
         keys: KeyRing | None = None, l1_entries: int = 1000) -> tuple[Resolver, Registrar]:
    store = store or CountingStore()
    registrar = Registrar(store, Prefix.parse("88.118"))
    metrics = Metrics(enabled=False)
    coherence = Coherence(store, L1Cache(l1_entries, 10**7), beacon or Beacon(None), metrics)
    views = ViewSigner(keys or KeyRing.ephemeral(), metrics, node_id="n",
                       signature_validity_seconds=86400, resign_before_expiry_seconds=3600,
                       l1_max_ttl_seconds=600)
    resolver = Resolver(store, registrar, coherence, views, metrics, negative_ttl_seconds=30)
    return resolver, registrar


def record_of(entry: Any) -> record_pb2.Record:
    return record_pb2.Record.FromString(entry.payload)


def test_a_hit_returns_the_same_bytes_without_reading_the_store() -> None:
    store = CountingStore()
    resolver, registrar = make(store)
    registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "u")])
    first = resolver.public("88.118.8/A")
    second = resolver.public("88.118.8/a")
    assert first.response == second.response and store.reads == 1


def test_concurrent_misses_cause_one_store_read() -> None:
    store = CountingStore(delay=0.05)
    resolver, registrar = make(store)
    registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "u")])
    threads = [threading.Thread(target=resolver.public, args=("88.118.8/A",))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert store.reads == 1


def test_not_found_is_cached_until_a_registration_invalidates_it() -> None:
    store = CountingStore()
    resolver, registrar = make(store)
    for _ in range(5):
        with pytest.raises(NotFound):
            resolver.public("88.118.8/LATER")
    assert store.reads == 1
    result = registrar.register(ADMIN, "88.118.8/LATER", [Value(1, "URL", "u")])
    resolver.coherence.invalidate(result.key, result.sequence)
    assert record_of(resolver.public("88.118.8/LATER")).handle == "88.118.8/LATER"


def test_a_write_in_another_process_is_seen_through_the_shared_beacon() -> None:
    store, beacon = CountingStore(), Beacon(None)
    here, registrar = make(store, beacon)
    there, _ = make(store, beacon)  # another process: own L1, same store and beacon
    first = registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "v1")])
    assert record_of(here.public("88.118.8/A")).version == 1
    second = registrar.update(ADMIN, "88.118.8/A", [Value(1, "URL", "v2")], first.etag)
    there.coherence.invalidate(second.key, second.sequence)
    assert record_of(here.public("88.118.8/A")).version == 2


def test_private_values_and_filters_are_separate_views() -> None:
    resolver, registrar = make()
    private = Permissions(True, True, False, False)
    registrar.register(ADMIN, "88.118.8/P", [Value(1, "URL", "u"), Value(2, "batchNo", "B7",
                                                                       permissions=private)])
    assert [v.index for v in record_of(resolver.public("88.118.8/P")).values] == [1]
    full = resolver.resolve("88.118.8/P", principal=ADMIN)
    assert [v.index for v in record_of(full).values] == [1, 2]
    only = resolver.resolve("88.118.8/P", principal=ADMIN, types=["batchNo"])
    assert [v.index for v in record_of(only).values] == [2]
    with pytest.raises(ValuesNotFound):
        resolver.resolve("88.118.8/P", types=["nothing"])
    outsider = Principal.of("300:88.118.9/ADMIN")
    assert [v.index for v in record_of(resolver.resolve("88.118.8/P",
                                                        principal=outsider)).values] == [1]


def test_nonce_answers_after_a_rotation_are_signed_by_one_key() -> None:
    keys = KeyRing.ephemeral()
    resolver, registrar = make(keys=keys)
    registrar.register(ADMIN, "88.118.8/N", [Value(1, "URL", "u")])
    cached = resolver.public("88.118.8/N")  # signed by the first key
    old = keys.published()[0]
    new = KeySigner.generate("Ed25519")
    keys.active = new
    keys._published = [PublishedKey(old.key_id, old.algorithm, old.public_der,
                                    old.not_before, None, False),
                       PublishedKey(new.key_id, new.algorithm, new.public_key_der(), 0,
                                    None, True)]
    nonce = b"n" * 16
    response = resolver_pb2.ResolveResponse.FromString(resolver.views.with_nonce(cached, nonce))
    assert response.record.key_id == new.key_id
    verify(response.record, keys_to_wire(keys.published()), nonce=nonce,
           nonce_signature=response.nonce_signature)
    assert response.record.payload == cached.payload  # same view, signed again


def test_a_caller_after_an_acknowledged_write_never_joins_an_older_read() -> None:
    store = CountingStore()
    resolver, registrar = make(store)
    first = registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "v1")])
    gate = store.gate = threading.Event()
    store.reading.clear()
    slow: list[int] = []
    reader = threading.Thread(target=lambda: slow.append(
        record_of(resolver.public("88.118.8/A")).version))
    reader.start()
    assert store.reading.wait(5)  # the slow read of version 1 is under way
    store.gate = None
    second = registrar.update(ADMIN, "88.118.8/A", [Value(1, "URL", "v2")], first.etag)
    resolver.coherence.invalidate(second.key, second.sequence)  # ... acknowledged here
    gate.set()  # the old read now answers (version 1) ...
    assert record_of(resolver.public("88.118.8/A")).version == 2  # ... not to a newcomer
    reader.join(5)
    assert slow == [1]  # the reader that started before the write may see the old one


def test_without_an_l1_a_write_not_yet_heard_of_never_reaches_a_later_caller() -> None:
    # Another host's write: committed and acknowledged, but this process has not heard
    # the pub/sub message yet, so nothing here was invalidated.
    store = CountingStore()
    resolver, registrar = make(store, l1_entries=0)
    first = registrar.register(ADMIN, "88.118.8/A", [Value(1, "URL", "v1")])
    gate = store.gate = threading.Event()
    store.reading.clear()
    slow: list[int] = []
    reader = threading.Thread(target=lambda: slow.append(
        record_of(resolver.public("88.118.8/A")).version))
    reader.start()
    assert store.reading.wait(5)  # the slow read of version 1 is under way
    store.gate = None
    registrar.update(ADMIN, "88.118.8/A", [Value(1, "URL", "v2")], first.etag)
    late: list[int] = []
    newcomer = threading.Thread(target=lambda: late.append(
        record_of(resolver.public("88.118.8/A")).version))
    newcomer.start()
    time.sleep(0.05)  # let the newcomer reach the flight table
    gate.set()
    reader.join(5)
    newcomer.join(5)
    assert slow == [1] and late == [2]


class ForgetCounter:
    """A derived cache (like remembered credentials) that counts what it is told to drop."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []
        self.cleared = 0

    def forget(self, keys: Any) -> None:
        self.forgotten.extend(keys)

    def clear(self) -> None:
        self.cleared += 1


def test_a_node_started_on_a_store_with_history_does_not_replay_it_after_its_first_write(
) -> None:
    store = CountingStore()
    registrar = Registrar(store, Prefix.parse("88.118"))
    for n in range(20):  # history written before this process started
        registrar.register(ADMIN, f"88.118.8/OLD-{n}", [Value(1, "URL", "u")])
    derived = ForgetCounter()
    beacon = Beacon(None)  # a PostgreSQL node's beacon: in process, starts empty
    coherence = Coherence(store, L1Cache(1000, 10**7), beacon, Metrics(enabled=False),
                          derived=[derived])
    assert beacon.read() == store.last_sequence()
    written = registrar.register(ADMIN, "88.118.8/NEW", [Value(1, "URL", "u")])
    coherence.invalidate(written.key, written.sequence)
    coherence.refresh()
    assert set(derived.forgotten) == {written.key}  # nothing from before the start
    assert derived.cleared == 0
