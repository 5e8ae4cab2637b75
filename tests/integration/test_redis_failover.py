"""The 1,000-round reliability runs through Sentinel: writes through one node, resolves
through the others, 0 stale answers — steady, and with the master killed mid-run while
the sentinels promote its replica (the breaker fails open meanwhile; after the failover
L2 is used again). Also a failover that leaves the old master running.

Nodes share one SQLite store (one data directory) and one Redis. ``remote`` plays a
process on another host: cut off this host's change beacon and without an L1, so only
Redis (the L2 floor and invalidations) stands between it and a stale answer; ``same_host``
has an L1 kept fresh by the beacon and Redis alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import pytest

from loadtest.redis_ha import RedisSentinelSet
from node.app import Node
from tests.conftest import Client, NodeFactory
from tests.integration.helpers import (
    as_other_host,
    l2_hits,
    resolve_version,
    sample,
    update,
    wait_until,
)

pytestmark = pytest.mark.integration

ROUNDS = 1000
HANDLE = "88.118.8/HA-1"


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


@pytest.mark.slow
def test_a_thousand_rounds_through_sentinel_read_nothing_stale(
        node_factory: NodeFactory, redis_sentinel: RedisSentinelSet) -> None:
    nodes = _nodes(node_factory, redis_sentinel.url)
    assert _rounds(nodes, ROUNDS, lambda i: None) == []
    assert l2_hits(nodes["remote"]) >= ROUNDS // 2
    remote = nodes["remote"].l2
    assert remote is not None and wait_until(lambda: remote.messages >= ROUNDS)


@pytest.mark.slow
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
