"""Gauges that dashboards and `idnode top` read follow the node's state."""

from __future__ import annotations

from idnode.v1 import resolver_pb2
from registry.access.principals import Principal
from registry.values import Value
from tests.conftest import Client, NodeFactory
from tests.servers import wait_until

NODE_ADMIN = Principal.of("300:88.118/ADMIN")


def test_cache_and_store_gauges_follow_state_including_other_processes_writes(
        node_factory: NodeFactory) -> None:
    node = node_factory(store_check_interval_seconds=0.1)

    def sample(name: str) -> float:
        return node.metrics.registry.get_sample_value(name) or 0.0

    client = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        client.register("88.118.8/GA-1", ("URL", "x"))
        client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/GA-1"), timeout=5)
        wait_until(lambda: sample("idnode_cache_l1_entries") == 1,
                   message="idnode_cache_l1_entries never showed the cached answer")
        # A write straight to the store, as another worker process would make it.
        before = sample("idnode_registry_identifiers")
        node.registrar.register(NODE_ADMIN, "88.118.8/GA-2", [Value(1, "URL", "y")])
        wait_until(lambda: sample("idnode_registry_identifiers") == before + 1,
                   message="idnode_registry_identifiers missed another process's write")
    finally:
        client.close()
