"""Followers (mirrors, the top-level node) read the change log in order and resume."""

from __future__ import annotations

import threading

import grpc
import pytest

from idnode.v1 import registry_pb2, sync_pb2, sync_pb2_grpc
from tests.conftest import ADMIN, Client, basic


def test_a_follower_gets_history_then_live_changes_in_order(client: Client) -> None:
    for i in range(3):
        client.register(f"88.118.8/W-{i}", ("URL", f"https://{i}"))
    stub = sync_pb2_grpc.SyncStub(client.channel)
    stream = stub.WatchChanges(sync_pb2.WatchChangesRequest(sequence=0), metadata=ADMIN,
                               timeout=20)
    got: list[sync_pb2.Change] = []
    for message in stream:
        change = message.change
        if not change.handle.startswith("88.118.8/W-"):
            continue  # the node admin's own records, created at start
        got.append(change)
        if len(got) == 3:
            threading.Thread(target=client.register, args=("88.118.8/W-live",
                                                           ("URL", "https://live"))).start()
        if len(got) == 4:
            break
    stream.cancel()
    assert [c.handle for c in got] == ["88.118.8/W-0", "88.118.8/W-1", "88.118.8/W-2",
                                       "88.118.8/W-live"]
    assert [c.sequence for c in got] == sorted(c.sequence for c in got)
    assert got[0].operation == sync_pb2.Change.OPERATION_REGISTER
    assert got[3].values[0].text == "https://live"
    resumed = stub.WatchChanges(sync_pb2.WatchChangesRequest(sequence=got[1].sequence),
                                metadata=ADMIN, timeout=20)
    first = next(iter(resumed)).change
    resumed.cancel()
    assert first.handle == "88.118.8/W-2"


def test_deletes_and_prefix_filters_reach_followers(client: Client) -> None:
    first = client.register("88.118.8/D", ("URL", "x"))
    client.register("88.118.9/OTHER", ("URL", "y"))
    client.registry.Delete(registry_pb2.DeleteRequest(handle="88.118.8/D", etag=first.etag),
                           metadata=ADMIN)
    stub = sync_pb2_grpc.SyncStub(client.channel)
    stream = stub.WatchChanges(sync_pb2.WatchChangesRequest(sequence=0, prefix="88.118.8"),
                               metadata=ADMIN, timeout=20)
    got = [next(stream).change, next(stream).change]
    stream.cancel()
    assert [(c.handle, c.operation) for c in got] == [
        ("88.118.8/D", sync_pb2.Change.OPERATION_REGISTER),
        ("88.118.8/D", sync_pb2.Change.OPERATION_DELETE)]


def test_following_needs_rights(client: Client) -> None:
    stub = sync_pb2_grpc.SyncStub(client.channel)
    with pytest.raises(grpc.RpcError) as err:
        next(stub.WatchChanges(sync_pb2.WatchChangesRequest(), timeout=5))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    alloc = client.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
        prefix="88.118.30", owner_secret="owner-secret-0030"), metadata=ADMIN)
    owner = basic(alloc.owner, "owner-secret-0030")
    with pytest.raises(grpc.RpcError) as err:
        next(stub.WatchChanges(sync_pb2.WatchChangesRequest(), metadata=owner, timeout=5))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        next(stub.WatchChanges(sync_pb2.WatchChangesRequest(prefix="88.118.31"),
                               metadata=owner, timeout=5))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    own = stub.WatchChanges(sync_pb2.WatchChangesRequest(prefix="88.118.30"), metadata=owner,
                            timeout=5)
    assert next(own).change.handle == "88.118.30/ADMIN"
    own.cancel()
