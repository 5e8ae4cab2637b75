"""Bearer tokens through the real servers: created once, usable on gRPC and HTTP with
their scope and prefix, refused once expired or revoked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from idnode.v1 import admin_pb2, admin_pb2_grpc, record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests.conftest import ADMIN, Client, basic
from tests.e2e.helpers import cli
from tests.http_client import Http

PRIVATE = record_pb2.Permissions(admin_read=True, admin_write=True, public_read=False)


@pytest.fixture
def owner(client: Client) -> tuple[tuple[str, str], ...]:
    """The admin of prefix 88.118.8, with a private value under it."""
    allocated = client.registry.AllocatePrefix(
        registry_pb2.AllocatePrefixRequest(prefix="88.118.8"), metadata=ADMIN, timeout=5)
    creds = basic("300:88.118.8/ADMIN", allocated.owner_secret)
    client.registry.Register(registry_pb2.RegisterRequest(handle="88.118.8/P", values=[
        record_pb2.Value(index=1, type="URL", text="https://p"),
        record_pb2.Value(index=2, type="PRICE", text="42", permissions=PRIVATE)]),
        metadata=creds, timeout=5)
    return creds


@pytest.fixture
def admin_api(client: Client) -> Iterator[admin_pb2_grpc.AdminStub]:
    yield admin_pb2_grpc.AdminStub(client.channel)


def bearer(text: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {text}"),)


def create(api: admin_pb2_grpc.AdminStub, creds: tuple[tuple[str, str], ...],
           **fields: object) -> admin_pb2.CreateTokenResponse:
    request = admin_pb2.CreateTokenRequest(**fields)  # type: ignore[arg-type]
    response: admin_pb2.CreateTokenResponse = api.CreateToken(request, metadata=creds,
                                                              timeout=5)
    return response


def values(client: Client, handle: str, creds: tuple[tuple[str, str], ...]) -> list[int]:
    answer = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                     metadata=creds, timeout=5)
    return [v.index for v in record_pb2.Record.FromString(answer.record.payload).values]


def code(fn: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        fn()  # type: ignore[operator]
    return err.value.code()


def test_a_resolve_token_reads_private_values_and_writes_nothing(
        client: Client, owner: tuple[tuple[str, str], ...],
        admin_api: admin_pb2_grpc.AdminStub) -> None:
    made = create(admin_api, owner, scope="resolve", description="label printer")
    assert made.secret.startswith("idn1.") and made.token.principal == "300:88.118.8/ADMIN"
    token = bearer(made.secret)
    assert values(client, "88.118.8/P", token) == [1, 2]
    assert values(client, "88.118.8/P", ()) == [1]
    assert code(lambda: client.register("88.118.8/Q", ("URL", "x"), metadata=token)) \
        == grpc.StatusCode.PERMISSION_DENIED
    # A token cannot make tokens: that takes the identity's own secret.
    assert code(lambda: create(admin_api, token, scope="write")) \
        == grpc.StatusCode.PERMISSION_DENIED


def test_a_write_token_writes_but_cannot_change_rights(
        client: Client, owner: tuple[tuple[str, str], ...],
        admin_api: admin_pb2_grpc.AdminStub) -> None:
    token = bearer(create(admin_api, owner, scope="write").secret)
    client.register("88.118.8/Q", ("URL", "https://q"), metadata=token)
    admin_value = record_pb2.Value(index=100, type="HS_ADMIN", admin=record_pb2.AdminRef(
        handle="88.118.8/ADMIN", index=300, permissions="111111111111"))
    with pytest.raises(grpc.RpcError) as err:
        client.registry.Update(registry_pb2.UpdateRequest(
            handle="88.118.8/Q", values=[admin_value], etag=_etag(client, "88.118.8/Q"),
            mode=registry_pb2.UpdateRequest.MODE_MERGE), metadata=token, timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "add_admin" in (err.value.details() or "") and "scope is write" in (
        err.value.details() or "")


def test_a_token_limited_to_a_prefix_acts_nowhere_else(
        client: Client, admin_api: admin_pb2_grpc.AdminStub) -> None:
    token = bearer(create(admin_api, ADMIN, principal="300:88.118/ADMIN", scope="write",
                          prefix="88.118.5").secret)
    client.register("88.118.5/A", ("URL", "x"), metadata=token)
    with pytest.raises(grpc.RpcError) as err:
        client.register("88.118.6/A", ("URL", "x"), metadata=token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "limited to prefix 88.118.5" in (err.value.details() or "")


def test_revoked_and_expired_tokens_are_unauthenticated_on_grpc_and_http(
        node: Node, client: Client, owner: tuple[tuple[str, str], ...],
        admin_api: admin_pb2_grpc.AdminStub) -> None:
    made = create(admin_api, owner, scope="resolve")
    http = Http(node.http_port)
    auth = f"Bearer {made.secret}"
    status, body = http.get("88.118.8/P", auth=auth)
    assert status == 200 and [v["index"] for v in body["values"]] == [1, 2]
    revoked = admin_api.RevokeToken(admin_pb2.RevokeTokenRequest(
        token_id=made.token.token_id), metadata=owner, timeout=5)
    assert revoked.token.HasField("revoked_at")
    assert code(lambda: values(client, "88.118.8/P", bearer(made.secret))) \
        == grpc.StatusCode.UNAUTHENTICATED
    status, body = http.get("88.118.8/P", auth=auth)
    assert status == 401 and "revoked" in body["message"]

    soon = create(admin_api, owner, scope="resolve", expires_at={"seconds": int(time.time()) + 2})
    assert values(client, "88.118.8/P", bearer(soon.secret)) == [1, 2]
    time.sleep(2.2)
    with pytest.raises(grpc.RpcError) as err:
        values(client, "88.118.8/P", bearer(soon.secret))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (err.value.details() or "")


def test_bad_tokens_and_bad_requests_get_clear_errors(
        client: Client, owner: tuple[tuple[str, str], ...],
        admin_api: admin_pb2_grpc.AdminStub) -> None:
    for text in ("nonsense", "idn1.0123456789abcdef." + "A" * 43):
        with pytest.raises(grpc.RpcError) as err:
            values(client, "88.118.8/P", bearer(text))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        create(admin_api, owner, scope="everything")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "scope" in (
        err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        create(admin_api, owner, scope="resolve", expires_at={"seconds": 1})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Only the identity itself (or the node admin) makes tokens for it.
    assert code(lambda: create(admin_api, owner, principal="300:88.118/ADMIN")) \
        == grpc.StatusCode.PERMISSION_DENIED
    assert code(lambda: create(admin_api, (), scope="resolve")) \
        == grpc.StatusCode.UNAUTHENTICATED
    assert code(lambda: create(admin_api, ADMIN, principal="300:88.118.8/NOBODY")) \
        == grpc.StatusCode.NOT_FOUND


def test_tokens_are_listed_without_their_secrets(
        client: Client, owner: tuple[tuple[str, str], ...],
        admin_api: admin_pb2_grpc.AdminStub) -> None:
    made = create(admin_api, owner, scope="resolve", description="erp")
    mine = admin_api.ListTokens(admin_pb2.ListTokensRequest(), metadata=owner, timeout=5)
    assert [t.token_id for t in mine.tokens] == [made.token.token_id]
    assert made.secret.split(".")[2] not in str(mine)
    theirs = admin_api.ListTokens(admin_pb2.ListTokensRequest(principal="300:88.118.8/ADMIN"),
                                  metadata=ADMIN, timeout=5)
    assert [t.description for t in theirs.tokens] == ["erp"]


def _etag(client: Client, handle: str) -> str:
    return str(client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                       metadata=ADMIN, timeout=5).etag)


def test_the_cli_creates_lists_uses_and_revokes_a_token(node: Node, client: Client) -> None:
    code_, out = cli(node, "token", "create", "--scope", "write", "--prefix", "88.118.4",
                     "--expires", "30d", "--description", "ERP 中文")
    assert code_ == 0, out
    text = next(line for line in out.splitlines() if line.startswith("idn1."))
    client.register("88.118.4/CLI", ("URL", "x"), metadata=bearer(text))
    code_, out = cli(node, "token", "list", "--json")
    assert code_ == 0 and '"description": "ERP 中文"' in out and text not in out
    token_id = text.split(".")[1]
    code_, out = cli(node, "token", "revoke", token_id)
    assert code_ == 0 and f"revoked {token_id}" in out
    assert code(lambda: client.register("88.118.4/CLI2", ("URL", "x"),
                                        metadata=bearer(text))) \
        == grpc.StatusCode.UNAUTHENTICATED
    code_, out = cli(node, "token", "create", "--expires", "someday")
    assert code_ == 2 and "neither a duration" in out
