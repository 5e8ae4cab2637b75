"""The shared cache behind Sentinel and on a Cluster: invalidations reach every node, and
no acknowledged write is ever read stale, not even while the master is killed and the
sentinels promote its replica.

Nodes share one SQLite store (one data directory) and one Redis. ``remote`` plays a
process on another host: cut off this host's change beacon and without an L1, so only
Redis (the L2 floor and invalidations) stands between it and a stale answer; ``same_host``
has an L1 kept fresh by the beacon and Redis alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest

from loadtest.redis_ha import RedisDeployment, RedisSentinelSet
from node.app import Node
from node.cache.l1 import Entry
from node.cache.l2 import RedisL2
from node.observe.metrics import Metrics
from tests.conftest import Client, NodeFactory
from tests.integration.helpers import l2_hits, resolve_version, sample, update, wait_until
from tests.integration.test_cache_consistency import as_other_host
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

ROUNDS = 1000
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


def _redis_up(node: Node) -> bool:
    return sample(node, "idnode_cache_redis_up") == 1


def _nodes(node_factory: NodeFactory, url: str) -> dict[str, Node]:
    return {
        "writer": node_factory(redis_url=url, redis_retry_after_ms=200),
        "same_host": node_factory(redis_url=url, redis_retry_after_ms=200),
        "remote": as_other_host(node_factory(redis_url=url, l1_max_entries=0,
                                             redis_retry_after_ms=200)),
    }


def _rounds(nodes: dict[str, Node], rounds: int,
            between: Callable[[int], None]) -> list[tuple[int, str, int, int]]:
    """``rounds`` times: one write through the writer, then a resolve through every
    node (whoever reads first alternates, so L2 is filled by one and hit by another),
    while a reader on ``remote`` keeps missing and refilling L2. The stale answers."""
    clients = {name: Client(f"127.0.0.1:{n.grpc_port}") for name, n in nodes.items()}
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(1_000_000):
                if stop.is_set():
                    return
                nodes["remote"].resolver.public(HANDLE)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=hammer, daemon=True)
    stale: list[tuple[int, str, int, int]] = []
    try:
        etag = clients["writer"].register(HANDLE, ("URL", "https://example.com/0")).etag
        thread.start()
        for i in range(1, rounds + 1):
            between(i)
            ack = update(clients["writer"], HANDLE, etag, f"https://example.com/{i}")
            etag = ack.etag
            order = ["remote", "same_host", "writer"]
            if i % 2:
                order.reverse()
            for name in order:
                version, got_etag = resolve_version(clients[name], HANDLE)
                if version != ack.version or got_etag != ack.etag:
                    stale.append((i, name, version, ack.version))
    finally:
        stop.set()
        thread.join(10)
        for c in clients.values():
            c.close()
    assert errors == []
    return stale


def test_a_thousand_rounds_through_sentinel_read_nothing_stale(
        node_factory: NodeFactory, redis_sentinel: RedisSentinelSet) -> None:
    nodes = _nodes(node_factory, redis_sentinel.url)
    assert _rounds(nodes, ROUNDS, lambda i: None) == []
    assert l2_hits(nodes["remote"]) >= ROUNDS // 2
    remote = nodes["remote"].l2
    assert remote is not None and wait_until(lambda: remote.messages >= ROUNDS)


def test_a_thousand_rounds_with_the_master_killed_and_failed_over_read_nothing_stale(
        node_factory: NodeFactory, redis_sentinel: RedisSentinelSet) -> None:
    nodes = _nodes(node_factory, redis_sentinel.url)
    old_port = redis_sentinel.master_port()
    failed_over = threading.Event()
    hits_at_failover: dict[str, float] = {}

    def await_failover() -> None:
        redis_sentinel.wait_failover(old_port)
        failed_over.set()

    watcher = threading.Thread(target=await_failover, daemon=True)

    during_outage: list[int] = []

    def between(i: int) -> None:
        if i == ROUNDS // 4:
            redis_sentinel.kill_master()
            watcher.start()
        if i > ROUNDS // 4 and not failed_over.is_set():
            during_outage.append(i)
        if i == ROUNDS // 2:
            # Rounds went on through the outage and the election; from here on the
            # promoted replica serves, so the L2 must be back in use.
            assert failed_over.wait(30), "the sentinels did not fail over"
            hits_at_failover.update({n: l2_hits(node) for n, node in nodes.items()})

    assert _rounds(nodes, ROUNDS, between) == []
    assert during_outage  # rounds really ran while there was no master
    watcher.join(30)
    for name, node in nodes.items():
        assert node.l2 is not None
        # The breaker opened while the master was gone (the node failed open)...
        assert sample(node, "idnode_cache_redis_errors_total") >= 1, name
        # ...and closed again on the new master, which it reads and fills again.
        assert wait_until(partial(_redis_up, node)), name
        assert node.l2.subscriptions >= 2, name
        assert node.l2.repairs >= 1, name  # recent writes invalidated again first
    assert l2_hits(nodes["remote"]) > hits_at_failover["remote"] + ROUNDS // 10
    new_master = redis_sentinel.master()
    assert new_master.port != old_port and new_master.dbsize() > 0


def test_the_subscription_follows_a_failover_that_left_the_old_master_running(
        node_factory: NodeFactory, redis_sentinel: RedisSentinelSet) -> None:
    writer = node_factory(redis_url=redis_sentinel.url, redis_retry_after_ms=200)
    listener = as_other_host(node_factory(redis_url=redis_sentinel.url,
                                          redis_retry_after_ms=200))
    assert writer.l2 is not None and listener.l2 is not None
    wc = Client(f"127.0.0.1:{writer.grpc_port}")
    lc = Client(f"127.0.0.1:{listener.grpc_port}")
    try:
        assert wait_until(lambda: listener.l2 is not None and listener.l2.subscriptions == 1)
        etag = wc.register(HANDLE, ("URL", "https://example.com/0")).etag
        old_port = redis_sentinel.master_port()
        sentinel = redis_sentinel.sentinel_client()
        try:
            assert sentinel.sentinel_failover("idnode")
        finally:
            sentinel.close()
        redis_sentinel.wait_failover(old_port)
        # The old master still runs (soon a replica); every process moves its
        # subscription and its connections to the new one within about a second.
        assert wait_until(lambda: listener.l2 is not None and listener.l2.subscriptions >= 2
                          and writer.l2 is not None and writer.l2.subscriptions >= 2)
        assert redis_sentinel.master_port() != old_port
        assert resolve_version(lc, HANDLE)[0] == 1  # in the listener's L1 again
        heard = listener.l2.messages
        ack = update(wc, HANDLE, etag, "https://example.com/after-failover")
        assert wait_until(lambda: listener.l2 is not None and listener.l2.messages > heard)
        assert resolve_version(lc, HANDLE) == (ack.version, ack.etag)
    finally:
        wc.close()
        lc.close()


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
