"""The audit log through a real node: every write and every refused attempt leaves an entry
(gRPC and HTTP doors), QueryAudit is the node admin's, its filters and pages work, and
followers see who made each change. Secrets never reach an entry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from idnode.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    record_pb2,
    registry_pb2,
    resolver_pb2,
    sync_pb2,
    sync_pb2_grpc,
)
from node.app import Node
from tests.conftest import ADMIN, Client, basic
from tests.e2e.helpers import query, wait_for
from tests.http_client import ADMIN_USER, Http
from tests.http_client import basic as http_basic

Metadata = tuple[tuple[str, str], ...]
ANONYMOUS: Metadata = ()


@pytest.fixture
def admin(client: Client) -> admin_pb2_grpc.AdminStub:
    return admin_pb2_grpc.AdminStub(client.channel)


def etag_sequence(etag: str) -> int:
    return int(etag[1:], 16)


def text(index: int, type_: str, data: str) -> record_pb2.Value:
    return record_pb2.Value(index=index, type=type_, text=data)


def allocate(client: Client, prefix: str) -> Metadata:
    """Allocate ``prefix`` as the node admin; its owner's credentials."""
    alloc = client.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(prefix=prefix),
                                           metadata=ADMIN, timeout=10)
    return basic(alloc.owner, alloc.owner_secret)


def test_register_update_delete_each_leave_an_entry_with_who_what_where_and_sequence(
        client: Client, admin: admin_pb2_grpc.AdminStub) -> None:
    reg = client.register("88.118.8/AUD-1", ("URL", "https://one"), request_id="req-reg")
    upd = client.registry.Update(registry_pb2.UpdateRequest(
        handle="88.118.8/aud-1", values=[text(1, "URL", "https://two")], etag=reg.etag,
        request_id="req-upd"), metadata=ADMIN, timeout=10)
    client.registry.Delete(registry_pb2.DeleteRequest(
        handle="88.118.8/AUD-1", etag=upd.etag, request_id="req-del"), metadata=ADMIN,
        timeout=10)
    deleted, updated, registered = query(admin, prefix="88.118.8", outcome="ok")
    assert [(e.action, e.request_id) for e in (registered, updated, deleted)] == [
        ("register", "req-reg"), ("update", "req-upd"), ("delete", "req-del")]
    for entry in (registered, updated, deleted):
        assert (entry.principal, entry.target, entry.outcome, entry.client_address,
                entry.door, entry.message) == (ADMIN_USER, "88.118.8/AUD-1", "ok",
                                               "127.0.0.1", "grpc", "")
        assert abs(entry.time.seconds - time.time()) < 60
    assert registered.sequence == etag_sequence(reg.etag)
    assert updated.sequence == etag_sequence(upd.etag)
    assert deleted.sequence > updated.sequence and deleted.id > updated.id > registered.id


