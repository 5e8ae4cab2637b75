"""The mirror's two rules without I/O: a change is applied only when both of its
signatures check out with the primary's keys, and a page of changes commits together
with the position or not at all (the memory store, an ephemeral key ring)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from idnode.v1 import record_pb2, sync_pb2
from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.observe.metrics import Metrics
from node.rpc.wire import change_to_wire, keys_to_wire
from node.security.signing import KeyRing
from node.service.coherence import Coherence
from node.service.mirror import POSITION_META, ChangeCheck, ChangeRefused, Mirror, Position
from node.service.views import ViewSigner
from registry.record import Change, Operation
from registry.stores.memory import MemoryStore
from registry.values import Value

STORE_ID = "primary0store0id"
T = 1_700_000_000


def change(seq: int, op: Operation, handle: str, version: int, *texts: str) -> Change:
    values = tuple(Value(i, "URL", t, 86400, T) for i, t in enumerate(texts, 1))
    return Change(seq, op, handle, handle.lower(), version, values, T, "300:88.118/ADMIN", "")


class Primary:
    """Signs changes as the primary's Sync servicer does."""

    def __init__(self) -> None:
        self.keys = KeyRing.ephemeral()
        self.signer = ViewSigner(self.keys, Metrics(enabled=False), node_id="primary",
                                 signature_validity_seconds=3600,
                                 resign_before_expiry_seconds=60, l1_max_ttl_seconds=60)
        self.fetches = 0

    def wire(self, c: Change, store_id: str = STORE_ID) -> sync_pb2.Change:
        return change_to_wire(c, self.signer.sign_change(c, store_id))

    def published(self) -> Sequence[record_pb2.SigningKey]:
        self.fetches += 1
        return keys_to_wire(self.keys.published())


def test_a_signed_change_verifies_and_yields_the_payloads_values() -> None:
    primary = Primary()
    got = ChangeCheck(primary.published).verify(
        primary.wire(change(7, Operation.REGISTER, "88.118.8/A", 1, "https://a")), STORE_ID)
    assert (got.sequence, got.operation, got.key, got.version) == (
        7, Operation.REGISTER, "88.118.8/a", 1)
    assert [(v.index, v.data, v.timestamp) for v in got.values] == [(1, "https://a", T)]


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda m: setattr(m, "sequence", 8), "signature"),
    (lambda m: setattr(m, "operation", sync_pb2.Change.OPERATION_DELETE), "signature"),
    (lambda m: setattr(m, "store_id", "other"), "not of"),
    (lambda m: m.ClearField("change_signature"), "not signed"),
    (lambda m: setattr(m, "handle", "88.118.8/B"), "another identifier"),
    (lambda m: setattr(m.record, "payload", m.record.payload + b"\x08\x02"), "signature"),
])
def test_an_altered_change_is_refused_naming_the_check(edit: object, reason: str) -> None:
    primary = Primary()
    msg = primary.wire(change(7, Operation.REGISTER, "88.118.8/A", 1, "https://a"))
    edit(msg)  # type: ignore[operator]
    with pytest.raises(ChangeRefused, match=reason) as err:
        ChangeCheck(primary.published).verify(msg, STORE_ID)
    assert err.value.sequence == msg.sequence


def test_a_change_signed_by_another_key_is_refused_and_keys_are_refetched_at_most_once() -> None:
    primary, forger = Primary(), Primary()
    check = ChangeCheck(primary.published, clock=lambda: 100.0)
    check.verify(primary.wire(change(1, Operation.REGISTER, "88.118.8/A", 1, "a")), STORE_ID)
    for seq in (2, 3):
        with pytest.raises(ChangeRefused, match="not among the published keys"):
            check.verify(forger.wire(change(seq, Operation.REGISTER, "88.118.8/B", 1, "b")),
                         STORE_ID)
    assert primary.fetches == 1  # an unknown key id asks again only after KEY_REFRESH


def mirror_on_memory() -> tuple[Mirror, MemoryStore]:
    store = MemoryStore()
    metrics = Metrics()
    coherence = Coherence(store, L1Cache(100, 1 << 20), Beacon(None), metrics)
    return Mirror(store, coherence, metrics), store


def test_a_page_commits_with_its_position_and_versions_match_the_primary() -> None:
    mirror, store = mirror_on_memory()
    mirror.apply([change(1, Operation.REGISTER, "88.118.8/A", 1, "a1"),
                  change(2, Operation.UPDATE, "88.118.8/A", 2, "a2"),
                  change(3, Operation.REGISTER, "88.118.8/B", 1, "b1"),
                  change(4, Operation.DELETE, "88.118.8/B", 0)], STORE_ID)
    record = store.get("88.118.8/a")
    assert record is not None and record.version == 2 and record.values[0].data == "a2"
    assert store.get("88.118.8/b") is None
    assert mirror.position == Position(STORE_ID, 4)
    assert store.meta(POSITION_META) == f"{STORE_ID}:4"
    assert [c.operation for c in store.changes_since(0, 10)] == [
        Operation.REGISTER, Operation.UPDATE, Operation.REGISTER, Operation.DELETE]


@pytest.mark.parametrize("bad", [
    change(3, Operation.REGISTER, "88.118.8/A", 1, "again"),  # exists already
    change(3, Operation.UPDATE, "88.118.8/NOPE", 2, "x"),     # absent
    change(3, Operation.UPDATE, "88.118.8/A", 5, "x"),        # another version
    change(1, Operation.UPDATE, "88.118.8/A", 2, "x"),        # not after the position
])
def test_a_diverging_change_fails_its_whole_page_and_the_position_stays(bad: Change) -> None:
    mirror, store = mirror_on_memory()
    mirror.apply([change(1, Operation.REGISTER, "88.118.8/A", 1, "a1")], STORE_ID)
    with pytest.raises(ChangeRefused):
        mirror.apply([change(2, Operation.REGISTER, "88.118.8/C", 1, "c1"), bad], STORE_ID)
    assert store.get("88.118.8/c") is None
    assert mirror.position == Position(STORE_ID, 1)
    assert store.meta(POSITION_META) == f"{STORE_ID}:1"
    assert store.last_sequence() == 1


def test_a_restarted_mirror_reads_its_position_from_its_store() -> None:
    mirror, store = mirror_on_memory()
    mirror.apply([change(5, Operation.REGISTER, "88.118.8/A", 1, "a1")], STORE_ID)
    again = Mirror(store, mirror.coherence, Metrics())
    assert again.position == Position(STORE_ID, 5)
