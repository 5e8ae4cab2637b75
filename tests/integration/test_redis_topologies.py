"""The shared cache on every topology (one server, Sentinel, Cluster): invalidations
reach another node, a node starts while Redis is down and uses it once it is up, and a
process that lost Redis replays the writes whose invalidation was lost before it reads
L2 again. The 1,000-round reliability runs are in ``test_redis_failover.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import pytest

from loadtest.redis_ha import RedisDeployment
from node.app import Node
from node.cache.l1 import Entry
from node.cache.l2 import RedisL2
from node.observe.metrics import Metrics
from tests.conftest import Client, NodeFactory
from tests.integration.helpers import (
    as_other_host,
    l2_hits,
    resolve_version,
    sample,
    update,
    wait_until,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

HANDLE = "88.118.8/HA-1"


def test_an_invalidation_from_one_node_reaches_another_on_every_topology(
        node_factory: NodeFactory, redis_shared: RedisDeployment) -> None:
    writer = node_factory(redis_url=redis_shared.url)
    # Another host with an L1: only the Redis message can drop its cached answer.
    listener = as_other_host(node_factory(redis_url=redis_shared.url))
    assert writer.l2 is not None and listener.l2 is not None
    wc = Client(f"127.0.0.1:{writer.grpc_port}")
    lc = Client(f"127.0.0.1:{listener.grpc_port}")
    try:
        assert wait_until(lambda: listener.l2 is not None and listener.l2.subscriptions == 1)
        etag = wc.register(HANDLE, ("URL", "https://example.com/0")).etag
        assert resolve_version(lc, HANDLE)[0] == 1  # now in the listener's L1
        for i in range(1, 6):
            heard = listener.l2.messages
            ack = update(wc, HANDLE, etag, f"https://example.com/{i}")
            etag = ack.etag
            assert wait_until(partial(_heard_more_than, listener, heard))
            assert resolve_version(lc, HANDLE) == (ack.version, ack.etag)
        assert sample(listener, "idnode_cache_invalidations_total", source="redis") >= 5
    finally:
        wc.close()
        lc.close()


def _heard_more_than(node: Node, messages: int) -> bool:
    return node.l2 is not None and node.l2.messages > messages


@dataclass(frozen=True)
class _Change:
    key: str
    sequence: int


class _Log:
    """A change log in memory: the writes the store acknowledged."""

    def __init__(self) -> None:
        self.changes: list[_Change] = []

    def last_sequence(self) -> int:
        return len(self.changes)

    def changes_since(self, sequence: int, limit: int) -> list[_Change]:
        return self.changes[sequence:sequence + limit]


def _entry(tag: bytes) -> Entry:
    return Entry(b"response-" + tag, time.monotonic() + 60, b"payload-" + tag,
                 b"signature-" + tag, "k1", "Ed25519", "s5")


def test_writes_whose_invalidation_was_lost_are_invalidated_again_after_an_outage(
        redis_server: RedisServer) -> None:
    """A write acknowledged while its invalidation never reached Redis (the writer could
    not, or it died with a master before reaching the replica now promoted) leaves an
    old answer in L2. A process that lost Redis replays the store's change log into L2
    before it reads L2 again, so that answer is never served."""
    changes = _Log()
    l2 = RedisL2(redis_server.url, Metrics(), store_id="s1", timeout_ms=200,
                 retry_after_ms=100, floor_ttl_seconds=60)
    key = "88.118.8/lost"
    try:
        changes.changes.append(_Change(key, 1))
        assert l2.set(key, "", _entry(b"v1"), 1, time.monotonic())
        l2.start(lambda k, s: None, lambda: None, changes)
        assert wait_until(lambda: l2.subscriptions == 1)
        changes.changes.append(_Change(key, 2))  # acknowledged; its invalidation lost
        assert l2.get(key, "") is not None  # (the old answer, as any reader would see)
        admin = redis_server.client()
        try:
            admin.client_kill_filter(_type="pubsub")  # this process loses Redis
        finally:
            admin.close()
        assert wait_until(lambda: l2.repairs == 1 and l2.subscriptions == 2)
        assert l2.get(key, "") is None
        assert int(redis_server.client().hget(l2.key_prefix + key, "~seq") or 0) == 2
        # The floor refuses the old answer from a reader that read before the write.
        assert not l2.set(key, "", _entry(b"v1"), 1, time.monotonic())
    finally:
        l2.close()


def test_a_node_started_while_redis_is_down_serves_and_uses_redis_once_it_is_up(
        node_factory: NodeFactory, redis_any: RedisDeployment) -> None:
    redis_any.kill()  # every data server (the sentinels stay)
    node = node_factory(redis_url=redis_any.url, l1_max_entries=0, redis_retry_after_ms=100)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        client.register(HANDLE, ("URL", "https://example.com/0"))
        assert resolve_version(client, HANDLE)[0] == 1  # fails open: from the store
        assert node.l2 is not None and node.l2.subscriptions == 0
        redis_any.restart()
        assert wait_until(lambda: node.l2 is not None and node.l2.subscriptions >= 1, 15)
        hits = l2_hits(node)
        assert wait_until(lambda: resolve_version(client, HANDLE)[0] == 1
                          and l2_hits(node) > hits, 5)
    finally:
        client.close()
