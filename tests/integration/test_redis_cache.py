"""The node with a real Redis L2 that is killed, frozen, restarted and tampered with.

Redis is a cache, never the source of truth: whatever happens to it, resolutions keep
answering correctly (from L1 and the store), quickly, and caching resumes on its own.
Nodes run with ``l1_max_entries=0`` where the point is to push every resolve through
Redis; with a warm L1 Redis would not be touched at all. Every test runs against one
server, a Sentinel-watched master with its replica, and a three-master Cluster; "Redis"
killed, frozen or restarted means every data server of the deployment.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from loadtest.redis_ha import RedisDeployment
from node.cache.l2 import FORMAT_VERSION
from tests.conftest import Client, NodeFactory
from tests.integration.helpers import (
    is_not_found,
    l2_hits,
    resolve_version,
    sample,
    store_gets,
    update,
    wait_until,
)

pytestmark = pytest.mark.integration

HANDLES = [f"88.118.8/L2-{i}" for i in range(40)]


def _fill(client: Client) -> dict[str, str]:
    return {h: client.register(h, ("URL", f"https://example.com/{h}")).etag for h in HANDLES}


def test_resolves_never_fail_while_redis_is_killed_under_load(
        node_factory: NodeFactory, redis_any: RedisDeployment) -> None:
    node = node_factory(redis_url=redis_any.url, l1_max_entries=0)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        etags = _fill(client)
        versions = dict.fromkeys(HANDLES, 1)
        failures = 0
        for i in range(3000):
            if i == 1000:
                redis_any.kill()
            handle = HANDLES[i % len(HANDLES)]
            if i % 250 == 0:  # writes during the outage must stay visible at once
                ack = update(client, handle, etags[handle], f"https://example.com/{i}")
                etags[handle], versions[handle] = ack.etag, ack.version
            try:
                version, _ = resolve_version(client, handle)
            except grpc.RpcError:
                failures += 1
                continue
            assert version == versions[handle]
        assert failures == 0
        assert l2_hits(node) > 0  # the first third really went through Redis
        assert sample(node, "idnode_cache_redis_up") == 0
        assert sample(node, "idnode_cache_redis_errors_total") >= 1
    finally:
        client.close()


def test_a_frozen_redis_costs_at_most_one_short_timeout_per_resolve(
        node_factory: NodeFactory, redis_any: RedisDeployment) -> None:
    node = node_factory(redis_url=redis_any.url, l1_max_entries=0, redis_timeout_ms=50,
                        redis_retry_after_ms=200)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        _fill(client)
        for handle in HANDLES:
            resolve_version(client, handle)
        redis_any.freeze()
        latencies = []
        for i in range(600):
            started = time.perf_counter()
            version, _ = resolve_version(client, HANDLES[i % len(HANDLES)], timeout=5)
            latencies.append(time.perf_counter() - started)
            assert version == 1
        latencies.sort()
        assert latencies[-1] < 0.25, f"worst resolve took {latencies[-1] * 1000:.0f} ms"
        # The breaker: only the probes (one per 200 ms) wait for the timeout.
        assert latencies[len(latencies) // 2] < 0.02
        assert sample(node, "idnode_cache_redis_up") == 0
        redis_any.thaw()
        assert wait_until(lambda: node.l2 is not None and node.l2.up, 5)
    finally:
        redis_any.thaw()
        client.close()


def test_after_a_redis_restart_the_node_reconnects_and_caching_resumes(
        node_factory: NodeFactory, redis_any: RedisDeployment) -> None:
    writer = node_factory(redis_url=redis_any.url, redis_retry_after_ms=100)
    reader = node_factory(redis_url=redis_any.url, redis_retry_after_ms=100)
    assert writer.l2 is not None and reader.l2 is not None
    wc = Client(f"127.0.0.1:{writer.grpc_port}")
    rc = Client(f"127.0.0.1:{reader.grpc_port}")
    inspect = redis_any.client()
    prefix = reader.l2.key_prefix
    try:
        etags = _fill(wc)
        assert wait_until(lambda: reader.l2 is not None and reader.l2.subscriptions == 1)
        for handle in HANDLES[:10]:
            resolve_version(rc, handle)

        def cached(handles: list[str]) -> int:
            return sum(bool(inspect.hexists(prefix + h.lower(), "")) for h in handles)

        assert cached(HANDLES[:10]) == 10
        redis_any.restart()
        inspect.close()
        inspect = redis_any.client()
        # Every answer is gone (the repair after the outage may lay floors again).
        assert cached(HANDLES[:10]) == 0
        # Both subscribers come back by themselves and resynchronise L1.
        assert wait_until(lambda: writer.l2 is not None and reader.l2 is not None
                          and writer.l2.subscriptions >= 2 and reader.l2.subscriptions >= 2)
        # Caching resumes: the next cold resolves fill Redis again.
        assert wait_until(lambda: [resolve_version(rc, h) for h in HANDLES[10:20]] != []
                          and cached(HANDLES[10:20]) == 10, 30)
        assert sample(reader, "idnode_cache_redis_up") == 1
        # And invalidations flow again over the new subscription.
        heard = reader.l2.messages
        ack = update(wc, HANDLES[0], etags[HANDLES[0]], "https://example.com/after-restart")
        assert wait_until(lambda: reader.l2 is not None and reader.l2.messages > heard)
        assert resolve_version(rc, HANDLES[0]) == (ack.version, ack.etag)
    finally:
        inspect.close()
        wc.close()
        rc.close()


@pytest.mark.parametrize("garbage", [
    b"",
    b"not ours at all",
    bytes([FORMAT_VERSION + 1]) + b"\x01" + b"\x00" * 40,
    bytes([FORMAT_VERSION]) + b"\x01" + b"\xff" * 200,
])
def test_a_corrupt_value_in_redis_is_a_counted_miss_answered_from_the_store(
        node_factory: NodeFactory, redis_shared: RedisDeployment, garbage: bytes) -> None:
    node = node_factory(redis_url=redis_shared.url, l1_max_entries=0)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        handle = HANDLES[0]
        client.register(handle, ("URL", "https://example.com/real"))
        resolve_version(client, handle)  # fills L2
        assert node.l2 is not None
        key = node.l2.key_prefix + handle.lower()
        tamper = redis_shared.client()
        assert tamper.hexists(key, "")
        tamper.hset(key, "", garbage)
        tamper.close()
        gets = store_gets(node)
        assert resolve_version(client, handle)[0] == 1
        assert store_gets(node) == gets + 1
        assert sample(node, "idnode_cache_l2_corrupt_total") == 1
        assert sample(node, "idnode_cache_redis_up") == 1  # bad data is not an outage
    finally:
        client.close()


def test_a_missing_identifier_is_read_from_the_store_only_a_few_times(
        node_factory: NodeFactory, redis_shared: RedisDeployment) -> None:
    # Two nodes without L1: the "not found" answer is shared through Redis.
    first = node_factory(redis_url=redis_shared.url, l1_max_entries=0)
    second = node_factory(redis_url=redis_shared.url, l1_max_entries=0)
    c1 = Client(f"127.0.0.1:{first.grpc_port}")
    c2 = Client(f"127.0.0.1:{second.grpc_port}")
    handle = "88.118.8/NOT-YET"
    try:
        before = store_gets(first) + store_gets(second)
        for i in range(200):
            with pytest.raises(grpc.RpcError) as err:
                resolve_version(c1 if i % 2 else c2, handle)
            assert is_not_found(err.value)
        assert store_gets(first) + store_gets(second) - before <= 2
        assert l2_hits(first) + l2_hits(second) >= 190
        # Registering it makes it resolvable at once, through both nodes.
        ack = c1.register(handle, ("URL", "https://example.com/now"))
        assert resolve_version(c2, handle) == (1, ack.etag)
        assert resolve_version(c1, handle) == (1, ack.etag)
    finally:
        c1.close()
        c2.close()


def test_nodes_with_their_own_stores_never_serve_each_others_records_from_a_shared_redis(
        node_factory: NodeFactory, redis_shared: RedisDeployment, tmp_path: Path) -> None:
    first = node_factory(tmp_path / "first", redis_url=redis_shared.url)
    second = node_factory(tmp_path / "second", redis_url=redis_shared.url, l1_max_entries=0)
    assert first.store.store_id() != second.store.store_id()
    a, b = Client(f"127.0.0.1:{first.grpc_port}"), Client(f"127.0.0.1:{second.grpc_port}")
    try:
        a.register(HANDLES[0], ("URL", "https://first.example"))
        resolve_version(a, HANDLES[0])  # the first node's signed answer is now in Redis
        assert first.l2 is not None and redis_shared.client().exists(
            first.l2.key_prefix + HANDLES[0].lower())
        with pytest.raises(grpc.RpcError) as err:
            resolve_version(b, HANDLES[0])
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        a.close()
        b.close()