def test_refused_writes_are_recorded_and_change_nothing(
        client: Client, admin: admin_pb2_grpc.AdminStub) -> None:
    owner_21 = allocate(client, "88.118.21")
    allocate(client, "88.118.22")
    stub = sync_pb2_grpc.SyncStub(client.channel)
    before = stub.GetStats(sync_pb2.GetStatsRequest(), timeout=10).sequence
    attempts: list[tuple[Metadata, str, str]] = [
        (ANONYMOUS, "88.118.22/ANON", "UNAUTHENTICATED"),
        (basic("300:88.118.22/ADMIN", "not-the-secret-000"), "88.118.22/WRONG",
         "UNAUTHENTICATED"),
        (owner_21, "88.118.22/OTHERS", "PERMISSION_DENIED"),
    ]
    details = []
    for metadata, handle, code in attempts:
        with pytest.raises(grpc.RpcError) as err:
            client.register(handle, ("URL", "https://x"), request_id=f"r-{handle}",
                            metadata=metadata)
        assert err.value.code().name == code
        details.append(err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        client.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(prefix="88.118.23"),
                                       metadata=owner_21, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    refused = wait_for(admin, 4, outcome="refused")
    allocation, *writes = refused
    assert [(e.target, e.outcome, e.principal, e.request_id, e.message) for e in
            reversed(writes)] == [
        ("88.118.22/ANON", "UNAUTHENTICATED", "", "r-88.118.22/ANON", details[0]),
        # A wrong secret: the identity it claimed (unverified), never the secret.
        ("88.118.22/WRONG", "UNAUTHENTICATED", "300:88.118.22/ADMIN", "r-88.118.22/WRONG",
         details[1]),
        ("88.118.22/OTHERS", "PERMISSION_DENIED", "300:88.118.21/ADMIN",
         "r-88.118.22/OTHERS", details[2])]
    assert (allocation.action, allocation.target, allocation.outcome) == (
        "allocate_prefix", "88.118.23", "PERMISSION_DENIED")
    for entry in refused:
        assert (entry.client_address, entry.door, entry.sequence) == ("127.0.0.1", "grpc", 0)
    assert {e.action for e in writes} == {"register"}
    # Nothing changed: no identifier, no change, no accepted entry.
    assert stub.GetStats(sync_pb2.GetStatsRequest(), timeout=10).sequence == before
    for _, handle, _ in attempts:
        with pytest.raises(grpc.RpcError) as err:
            client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert sorted((e.target, e.action) for e in query(admin, prefix="88.118.22",
                                                      outcome="ok")) == [
        ("0.NA/88.118.22", "allocate_prefix"), ("88.118.22/ADMIN", "allocate_prefix")]


def test_only_the_node_admin_may_query_the_audit_log(
        client: Client, admin: admin_pb2_grpc.AdminStub) -> None:
    owner = allocate(client, "88.118.24")
    with pytest.raises(grpc.RpcError) as err:
        admin.QueryAudit(admin_pb2.QueryAuditRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        admin.QueryAudit(admin_pb2.QueryAuditRequest(), timeout=10,
                         metadata=basic(ADMIN_USER, "wrong-secret-0000"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:  # a prefix owner, even about its own prefix
        admin.QueryAudit(admin_pb2.QueryAuditRequest(prefix="88.118.24"), metadata=owner,
                         timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_query_audit_filters_by_prefix_principal_time_and_outcome_and_pages(
        client: Client, admin: admin_pb2_grpc.AdminStub) -> None:
    owner_25 = allocate(client, "88.118.25")
    for i in range(3):
        client.register(f"88.118.25/P{i}", ("URL", "https://x"), metadata=owner_25)
    client.register("88.118.26/ADMIN-MADE", ("URL", "https://x"))
    with pytest.raises(grpc.RpcError):
        client.register("88.118.26/NOPE", ("URL", "https://x"), metadata=owner_25)
    wait_for(admin, 1, prefix="88.118.26", outcome="refused")
    by_owner = query(admin, principal="300:88.118.25/admin")  # any letter case
    assert [(e.target, e.outcome) for e in by_owner] == [
        ("88.118.26/NOPE", "PERMISSION_DENIED"), ("88.118.25/P2", "ok"),
        ("88.118.25/P1", "ok"), ("88.118.25/P0", "ok")]
    # The prefix: its identifiers and the prefix itself (its ADMIN and prefix handle).
    assert sorted(e.target for e in query(admin, prefix="88.118.25")) == [
        "0.NA/88.118.25", "88.118.25/ADMIN", "88.118.25/P0", "88.118.25/P1", "88.118.25/P2"]
    assert [e.target for e in query(admin, prefix="88.118.26", outcome="ok")] == [
        "88.118.26/ADMIN-MADE"]
    now = int(time.time())
    assert query(admin, prefix="88.118.25", since={"seconds": now + 3600}) == []
    assert query(admin, prefix="88.118.25", until={"seconds": now - 3600}) == []
    assert len(query(admin, prefix="88.118.25", since={"seconds": now - 3600},
                     until={"seconds": now + 3600})) == 5
    # Pages of one: the same entries, newest first, no repeats.
    pages: list[admin_pb2.AuditEntry] = []
    request = admin_pb2.QueryAuditRequest(prefix="88.118.25", page_size=1)
    while True:
        response = admin.QueryAudit(request, metadata=ADMIN, timeout=10)
        assert len(response.entries) <= 1
        pages.extend(response.entries)
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert [e.id for e in pages] == [e.id for e in query(admin, prefix="88.118.25")]
    with pytest.raises(grpc.RpcError) as err:
        admin.QueryAudit(admin_pb2.QueryAuditRequest(outcome="sometimes"), metadata=ADMIN,
                         timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_follower_sees_who_made_each_change(client: Client) -> None:
    client.register("88.118.8/FOLLOWED", ("URL", "https://x"), request_id="req-followed")
    stub = sync_pb2_grpc.SyncStub(client.channel)
    stream = stub.WatchChanges(sync_pb2.WatchChangesRequest(prefix="88.118.8"),
                               metadata=ADMIN, timeout=20)
    change = next(iter(stream)).change
    stream.cancel()
    assert (change.handle, change.principal, change.request_id, change.client_address,
            change.door) == ("88.118.8/FOLLOWED", ADMIN_USER, "req-followed", "127.0.0.1",
                             "grpc")


def test_an_http_write_is_audited_with_door_http(
        node: Node, admin: admin_pb2_grpc.AdminStub) -> None:
    api = Http(node.http_port)
    url = [{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://h"}}]
    assert api.put("88.118.8/HTTP-1", url)[0] == 201
    assert api.put("88.118.8/HTTP-1", url)[0] == 200
    status, _, _ = api.put("88.118.8/HTTP-2", url, auth=http_basic(ADMIN_USER, "not-it-00000"))
    assert status == 401
    updated, registered = query(admin, prefix="88.118.8", outcome="ok")
    # A PUT is recorded as what it turned into.
    assert [(e.action, e.target, e.door, e.client_address, e.principal) for e in
            (registered, updated)] == [
        ("register", "88.118.8/HTTP-1", "http", "127.0.0.1", ADMIN_USER),
        ("update", "88.118.8/HTTP-1", "http", "127.0.0.1", ADMIN_USER)]
    (refused,) = wait_for(admin, 1, outcome="refused")
    assert (refused.action, refused.target, refused.outcome, refused.door) == (
        "put", "88.118.8/HTTP-2", "UNAUTHENTICATED", "http")


def test_a_bulk_chunk_leaves_one_compact_entry_and_refused_rows_one_summary(
        client: Client, admin: admin_pb2_grpc.AdminStub) -> None:
    client.register("88.118.8/BULK-1", ("URL", "https://x"))

    def rows() -> Iterator[registry_pb2.BulkRegisterRequest]:
        for i in range(5):
            yield registry_pb2.BulkRegisterRequest(handle=f"88.118.8/BULK-{i}",
                                                   values=[text(1, "URL", "https://b")])
    response = client.registry.BulkRegister(rows(), metadata=ADMIN, timeout=20)
    assert response.accepted == 4
    (bulk,) = [e for e in query(admin, prefix="88.118.8", outcome="ok")
               if e.action == "bulk_register"]
    assert (bulk.target, bulk.principal, bulk.door, bulk.client_address) == (
        "88.118.8", ADMIN_USER, "grpc", "127.0.0.1")
    assert bulk.message.startswith(f"4 identifiers in one transaction, sequences "
                                   f"{bulk.sequence} to ")
    assert bulk.message.endswith(": 88.118.8/BULK-0 to 88.118.8/BULK-4")
    (summary,) = wait_for(admin, 1, outcome="refused")
    assert (summary.action, summary.target, summary.outcome) == (
        "bulk_register", "88.118.8/BULK-1", "ALREADY_EXISTS")
    assert summary.message.startswith("1 of 5 rows refused")


def test_secrets_never_reach_the_audit_log_or_the_change_feed(
        client: Client, admin: admin_pb2_grpc.AdminStub) -> None:
    stored, refused, wrong = "stored-secret-9f3a1c", "refused-secret-77b2e", "wrong-pw-5d1e8a7"
    owner = allocate(client, "88.118.27")
    client.registry.Register(registry_pb2.RegisterRequest(
        handle="88.118.27/KEYHOLDER", values=[text(1, "URL", "https://k"),
                                              text(300, "HS_SECKEY", stored)],
        request_id="req-key"), metadata=owner, timeout=10)
    with pytest.raises(grpc.RpcError):  # permission denied, carrying a secret value
        client.registry.Register(registry_pb2.RegisterRequest(
            handle="88.118.28/KEYHOLDER", values=[text(300, "HS_SECKEY", refused)]),
            metadata=owner, timeout=10)
    with pytest.raises(grpc.RpcError):  # the secret in the credentials is wrong
        client.register("88.118.27/X", ("URL", "https://x"),
                        metadata=basic("300:88.118.27/KEYHOLDER", wrong))
    wait_for(admin, 2, outcome="refused")
    everything = b"".join(e.SerializeToString() for e in query(admin))
    stream = sync_pb2_grpc.SyncStub(client.channel).WatchChanges(
        sync_pb2.WatchChangesRequest(prefix="88.118.27"), metadata=ADMIN, timeout=20)
    changes = b""
    for message in stream:
        changes += message.SerializeToString()
        if message.change.handle == "88.118.27/KEYHOLDER":
            break
    stream.cancel()
    assert b"88.118.27/KEYHOLDER" in everything and b"req-key" in everything
    for secret in (stored, refused, wrong):
        assert secret.encode() not in everything
        assert secret.encode() not in changes
