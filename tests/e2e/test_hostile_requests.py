"""Requests an adversarial probe sent to the node: each gets the status from the error
table with a message naming the problem, and the node keeps serving (and stops cleanly)."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2, sync_pb2
from node.app import Node
from node.rpc.server import REFERRAL_METADATA
from tests.conftest import ADMIN, Client, basic


def _raw_stream_call(channel: grpc.Channel, method: str,
                     messages: list[bytes], metadata: Any = ()) -> Any:
    """A client-streaming call whose messages are raw bytes (garbage allowed)."""
    call = channel.stream_unary(method, request_serializer=lambda b: b,
                                response_deserializer=registry_pb2.BulkRegisterResponse.FromString)
    return call(iter(messages), metadata=metadata, timeout=10)


def _row(handle: str) -> bytes:
    return registry_pb2.BulkRegisterRequest(rows=[registry_pb2.BulkRow(
        handle=handle, values=[record_pb2.Value(index=1, type="URL", text="https://x")])]
    ).SerializeToString()


GARBAGE = b"\xff\xff\xff\xff\x0f"  # a field header with an impossible wire type


def test_garbage_bulk_message_is_invalid_argument_and_says_what_was_stored(
        client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _raw_stream_call(client.channel, "/idnode.v1.Registry/BulkRegister",
                         [_row("88.118.8/BG-1"), _row("88.118.8/BG-2"), GARBAGE,
                          _row("88.118.8/BG-3")], metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "message 2 of the stream" in details and "2 stored" in details
    # What the answer says is what is stored: the rows before the bad message, not after.
    client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/BG-2"), timeout=5)
    with pytest.raises(grpc.RpcError) as missing:
        client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/BG-3"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_garbage_watch_request_is_invalid_argument(client: Client) -> None:
    call = client.channel.unary_stream("/idnode.v1.Sync/WatchChanges",
                                       request_serializer=lambda b: b,
                                       response_deserializer=sync_pb2.WatchChangesResponse.FromString)
    with pytest.raises(grpc.RpcError) as err:
        list(call(GARBAGE, metadata=ADMIN, timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "WatchChangesRequest" in (err.value.details() or "")


def test_anonymous_bulk_register_fails_the_call_not_each_row(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _raw_stream_call(client.channel, "/idnode.v1.Registry/BulkRegister",
                         [_row("88.118.8/AN-1")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_malformed_bulk_calls_do_not_stop_a_clean_drain(node: Node, client: Client) -> None:
    for metadata in ((), ADMIN):
        with pytest.raises(grpc.RpcError):
            _raw_stream_call(client.channel, "/idnode.v1.Registry/BulkRegister",
                             [GARBAGE, GARBAGE], metadata=metadata)
    stopper = threading.Thread(target=node.stop, args=(2,), daemon=True)
    stopper.start()
    stopper.join(30)  # a hang detector, not a timing assertion: grace is 2 s
    assert not stopper.is_alive(), "node.stop() hung after malformed BulkRegister calls"


def test_update_with_an_unknown_mode_is_refused(client: Client) -> None:
    first = client.register("88.118.8/MODE", ("URL", "https://1"))
    with pytest.raises(grpc.RpcError) as err:
        client.registry.Update(registry_pb2.UpdateRequest(
            handle="88.118.8/MODE", etag=first.etag, mode=99,  # type: ignore[arg-type]
            values=[record_pb2.Value(index=1, type="URL", text="https://2")]),
            metadata=ADMIN, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "mode 99" in (err.value.details() or "")


def test_an_etag_spelled_differently_is_not_the_same_etag(client: Client) -> None:
    first = client.register("88.118.8/ET", ("URL", "https://1"))
    spelled = "s0x" + first.etag[1:]
    with pytest.raises(grpc.RpcError) as err:
        client.registry.Update(registry_pb2.UpdateRequest(
            handle="88.118.8/ET", etag=spelled,
            values=[record_pb2.Value(index=1, type="URL", text="https://2")]),
            metadata=ADMIN, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_lower_case_hs_seckey_is_sealed_like_upper_case(client: Client) -> None:
    client.register("88.118.8/SK", ("URL", "https://x"), ("hs_seckey", "a-secret-value"))
    answer = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/SK"),
                                     metadata=ADMIN, timeout=5)
    values = record_pb2.Record.FromString(answer.record.payload).values
    assert [v.type for v in values] == ["URL"]  # not even the node admin reads it
    assert b"a-secret-value" not in answer.SerializeToString()
    # ... and it proves the identity 2:88.118.8/SK (anyone may resolve public values)
    client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/SK"),
                            metadata=basic("2:88.118.8/SK", "a-secret-value"), timeout=5)
    with pytest.raises(grpc.RpcError) as err:
        client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/SK"),
                                metadata=basic("2:88.118.8/SK", "not-the-secret"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_short_secret_is_refused_naming_the_rule(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.register("88.118.8/SK2", ("HS_SECKEY", "short"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least 12 characters" in (err.value.details() or "")


def test_a_page_token_outside_the_alphabet_is_malformed(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.registry.List(registry_pb2.ListRequest(prefix="88.118.8", page_token="!!!"),
                             metadata=ADMIN, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in (err.value.details() or "")


def test_not_served_here_carries_a_referral(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="86.100.1/X"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    metadata: Any = err.value.trailing_metadata() or ()
    trailers = {str(item[0]): item[1] for item in metadata}
    referral = record_pb2.Referral.FromString(trailers[REFERRAL_METADATA])
    assert referral.prefix == "86.100.1"


def test_the_identifier_gauge_follows_writes(node: Node, client: Client) -> None:
    def gauge() -> float:
        return node.metrics.registry.get_sample_value("idnode_registry_identifiers") or 0.0

    start = gauge()
    created = [client.register(f"88.118.8/G-{i}", ("URL", "x")) for i in range(4)]
    assert gauge() == start + 4
    client.registry.Delete(registry_pb2.DeleteRequest(handle="88.118.8/G-0",
                                                      etag=created[0].etag), metadata=ADMIN)
    assert gauge() == start + 3

