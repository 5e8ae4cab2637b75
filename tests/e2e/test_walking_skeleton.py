"""Register and resolve through a real gRPC server, as a partner's client would."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from idnode.v1 import record_pb2, resolver_pb2
from tests.conftest import Client, NodeFactory


def resolve(client: Client, handle: str) -> record_pb2.Record:
    response = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=5)
    return record_pb2.Record.FromString(response.record.payload)


def test_registered_identifier_resolves_with_its_values(client: Client) -> None:
    client.register("88.118.8/PN-0001", ("URL", "https://example.com/p/1"),
                    ("productName", "数控机床 主轴"))
    record = resolve(client, "88.118.8/PN-0001")
    assert record.handle == "88.118.8/PN-0001"
    assert [(v.index, v.type, v.text) for v in record.values] == [
        (1, "URL", "https://example.com/p/1"), (2, "productName", "数控机床 主轴")]
    assert record.version == 1


def test_acknowledged_writes_survive_a_restart(node_factory: NodeFactory,
                                               tmp_path: Path) -> None:
    data = tmp_path / "persist"
    first = node_factory(data)
    c = Client(f"127.0.0.1:{first.grpc_port}")
    for i in range(20):
        c.register(f"88.118.8/R-{i}", ("URL", f"https://example.com/{i}"))
    c.close()
    first.stop()
    second = node_factory(data)
    c = Client(f"127.0.0.1:{second.grpc_port}")
    try:
        for i in range(20):
            assert resolve(c, f"88.118.8/r-{i}").values[0].text == f"https://example.com/{i}"
    finally:
        c.close()


@pytest.mark.parametrize("bad", ["", "no-slash", "88.118.8/", "/suffix", "88.118.8/a\x00b",
                                 "88.1 18/x", "88..118/x", "88.118.8/a b"])
def test_malformed_identifier_is_invalid_argument(client: Client, bad: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        resolve(client, bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details()
