"""Who may do what, through the real servers: the Handle permission model as a table.

Rows are callers, columns are actions; every cell is tried through gRPC and (where the
Handle REST API has the action) HTTP, and the whole table is compared at once so a
failure shows every cell that differs.

The world (prefix A = 88.118.10, prefix B = 88.118.20, both allocated by the node admin):
- ``writer``: ``300:88.118.10/WRITER``, named by an HS_ADMIN on ``0.NA/88.118.10`` with
  add/delete handle and add/modify/remove value only (``000001110011``);
- ``member``: ``300:88.118.10/MEMBER``, a member of A's admin group (HS_VLIST 200);
- ``token``: a ``resolve`` token of A's admin;
- ``admin A``, ``admin B``: the prefix admins ``300:<prefix>/ADMIN``;
- ``node admin``: ``300:88.118/ADMIN``.
"""

from __future__ import annotations

import base64
import itertools
import urllib.parse
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from idnode.v1 import admin_pb2, admin_pb2_grpc, record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests.conftest import ADMIN, ADMIN_SECRET, Client, NodeFactory, basic
from tests.http_client import Http

A, B = "88.118.10", "88.118.20"
PRIVATE = record_pb2.Permissions(admin_read=True, admin_write=True, public_read=False)
WHO = ("anonymous", "token", "writer", "member", "admin A", "admin B", "node admin")
ACTIONS = ("resolve public", "resolve private", "register", "update", "delete",
           "change HS_ADMIN", "allocate prefix", "approve application")
Y, N = "allow", "deny"
EXPECTED = {  # who -> the verdict per action, in ACTIONS order
    "anonymous":  (Y, N, N, N, N, N, N, N),
    "token":      (Y, Y, N, N, N, N, N, N),
    "writer":     (Y, N, Y, Y, Y, N, N, N),
    "member":     (Y, Y, Y, Y, Y, Y, N, N),
    "admin A":    (Y, Y, Y, Y, Y, Y, N, N),
    "admin B":    (Y, N, N, N, N, N, N, N),
    "node admin": (Y, Y, Y, Y, Y, Y, Y, Y),
}
HTTP_ACTIONS = ACTIONS[:6]  # prefixes and applications have no Handle REST call
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
Metadata = tuple[tuple[str, str], ...]


def text(index: int, type_: str, data: str, private: bool = False) -> record_pb2.Value:
    return record_pb2.Value(index=index, type=type_, text=data,
                            permissions=PRIVATE if private else None)


def admin_value(index: int, handle: str, ref: int, bits: str) -> record_pb2.Value:
    return record_pb2.Value(index=index, type="HS_ADMIN", admin=record_pb2.AdminRef(
        handle=handle, index=ref, permissions=bits))


def merge(client: Client, handle: str, values: list[record_pb2.Value],
          metadata: Metadata) -> None:
    etag = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                   metadata=ADMIN, timeout=10).etag
    client.registry.Update(registry_pb2.UpdateRequest(
        handle=handle, values=values, etag=etag, mode=registry_pb2.UpdateRequest.MODE_MERGE),
        metadata=metadata, timeout=10)


class World:
    """The callers' credentials, as gRPC metadata and as HTTP authorization values."""

    def __init__(self, node: Node, client: Client) -> None:
        self.client = client
        reg = client.registry
        secrets = {}
        for prefix in (A, B):
            secrets[prefix] = reg.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
                prefix=prefix), metadata=ADMIN, timeout=10).owner_secret
        owner_a = basic(f"300:{A}/ADMIN", secrets[A])
        for name in ("WRITER", "MEMBER"):
            reg.Register(registry_pb2.RegisterRequest(handle=f"{A}/{name}", values=[
                text(300, "HS_SECKEY", f"secret-of-{name.lower()}-0001")]),
                metadata=owner_a, timeout=10)
        merge(client, f"0.NA/{A}", [admin_value(101, f"{A}/WRITER", 300, "000001110011")],
              owner_a)
        merge(client, f"0.NA/{A}", [record_pb2.Value(
            index=200, type="HS_VLIST", vlist=record_pb2.ValueList(refs=[
                record_pb2.ValueRef(handle=f"{A}/ADMIN", index=300),
                record_pb2.ValueRef(handle=f"{A}/MEMBER", index=300)]))], owner_a)
        token = admin_pb2_grpc.AdminStub(client.channel).CreateToken(
            admin_pb2.CreateTokenRequest(scope="resolve"), metadata=owner_a, timeout=10).secret
        self.identities: dict[str, tuple[str, str] | None] = {
            "anonymous": None,
            "writer": (f"300:{A}/WRITER", "secret-of-writer-0001"),
            "member": (f"300:{A}/MEMBER", "secret-of-member-0001"),
            "admin A": (f"300:{A}/ADMIN", secrets[A]),
            "admin B": (f"300:{B}/ADMIN", secrets[B]),
            "node admin": ("300:88.118/ADMIN", ADMIN_SECRET),
        }
        self.token = token
        self.owner_a = owner_a
        reg.Register(registry_pb2.RegisterRequest(handle=f"{A}/ITEM", values=[
            text(1, "URL", "https://item"), text(2, "PRICE", "42", private=True)]),
            metadata=owner_a, timeout=10)
        self.serial = itertools.count(1)

    def metadata(self, who: str) -> Metadata:
        if who == "token":
            return (("authorization", f"Bearer {self.token}"),)
        identity = self.identities[who]
        return basic(*identity) if identity else ()

    def authorization(self, who: str) -> str | None:
        if who == "token":
            return f"Bearer {self.token}"
        identity = self.identities[who]
        if identity is None:
            return None
        user = urllib.parse.quote(identity[0], safe="")
        return "Basic " + base64.b64encode(f"{user}:{identity[1]}".encode()).decode()

    def fresh(self, who: str) -> str:
        """A new identifier under A, registered by A's admin, for one destructive cell."""
        handle = f"{A}/T-{next(self.serial)}"
        self.client.registry.Register(registry_pb2.RegisterRequest(
            handle=handle, values=[text(1, "URL", "https://t")]), metadata=self.owner_a,
            timeout=10)
        return handle


