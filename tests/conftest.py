"""Shared fixtures: real nodes on 127.0.0.1:0 built through the composition root."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from idnode.v1 import record_pb2, registry_pb2, registry_pb2_grpc, resolver_pb2_grpc
from node.app import Node, build
from node.security.signing import HANDLE_KEY_FILE
from node.settings import load
from registry.record import Change
from registry.store import ChangeLog
from tests.pg_server import ExternalServer, PostgresServer, shared_server, stop_shared_server

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


@pytest.fixture(scope="session")
def handle_key_pem() -> bytes:
    """One Handle protocol RSA key for every test node: making a 2048-bit key costs tens
    of milliseconds, on each of hundreds of node starts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def node_factory(tmp_path: Path, handle_key_pem: bytes) -> Iterator[NodeFactory]:
    """Start nodes with test settings (overridable); all are stopped at the end.
    ``seed_handle_key=False`` lets the node make its Handle protocol key itself."""
    nodes: list[Node] = []

    def make(data_dir: Path | None = None, *, seed_handle_key: bool = True,
             **overrides: object) -> Node:
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
        key_file = Path(settings.signing_key_dir) / HANDLE_KEY_FILE
        if seed_handle_key and settings.handle_listen and not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key_file.write_bytes(handle_key_pem)
            key_file.chmod(0o600)
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


def whole_log(store: ChangeLog) -> list[Change]:
    """Every change a store's log holds, oldest first (paged as followers read it)."""
    out: list[Change] = []
    while True:
        page = store.changes_since(out[-1].sequence if out else 0, 1000)
        if not page:
            return out
        out.extend(page)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | ExternalServer]:
    """One PostgreSQL for the whole session, started on first use by a PostgreSQL test
    (``IDNODE_TEST_DATABASE_URL`` names an existing server instead); stopped at the end."""
    yield shared_server()
    stop_shared_server()


@pytest.fixture
def pg_url(pg_server: PostgresServer | ExternalServer) -> Iterator[str]:
    """A fresh, empty database on the session server for this test (dropped after)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
