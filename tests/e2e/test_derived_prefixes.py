"""A derived prefix belongs to whoever it is allocated to (the Handle model): the owner
of 88.118.8 has no rights over 88.118.8.1 once it is someone else's — found by an
adversarial probe, pinned here through the real server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2, sync_pb2, sync_pb2_grpc
from node.app import Node
from tests.conftest import ADMIN, Client, basic

PARENT = basic("300:88.118.8/ADMIN", "parent-secret-0008")
CHILD = basic("300:88.118.8.1/ADMIN", "child-secret-00081")


def _private(text: str) -> record_pb2.Value:
    return record_pb2.Value(index=2, type="cost", text=text,
                            permissions=record_pb2.Permissions(admin_read=True,
                                                               admin_write=True))


@pytest.fixture
def two_owners(node: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{node.grpc_port}")
    owners = (("88.118.8", "parent-secret-0008"), ("88.118.8.1", "child-secret-00081"))
    for prefix, secret in owners:
        c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix=prefix, owner_secret=secret), metadata=ADMIN)
    c.registry.Register(registry_pb2.RegisterRequest(handle="88.118.8.1/PART", values=[
        record_pb2.Value(index=1, type="URL", text="https://child"), _private("42")]),
        metadata=CHILD)
    yield c
    c.close()


def _code(call: object) -> grpc.StatusCode:
    try:
        result = call()  # type: ignore[operator]
        if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
            next(iter(result))
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_the_parent_owner_cannot_touch_an_allocated_derived_prefix(two_owners: Client,
                                                                    node: Node) -> None:
    c = two_owners
    etag = c.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8.1/PART")).etag
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: c.registry.Update(registry_pb2.UpdateRequest(
        handle="88.118.8.1/PART", etag=etag,
        values=[record_pb2.Value(index=1, type="URL", text="https://evil")]),
        metadata=PARENT)) == denied
    admin_etag = c.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8.1/ADMIN")).etag
    assert _code(lambda: c.registry.Update(registry_pb2.UpdateRequest(
        handle="88.118.8.1/ADMIN", etag=admin_etag,
        values=[record_pb2.Value(index=1, type="URL", text="https://evil")]),
        metadata=PARENT)) == denied
    assert _code(lambda: c.registry.List(registry_pb2.ListRequest(prefix="88.118.8.1"),
                                         metadata=PARENT)) == denied
    # Its private values stay private to the parent owner (public view, no error)...
    seen = record_pb2.Record.FromString(c.resolver.Resolve(resolver_pb2.ResolveRequest(
        handle="88.118.8.1/PART"), metadata=PARENT).record.payload)
    assert [v.index for v in seen.values] == [1]
    # ...and following the parent prefix does not stream the child's changes.
    sync = sync_pb2_grpc.SyncStub(c.channel)
    stream = sync.WatchChanges(sync_pb2.WatchChangesRequest(prefix="88.118.8"),
                               metadata=PARENT, timeout=3)
    c.registry.Register(registry_pb2.RegisterRequest(handle="88.118.8/MARK", values=[
        record_pb2.Value(index=1, type="URL", text="https://parent")]), metadata=PARENT)
    handles = []
    for message in stream:
        handles.append(message.change.handle)
        if message.change.handle == "88.118.8/MARK":
            break
    stream.cancel()
    assert not [h for h in handles if h.startswith("88.118.8.1/")]


def test_an_unallocated_derived_prefix_cannot_be_squatted(two_owners: Client) -> None:
    c = two_owners
    assert _code(lambda: c.registry.Register(registry_pb2.RegisterRequest(
        handle="88.118.8.2/ADMIN", values=[record_pb2.Value(index=1, type="URL", text="x")]),
        metadata=PARENT)) == grpc.StatusCode.PERMISSION_DENIED
    c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
        prefix="88.118.8.2", owner_secret="third-secret-000082"), metadata=ADMIN)