def grpc_cells(world: World, who: str) -> dict[str, Callable[[], Any]]:
    client, md = world.client, world.metadata(who)
    reg = client.registry

    def resolve_private() -> None:
        answer = client.resolver.Resolve(resolver_pb2.ResolveRequest(
            handle=f"{A}/ITEM", indexes=[2]), metadata=md, timeout=10)
        record = record_pb2.Record.FromString(answer.record.payload)
        assert [v.text for v in record.values] == ["42"]

    def approve() -> None:
        applications = admin_pb2_grpc.AdminStub(client.channel)
        applied = applications.ApplyPrefix(admin_pb2.ApplyPrefixRequest(
            prefix=f"88.118.{60 + next(world.serial)}", enterprise=admin_pb2.Enterprise(
                name="某某机械有限公司", credit_code="91350100M000100Y43",
                contact_name="张三", contact_phone="13800000000",
                contact_email="ops@example.cn", industry="C34")), timeout=10)
        applications.ApproveApplication(admin_pb2.ApproveApplicationRequest(
            application_id=applied.application.application_id), metadata=md, timeout=10)

    return {
        "resolve public": lambda: client.resolver.Resolve(
            resolver_pb2.ResolveRequest(handle=f"{A}/ITEM"), metadata=md, timeout=10),
        "resolve private": resolve_private,
        "register": lambda: reg.Register(registry_pb2.RegisterRequest(
            handle=f"{A}/NEW-{next(world.serial)}", values=[text(1, "URL", "https://n")]),
            metadata=md, timeout=10),
        "update": lambda: merge(client, world.fresh(who), [text(1, "URL", "https://u")], md),
        "delete": lambda: reg.Delete(registry_pb2.DeleteRequest(
            handle=(h := world.fresh(who)), etag=_etag(client, h)), metadata=md, timeout=10),
        "change HS_ADMIN": lambda: merge(client, world.fresh(who), [
            admin_value(101, f"{A}/ADMIN", 300, "111111111111")], md),
        "allocate prefix": lambda: reg.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix=f"88.118.{30 + next(world.serial)}"), metadata=md, timeout=10),
        "approve application": approve,
    }


def http_cells(world: World, http: Http, who: str) -> dict[str, Callable[[], int]]:
    auth = world.authorization(who)
    url = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://h"}}

    def status(method: str, path: str, body: object = None) -> int:
        return http.call(method, path, body, auth=auth)[0]

    return {
        "resolve public": lambda: status("GET", f"/api/handles/{A}/ITEM"),
        "resolve private": lambda: status("GET", f"/api/handles/{A}/ITEM?index=2"),
        "register": lambda: status("PUT", f"/api/handles/{A}/H-{next(world.serial)}"
                                          "?overwrite=false", {"values": [url]}),
        "update": lambda: status("PUT", f"/api/handles/{world.fresh(who)}?index=1",
                                 {"values": [url]}),
        "delete": lambda: status("DELETE", f"/api/handles/{world.fresh(who)}"),
        "change HS_ADMIN": lambda: status(
            "PUT", f"/api/handles/{world.fresh(who)}?index=101", {"values": [{
                "index": 101, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
                    "handle": f"{A}/ADMIN", "index": 300,
                    "permissions": "111111111111"}}}]}),
    }


