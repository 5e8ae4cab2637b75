"""Shared fixtures: real nodes on 127.0.0.1:0 built through the composition root."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, registry_pb2_grpc, resolver_pb2_grpc
from node.app import Node, build
from node.settings import load

ADMIN_SECRET = "test-admin-secret-0001"
NODE_PREFIX = "88.118"


def basic(identity: str, secret: str) -> tuple[tuple[str, str], ...]:
    user = urllib.parse.quote(identity, safe="")
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


ADMIN = basic(f"300:{NODE_PREFIX}/ADMIN", ADMIN_SECRET)


class Client:
    """Stubs on one channel to a node, with the admin's credentials at hand."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.resolver = resolver_pb2_grpc.ResolverStub(self.channel)
        self.registry = registry_pb2_grpc.RegistryStub(self.channel)

    def register(self, handle: str, *texts: tuple[str, str], request_id: str = "",
                 metadata: tuple[tuple[str, str], ...] = ADMIN) -> Any:
        values = [record_pb2.Value(index=i, type=t, text=x) for i, (t, x) in enumerate(texts, 1)]
        return self.registry.Register(registry_pb2.RegisterRequest(
            handle=handle, values=values, request_id=request_id), metadata=metadata, timeout=10)

    def close(self) -> None:
        self.channel.close()


NodeFactory = Callable[..., Node]


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[NodeFactory]:
    """Start nodes with test settings (overridable); all are stopped at the end."""
    nodes: list[Node] = []

    def make(data_dir: Path | None = None, **overrides: object) -> Node:
        settings = load(env={}, overrides={
            "data_dir": str(data_dir or tmp_path / "data"),
            "grpc_listen": "127.0.0.1:0",
            "handle_listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0",
            "node_prefix": NODE_PREFIX,
            "admin_secret": ADMIN_SECRET,
            "grpc_threads": 8,
            "shutdown_grace_seconds": 2,
            **overrides,
        })
        node = build(settings)
        node.start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop(0)


@pytest.fixture
def node(node_factory: NodeFactory) -> Node:
    return node_factory()


@pytest.fixture
def client(node: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{node.grpc_port}")
    yield c
    c.close()
