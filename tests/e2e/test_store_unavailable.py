"""A store that cannot take a write answers UNAVAILABLE — bounded, never INTERNAL or a
hang — and the node keeps answering what it can (cached and readable records)."""

from __future__ import annotations

import sqlite3

import grpc
import pytest

from idnode.v1 import resolver_pb2
from tests.conftest import Client, NodeFactory


def test_a_locked_store_is_unavailable_for_writes_while_resolves_go_on(
        node_factory: NodeFactory) -> None:
    node = node_factory(sqlite_busy_timeout_ms=200)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    locker = sqlite3.connect(node.settings.sqlite_path, isolation_level=None)
    try:
        client.register("88.118.8/LOCK-1", ("URL", "https://x"))
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with pytest.raises(grpc.RpcError) as err:
            client.register("88.118.8/LOCK-2", ("URL", "https://y"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        details = err.value.details() or ""
        assert "unavailable" in details and "sqlite" not in details.lower()
        assert node.settings.data_dir not in details
        answer = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/LOCK-1"),
                                         timeout=5)
        assert answer.record.payload
        locker.execute("ROLLBACK")
        client.register("88.118.8/LOCK-2", ("URL", "https://y"))  # and writes come back
    finally:
        locker.close()
        client.close()
