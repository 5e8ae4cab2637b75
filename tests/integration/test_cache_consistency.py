"""No stale reads through the shared cache: writes through one node, reads through others.

Every node here is a separate ``node.app.build`` (its own L1, its own Redis clients and
subscriber) on the same data directory and the same real Redis. One of them plays a
process on *another host*: it cannot see this host's change beacon and has no L1, so
only Redis (the L2 floor and invalidations) stands between it and a stale answer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

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

ROUNDS = 300
HANDLE = "88.118.8/CONSIST-1"


def test_acknowledged_writes_are_never_read_stale_through_other_nodes(
        node_factory: NodeFactory, redis_server: RedisServer) -> None:
    writer = node_factory(redis_url=redis_server.url)
    same_host = node_factory(redis_url=redis_server.url)
    l2_only = node_factory(redis_url=redis_server.url, l1_max_entries=0)
    remote = as_other_host(node_factory(redis_url=redis_server.url, l1_max_entries=0))
    clients = {name: Client(f"127.0.0.1:{n.grpc_port}") for name, n in
               (("writer", writer), ("same_host", same_host), ("l2_only", l2_only),
                ("remote", remote))}
    stop = threading.Event()
    hammer_errors: list[BaseException] = []

    def hammer(node: Node) -> None:
        # Concurrent readers keep missing and refilling L2 while writes land, which is
        # exactly when a slow reader could put an old answer back after a delete.
        try:
            for _ in range(1_000_000):
                if stop.is_set():
                    return
                node.resolver.public(HANDLE)
        except BaseException as exc:
            hammer_errors.append(exc)

    try:
        etag = clients["writer"].register(HANDLE, ("URL", "https://example.com/0")).etag
        threads = [threading.Thread(target=hammer, args=(n,), daemon=True)
                   for n in (l2_only, remote, same_host)]
        for t in threads:
            t.start()
        stale: list[tuple[int, str, int, int]] = []
        for i in range(1, ROUNDS + 1):
            ack = update(clients["writer"], HANDLE, etag, f"https://example.com/{i}")
            etag = ack.etag
            # Alternate who reads first, so L2 is filled by one node and hit by another.
            order = ["remote", "l2_only", "same_host", "writer"]
            if i % 2:
                order.reverse()
            for name in order:
                version, got_etag = resolve_version(clients[name], HANDLE)
                if version != ack.version or got_etag != ack.etag:
                    stale.append((i, name, version, ack.version))
        assert stale == []
    finally:
        stop.set()
        for c in clients.values():
            c.close()
    assert hammer_errors == []
    # The Redis path really carried the load: entries in Redis, hits from L2 on every
    # node, and invalidations heard over pub/sub by the nodes that did not write.
    assert redis_server.dbsize() > 0
    for n in (writer, same_host, l2_only, remote):
        assert l2_hits(n) > 0
    assert l2_hits(remote) >= ROUNDS // 2
    assert writer.l2 is not None and remote.l2 is not None and same_host.l2 is not None
    assert wait_until(lambda: remote.l2 is not None and remote.l2.messages >= ROUNDS)
    assert same_host.l2.messages >= ROUNDS
    assert writer.l2.messages == 0  # its own messages are skipped: applied before the ack
    assert sample(remote, "idnode_cache_redis_up") == 1


def _entry(seconds: float, tag: bytes) -> Entry:
    return Entry(b"response-" + tag, time.monotonic() + seconds, b"payload-" + tag,
                 b"signature-" + tag, "k1", "Ed25519", "s5")


def test_an_answer_older_than_an_invalidation_is_refused_by_l2(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """The slow-reader race, played deterministically: a reader read version 5 from the
    store, the writer committed 6 and invalidated, then the reader tries to fill L2."""
    l2 = RedisL2(redis_server.url, Metrics(), store_id="s1", timeout_ms=200, retry_after_ms=1000,
                 floor_ttl_seconds=60)
    other = RedisL2(redis_server.url, Metrics(), store_id="s1", timeout_ms=200, retry_after_ms=1000,
                    floor_ttl_seconds=60)
    key = "88.118.8/race"
    try:
        started = time.monotonic()
        assert l2.invalidate(key, 6)
        assert not l2.set(key, "", _entry(60, b"old"), 5, started)
        assert other.get(key, "") is None
        # A newer answer is accepted and raises the floor; an older one cannot replace it.
        assert l2.set(key, "", _entry(60, b"new"), 7, time.monotonic())
        assert not l2.set(key, "", _entry(60, b"old"), 6, time.monotonic())
        hit = other.get(key, "")
        assert hit is not None and hit[0].response == b"response-new" and hit[1] == 7
        # An invalidation never lowers the floor, even when it arrives out of order.
        assert l2.invalidate(key, 3)
        assert not l2.set(key, "", _entry(60, b"old"), 6, time.monotonic())
        assert int(redis_server.client().hget(l2.key_prefix + key, "~seq") or 0) == 7
        # A reader slower than half the floor's lifetime does not write at all.
        assert not l2.set(key, "a", _entry(60, b"late"), 9, time.monotonic() - 31)
    finally:
        l2.close()
        other.close()
