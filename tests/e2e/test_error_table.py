"""Every row of the error table through the real server; the node keeps serving and
nothing stored changes after a rejected request."""

from __future__ import annotations

import base64
from typing import Any

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from tests.conftest import ADMIN, Client, basic


def code_of(call: object, *args: object, **kwargs: object) -> tuple[grpc.StatusCode, str]:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    raise AssertionError("call succeeded")


def record_of(client: Client, handle: str) -> record_pb2.Record:
    response = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=5)
    return record_pb2.Record.FromString(response.record.payload)


def test_already_exists(client: Client) -> None:
    client.register("88.118.8/X", ("URL", "https://1"))
    code, details = code_of(client.register, "88.118.8/x", ("URL", "https://2"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "already exists" in details
    assert record_of(client, "88.118.8/X").values[0].text == "https://1"


def test_not_found_and_not_served(client: Client) -> None:
    code, details = code_of(record_of, client, "88.118.8/NOPE")
    assert code == grpc.StatusCode.NOT_FOUND and "not found" in details
    code, details = code_of(record_of, client, "99.1/X")
    assert code == grpc.StatusCode.NOT_FOUND and "not served" in details


def test_stale_etag_is_aborted_and_changes_nothing(client: Client) -> None:
    first = client.register("88.118.8/E", ("URL", "https://1"))
    client.registry.Update(registry_pb2.UpdateRequest(
        handle="88.118.8/E", etag=first.etag,
        values=[record_pb2.Value(index=1, type="URL", text="https://2")]), metadata=ADMIN)
    code, details = code_of(client.registry.Update, registry_pb2.UpdateRequest(
        handle="88.118.8/E", etag=first.etag,
        values=[record_pb2.Value(index=1, type="URL", text="https://3")]), metadata=ADMIN)
    assert code == grpc.StatusCode.ABORTED and "stale" in details
    code, _ = code_of(client.registry.Delete, registry_pb2.DeleteRequest(
        handle="88.118.8/E", etag=first.etag), metadata=ADMIN)
    assert code == grpc.StatusCode.ABORTED
    assert record_of(client, "88.118.8/E").values[0].text == "https://2"


def test_missing_or_wrong_credentials_are_unauthenticated(client: Client) -> None:
    code, details = code_of(client.register, "88.118.8/U", ("URL", "x"), metadata=())
    assert code == grpc.StatusCode.UNAUTHENTICATED and "credentials" in details
    wrong = basic("300:88.118/ADMIN", "not-the-secret-at-all")
    code, _ = code_of(client.register, "88.118.8/U", ("URL", "x"), metadata=wrong)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    garbage = (("authorization", "Basic !!!"),)
    code, details = code_of(client.register, "88.118.8/U", ("URL", "x"), metadata=garbage)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "base64" in details
    # A wrong secret on a resolve is refused too, rather than silently anonymous.
    code, _ = code_of(client.resolver.Resolve, resolver_pb2.ResolveRequest(handle="88.118.8/U"),
                      metadata=wrong)
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_unencoded_identity_in_basic_credentials_works(client: Client) -> None:
    raw = base64.b64encode(b"300:88.118/ADMIN:test-admin-secret-0001").decode()
    client.register("88.118.8/RAW", ("URL", "x"), metadata=(("authorization", f"Basic {raw}"),))


def test_owner_without_rights_is_permission_denied(client: Client) -> None:
    alloc = client.registry.AllocatePrefix(
        registry_pb2.AllocatePrefixRequest(prefix="88.118.20"), metadata=ADMIN)
    assert alloc.owner == "300:88.118.20/ADMIN" and alloc.owner_secret
    owner = basic(alloc.owner, alloc.owner_secret)
    client.register("88.118.20/MINE", ("URL", "x"), metadata=owner)
    code, details = code_of(client.register, "88.118.21/THEIRS", ("URL", "x"), metadata=owner)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "no write rights" in details
    code, _ = code_of(client.registry.AllocatePrefix,
                      registry_pb2.AllocatePrefixRequest(prefix="88.118.20"), metadata=ADMIN)
    assert code == grpc.StatusCode.ALREADY_EXISTS
    # The prefix's ADMIN identifier resolves, and never carries a secret.
    admin_record = record_of(client, "88.118.20/ADMIN")
    assert [v.type for v in admin_record.values] == ["HS_ADMIN"]
    assert alloc.owner_secret.encode() not in admin_record.SerializeToString()


@pytest.mark.parametrize(("values", "rule"), [
    ([], "at least one value"),
    ([record_pb2.Value(index=0, type="URL", text="x")], "out of range"),
    ([record_pb2.Value(index=1, type="URL", text="x"),
      record_pb2.Value(index=1, type="DESC", text="y")], "more than once"),
    ([record_pb2.Value(index=1, type="URL")], "has no data"),
    ([record_pb2.Value(index=1, type="URL", text="x" * 70000)], "bytes of data"),
])
def test_bad_values_are_invalid_argument_and_store_nothing(
        client: Client, values: list[record_pb2.Value], rule: str) -> None:
    code, details = code_of(client.registry.Register, registry_pb2.RegisterRequest(
        handle="88.118.8/BADV", values=values), metadata=ADMIN)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and rule in details
    code, _ = code_of(record_of, client, "88.118.8/BADV")
    assert code == grpc.StatusCode.NOT_FOUND


def test_undecodable_request_bytes_are_invalid_argument(client: Client) -> None:
    raw_resolve: Any = client.channel.unary_unary("/idnode.v1.Resolver/Resolve")
    code, details = code_of(raw_resolve, b"\x0a\x03\xff\xfe\xfd", timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in details
    raw_register: Any = client.channel.unary_unary("/idnode.v1.Registry/Register")
    code, details = code_of(raw_register, b"\xff\xff\xff", timeout=5, metadata=ADMIN)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "RegisterRequest" in details
    # ... and the server keeps serving.
    client.register("88.118.8/STILL-UP", ("URL", "x"))


def test_idempotent_register(client: Client) -> None:
    first = client.register("88.118.8/IDEM", ("URL", "x"), request_id="rid-1")
    again = client.register("88.118.8/IDEM", ("URL", "x"), request_id="rid-1")
    assert (again.version, again.etag) == (first.version, first.etag)
    code, details = code_of(client.register, "88.118.8/IDEM", ("URL", "y"),
                            request_id="rid-1")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in details


def test_batch_over_the_limit_is_invalid_argument(client: Client) -> None:
    code, details = code_of(client.resolver.BatchResolve, resolver_pb2.BatchResolveRequest(
        handles=[f"88.118.8/{i}" for i in range(101)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 100" in details


def test_a_method_outside_the_contract_answers_unimplemented(client: Client) -> None:
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = client.channel.unary_unary(
        "/idnode.v1.Registry/NoSuchMethod")
    code, _ = code_of(call, b"", metadata=ADMIN)
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_refused_writes_are_audit_logged_with_their_request_id(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    logging.getLogger("idnode").propagate = True
    client.register("88.118.8/AUD", ("URL", "x"))
    with caplog.at_level(logging.WARNING, logger="idnode.audit"):
        code, _ = code_of(client.register, "88.118.8/AUD", ("URL", "y"), request_id="rid-aud")
    assert code == grpc.StatusCode.ALREADY_EXISTS
    refused = [r for r in caplog.records if r.getMessage() == "write refused"]
    assert refused and refused[0].fields["request_id"] == "rid-aud"  # type: ignore[attr-defined]
    assert refused[0].fields["code"] == "ALREADY_EXISTS"  # type: ignore[attr-defined]
