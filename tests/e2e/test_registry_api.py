"""Writes through the real server and what resolvers see after them."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.verify import verify
from tests.conftest import ADMIN, Client


def resolve(client: Client, handle: str, **kw: Any) -> resolver_pb2.ResolveResponse:
    response: resolver_pb2.ResolveResponse = client.resolver.Resolve(
        resolver_pb2.ResolveRequest(handle=handle, **kw), timeout=5)
    return response


def payload(response: resolver_pb2.ResolveResponse) -> record_pb2.Record:
    return record_pb2.Record.FromString(response.record.payload)


def test_update_is_visible_at_once_and_bumps_the_version(client: Client) -> None:
    first = client.register("88.118.8/UP", ("URL", "https://1"))
    assert payload(resolve(client, "88.118.8/UP")).version == 1  # now cached
    upd = client.registry.Update(registry_pb2.UpdateRequest(
        handle="88.118.8/UP", etag=first.etag,
        values=[record_pb2.Value(index=1, type="URL", text="https://2")]), metadata=ADMIN)
    response = resolve(client, "88.118.8/up")
    assert payload(response).version == 2 == upd.version
    assert payload(response).values[0].text == "https://2"
    assert response.etag == upd.etag


def test_delete_makes_the_identifier_unresolvable_at_once(client: Client) -> None:
    import grpc
    import pytest

    first = client.register("88.118.8/DEL", ("URL", "x"))
    resolve(client, "88.118.8/DEL")
    client.registry.Delete(registry_pb2.DeleteRequest(handle="88.118.8/DEL", etag=first.etag),
                           metadata=ADMIN)
    with pytest.raises(grpc.RpcError) as err:
        resolve(client, "88.118.8/DEL")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_registering_after_a_negative_answer_resolves_at_once(client: Client) -> None:
    import grpc
    import pytest

    with pytest.raises(grpc.RpcError):
        resolve(client, "88.118.8/LATER")
    client.register("88.118.8/LATER", ("URL", "x"))
    assert payload(resolve(client, "88.118.8/LATER")).handle == "88.118.8/LATER"


def test_private_values_are_seen_only_by_principals_with_rights(client: Client) -> None:
    private = record_pb2.Permissions(admin_read=True, admin_write=True)
    client.registry.Register(registry_pb2.RegisterRequest(handle="88.118.8/PRIV", values=[
        record_pb2.Value(index=1, type="URL", text="https://public"),
        record_pb2.Value(index=2, type="batchNo", text="SECRET-BATCH", permissions=private),
    ]), metadata=ADMIN)
    anonymous = payload(resolve(client, "88.118.8/PRIV"))
    assert [v.index for v in anonymous.values] == [1]
    admin = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/PRIV"),
                                    metadata=ADMIN, timeout=5)
    assert [v.index for v in payload(admin).values] == [1, 2]
    # And the anonymous view did not get polluted by the private one (separate cache keys).
    assert [v.index for v in payload(resolve(client, "88.118.8/PRIV")).values] == [1]


def test_type_and_index_filters_select_the_union(client: Client) -> None:
    client.register("88.118.8/F", ("URL", "u"), ("DESC", "d"), ("productName", "p"))
    response = resolve(client, "88.118.8/F", types=["URL"], indexes=[3])
    assert [v.index for v in payload(response).values] == [1, 3]
    keys = client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys
    verify(response.record, keys)


def test_every_answer_verifies_and_the_hot_path_does_not_re_sign(client: Client) -> None:
    client.register("88.118.8/SIG", ("URL", "u"))
    keys = client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys
    first, second = resolve(client, "88.118.8/SIG"), resolve(client, "88.118.8/SIG")
    assert verify(first.record, keys).handle == "88.118.8/SIG"
    assert first.SerializeToString() == second.SerializeToString()


def test_nonce_mode_signs_nonce_and_payload_digest(client: Client) -> None:
    client.register("88.118.8/NONCE", ("URL", "u"))
    keys = client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys
    nonce = os.urandom(16)
    response = resolve(client, "88.118.8/NONCE", nonce=nonce)
    verify(response.record, keys, nonce=nonce, nonce_signature=response.nonce_signature)
    assert response.nonce_signature
    assert hashlib.sha256(response.record.payload).digest()  # the digest that was bound


def test_batch_resolve_answers_in_request_order_with_per_item_errors(client: Client) -> None:
    client.register("88.118.8/B1", ("URL", "1"))
    client.register("88.118.8/B2", ("URL", "2"))
    out = client.resolver.BatchResolve(resolver_pb2.BatchResolveRequest(
        handles=["88.118.8/B2", "bad", "88.118.8/NONE", "88.118.8/b1"]), timeout=5)
    assert [r.handle for r in out.results] == ["88.118.8/B2", "bad", "88.118.8/NONE",
                                               "88.118.8/b1"]
    assert [r.WhichOneof("outcome") for r in out.results] == ["record", "error", "error",
                                                              "record"]
    assert out.results[1].error.code == 3 and out.results[2].error.code == 5
    keys = client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys
    assert verify(out.results[3].record, keys).values[0].text == "1"


def test_list_pages_through_a_prefix(client: Client) -> None:
    for i in range(7):
        client.register(f"88.118.8/L-{i}", ("URL", "x"))
    seen: list[str] = []
    token = ""
    while True:
        page = client.registry.List(registry_pb2.ListRequest(
            prefix="88.118.8", page_size=3, page_token=token), metadata=ADMIN)
        seen += page.handles
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"88.118.8/L-{i}" for i in range(7)]


def test_bulk_register_reports_failed_rows_and_keeps_the_rest(client: Client) -> None:
    rows = [registry_pb2.BulkRegisterRequest(
        handle=f"88.118.8/BULK-{i}", values=[record_pb2.Value(index=1, type="URL", text="x")])
        for i in range(50)]
    rows[10].handle = "broken"
    rows[20].values[0].index = 0
    response = client.registry.BulkRegister(iter(rows), metadata=ADMIN, timeout=30)
    assert response.accepted == 48
    assert sorted((f.row, f.error.code) for f in response.failures) == [(10, 3), (20, 3)]
    assert payload(resolve(client, "88.118.8/BULK-49")).handle == "88.118.8/BULK-49"


def test_stats_count_identifiers(client: Client) -> None:
    from idnode.v1 import sync_pb2, sync_pb2_grpc

    stub = sync_pb2_grpc.SyncStub(client.channel)
    # The node admin's identity and the node prefix's handle exist from the start.
    before = stub.GetStats(sync_pb2.GetStatsRequest())
    assert before.identifiers == 2
    client.register("88.118.8/S1", ("URL", "x"))
    stats = stub.GetStats(sync_pb2.GetStatsRequest())
    assert stats.identifiers == 3 and stats.sequence == before.sequence + 1
