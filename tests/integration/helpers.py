"""Small helpers shared by the Redis integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from node.cache.beacon import Beacon
from tests.conftest import ADMIN, Client


def sample(node: Node, name: str, **labels: str) -> float:
    """One sample of the node's Prometheus registry (0 when absent)."""
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


def store_gets(node: Node) -> float:
    return sample(node, "idnode_store_query_duration_seconds_count", operation="get")


def l2_hits(node: Node) -> float:
    return sample(node, "idnode_cache_hits_total", layer="l2")


def resolve_version(client: Client, handle: str, timeout: float = 5.0) -> tuple[int, str]:
    """The version inside the signed payload and the etag the node answered with."""
    response = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                       timeout=timeout)
    return record_pb2.Record.FromString(response.record.payload).version, response.etag


def update(client: Client, handle: str, etag: str, text: str) -> registry_pb2.UpdateResponse:
    response: registry_pb2.UpdateResponse = client.registry.Update(
        registry_pb2.UpdateRequest(handle=handle, etag=etag,
                                   values=[record_pb2.Value(index=1, type="URL", text=text)]),
        metadata=ADMIN, timeout=10)
    return response


def wait_until(condition: Callable[[], bool], timeout_seconds: float = 10.0,
               poll_seconds: float = 0.02) -> bool:
    """Poll ``condition`` for at most ``timeout_seconds`` (tests stay bounded)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_seconds)
    return condition()


def is_not_found(exc: grpc.RpcError) -> bool:
    return bool(exc.code() == grpc.StatusCode.NOT_FOUND)


def as_other_host(node: Node) -> Node:
    """Cut ``node`` off this host's change beacon, as if it ran elsewhere."""
    beacon = Beacon(None)
    node.resolver.beacon = node.resolver.coherence.beacon = beacon
    node.resolver._beacon_read = beacon.read
    node.resolver.coherence.applied_sequence = 0
    return node
