"""Coherence: which writes a process reads back from the change log, and which it knows."""

from __future__ import annotations

from typing import Any

from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.observe.metrics import Metrics
from node.service.coherence import Coherence
from registry.access.principals import Principal
from registry.identifier import Prefix
from registry.registrar import BulkRow, Registrar
from registry.stores.memory import MemoryStore
from registry.values import Value

ADMIN = Principal.of("300:88.118/ADMIN")


class ChangeCountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.change_reads = 0

    def changes_since(self, sequence: int, limit: int) -> Any:
        self.change_reads += 1
        return super().changes_since(sequence, limit)


def process(store: MemoryStore, beacon: Beacon) -> tuple[Coherence, Registrar]:
    """A node process: its own L1 and coherence over the shared store and beacon."""
    return (Coherence(store, L1Cache(1000, 10**7), beacon, Metrics(enabled=False)),
            Registrar(store, Prefix.parse("88.118")))


def test_a_process_does_not_read_back_its_own_bulk_writes_from_the_change_log() -> None:
    store, beacon = ChangeCountingStore(), Beacon(None)
    coherence, registrar = process(store, beacon)
    for chunk in range(3):
        results = registrar.register_many(ADMIN, [
            BulkRow(f"88.118.8/P{chunk}-{n}", (Value(1, "URL", "u"),)) for n in range(50)])
        coherence.invalidate_many([(r.key, r.sequence) for r in results
                                   if not isinstance(r, Exception)])
        coherence.refresh()
    assert store.change_reads == 0
    assert coherence.applied_sequence == beacon.read()


def test_a_write_of_another_process_between_is_still_read_from_the_change_log() -> None:
    store, beacon = ChangeCountingStore(), Beacon(None)
    here, registrar = process(store, beacon)
    there, other = process(store, beacon)  # same store and beacon, own L1
    theirs = other.register(ADMIN, "88.118.8/THEIRS", [Value(1, "URL", "t")])
    there.invalidate(theirs.key, theirs.sequence)
    mine = registrar.register(ADMIN, "88.118.8/MINE", [Value(1, "URL", "m")])
    here.invalidate(mine.key, mine.sequence)
    assert here.applied_sequence < mine.sequence  # the gap (their write) is not skipped
    here.refresh()
    assert store.change_reads == 1
    assert here.applied_sequence == mine.sequence
    assert theirs.key in here.recent  # their write was applied here