def _etag(client: Client, handle: str) -> str:
    return str(client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                       metadata=ADMIN, timeout=10).etag)


@pytest.fixture
def world(node_factory: NodeFactory) -> tuple[Node, World]:
    node = node_factory()
    return node, World(node, Client(f"127.0.0.1:{node.grpc_port}"))


def test_every_caller_gets_exactly_its_rights_over_grpc(world: tuple[Node, World]) -> None:
    _, w = world
    got: dict[str, tuple[str, ...]] = {}
    for who in WHO:
        cells = grpc_cells(w, who)
        row = []
        for action in ACTIONS:
            try:
                cells[action]()
                row.append(Y)
            except grpc.RpcError as exc:
                assert exc.code() in REFUSED, (who, action, exc.code(), exc.details())
                expected = grpc.StatusCode.UNAUTHENTICATED if who == "anonymous" \
                    else grpc.StatusCode.PERMISSION_DENIED
                assert exc.code() == expected, (who, action, exc.details())
                assert exc.details(), (who, action)
                row.append(N)
        got[who] = tuple(row)
    assert got == EXPECTED


def test_every_caller_gets_exactly_its_rights_over_http(world: tuple[Node, World]) -> None:
    node, w = world
    http = Http(node.http_port)
    got: dict[str, tuple[str, ...]] = {}
    for who in WHO:
        cells = http_cells(w, http, who)
        row = []
        for action in HTTP_ACTIONS:
            status = cells[action]()
            assert status in (200, 201, 401, 403), (who, action, status)
            if status in (401, 403):
                assert status == (401 if who == "anonymous" else 403), (who, action)
            row.append(Y if status in (200, 201) else N)
        got[who] = tuple(row)
    assert got == {who: verdicts[:len(HTTP_ACTIONS)] for who, verdicts in EXPECTED.items()}


def test_a_refused_write_changes_nothing(world: tuple[Node, World]) -> None:
    _, w = world
    before = w.client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=f"{A}/ITEM"),
                                       metadata=ADMIN, timeout=10)
    for who in ("writer", "admin B", "token"):
        with pytest.raises(grpc.RpcError):
            merge(w.client, f"{A}/ITEM", [admin_value(101, f"{B}/ADMIN", 300,
                                                      "111111111111")], w.metadata(who))
    after = w.client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=f"{A}/ITEM"),
                                      metadata=ADMIN, timeout=10)
    assert after.etag == before.etag


def test_a_re_import_is_told_unchanged_only_about_what_the_caller_may_read(
        world: tuple[Node, World]) -> None:
    # ITEM holds a public URL and a private PRICE "42". The writer may register under A
    # but not read private values: comparing against more than it may read would make
    # BulkRegister an oracle for PRICE.
    node, w = world
    url, price = text(1, "URL", "https://item"), text(2, "PRICE", "42", private=True)

    def bulk(who: str, *rows: list[record_pb2.Value], report: bool = True,
             handle: str = f"{A}/ITEM") -> registry_pb2.BulkRegisterResponse:
        messages = [registry_pb2.BulkRegisterRequest(report_unchanged=report)]
        messages += [registry_pb2.BulkRegisterRequest(handle=handle, values=values)
                     for values in rows]
        response: registry_pb2.BulkRegisterResponse = w.client.registry.BulkRegister(
            iter(messages), metadata=w.metadata(who), timeout=30)
        return response

    def outcome(response: registry_pb2.BulkRegisterResponse) -> tuple[int, int, list[int]]:
        return (response.accepted, response.unchanged,
                [f.error.code for f in response.failures])

    exists = grpc.StatusCode.ALREADY_EXISTS.value[0]
    sequence = node.store.last_sequence()
    guess_right, guess_wrong = [url, price], [url, text(2, "PRICE", "43", private=True)]
    assert outcome(bulk("writer", guess_right, guess_wrong)) == (0, 0, [exists, exists])
    assert outcome(bulk("writer", [url])) == (0, 1, [])  # all it may read, unchanged
    assert outcome(bulk("admin A", guess_right)) == (0, 1, [])
    assert outcome(bulk("admin A", [url], guess_wrong)) == (0, 0, [exists, exists])
    assert outcome(bulk("admin A", guess_right, report=False)) == (0, 0, [exists])
    assert outcome(bulk("admin A", [text(1, "URL", "https://item", private=True)])) == \
        (0, 0, [exists])  # the same data with other permissions is another value
    assert node.store.last_sequence() == sequence  # nothing was written
    assert outcome(bulk("admin A", [url], handle=f"{A}/NEW")) == (1, 0, [])

