"""Field-level data authorisation (数据授权) through the real servers: who reads which item
of a record based on a template, on every door, and who may write or hand out access.

The world: prefix A = 88.118.8 (owner ``300:88.118.8/ADMIN``) and another enterprise's
prefix B = 88.118.9; ``300:88.118.8/PARTNER`` (a principal), ``300:88.118.8/MEMBER`` (a
principal in the group ``200:88.118.8/PARTNERS``). Template 1.0 of A: 2000 productName
(public), 2001 price (granted to PARTNER, read and write), 2002 supplier (granted to the
group PARTNERS, read). The record ``88.118.8/P1`` has a URL at 1, the template reference
at 1001 and the three items.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from idnode.v1 import admin_pb2, admin_pb2_grpc, record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests import handle_wire as w
from tests.conftest import ADMIN, Client, NodeFactory, basic
from tests.e2e.helpers import wait_for
from tests.http_client import Http
from tests.http_client import basic as http_basic

pytestmark = pytest.mark.e2e

A, B = "88.118.8", "88.118.9"
OWNER = (f"300:{A}/ADMIN", "owner-secret-0008")
OTHER = (f"300:{B}/ADMIN", "other-secret-0009")
PARTNER = (f"300:{A}/PARTNER", "partner-secret-0001")
MEMBER = (f"300:{A}/MEMBER", "member-secret-0001")
CALLERS: dict[str, tuple[str, str] | None] = {
    "anonymous": None, "partner": PARTNER, "member": MEMBER, "other enterprise": OTHER,
    "owner": OWNER}
ITEM = f"{A}/P1"
Field = registry_pb2.Template.Field
# What each caller sees of ITEM (indexes), on every door.
EXPECTED = {
    "anonymous": [1, 1001, 2000],
    "partner": [1, 1001, 2000, 2001],
    "member": [1, 1001, 2000, 2002],
    "other enterprise": [1, 1001, 2000],
    "owner": [1, 1001, 2000, 2001, 2002],
}


def text(index: int, type_: str, data: str) -> record_pb2.Value:
    return record_pb2.Value(index=index, type=type_, text=data)


def grant(index: int, data: str) -> record_pb2.Value:
    return record_pb2.Value(index=index, type="DATA_GRANT", text=data, permissions=(
        record_pb2.Permissions(admin_read=True, admin_write=True, public_read=False)))


@pytest.fixture
def gnode(node_factory: NodeFactory) -> Node:
    return node_factory(handle_listen="127.0.0.1:0", handle_idle_timeout_seconds=0.5)


@pytest.fixture
def world(gnode: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{gnode.grpc_port}")
    reg = c.registry
    for prefix, (_, secret) in ((A, OWNER), (B, OTHER)):
        reg.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix=prefix, owner_secret=secret), metadata=ADMIN, timeout=10)
    owner = basic(*OWNER)
    for identity, secret in (PARTNER, MEMBER):
        reg.Register(registry_pb2.RegisterRequest(handle=identity.partition(":")[2], values=[
            text(300, "HS_SECKEY", secret)]), metadata=owner, timeout=10)
    reg.Register(registry_pb2.RegisterRequest(handle=f"{A}/PARTNERS", values=[
        record_pb2.Value(index=200, type="HS_VLIST", vlist=record_pb2.ValueList(refs=[
            record_pb2.ValueRef(handle=f"{A}/MEMBER", index=300)]))]),
        metadata=owner, timeout=10)
    reg.PutTemplate(registry_pb2.PutTemplateRequest(prefix=A, template=registry_pb2.Template(
        version="1.0", description="零件", fields=[
            Field(name="产品名称", type="productName", id_index=2000, required=True,
                  kind=Field.KIND_STRING),
            Field(name="价格", type="price", id_index=2001, kind=Field.KIND_DECIMAL,
                  grants=[f"300:{A}/PARTNER rw"]),
            Field(name="供应商", type="supplier", id_index=2002, kind=Field.KIND_STRING,
                  grants=[f"200:{A}/PARTNERS"]),
        ])), metadata=owner, timeout=10)
    reg.PublishTemplate(registry_pb2.PublishTemplateRequest(prefix=A, version="1.0"),
                        metadata=owner, timeout=10)
    reg.Register(registry_pb2.RegisterRequest(handle=ITEM, values=[
        text(1, "URL", "https://example.com/p1"), text(1001, "TEMPLATE", "1.0"),
        text(2000, "productName", "Spindle"), text(2001, "price", "12.50"),
        text(2002, "supplier", "ACME")]), metadata=owner, timeout=10)
    yield c
    c.close()


def md(who: str) -> tuple[tuple[str, str], ...]:
    identity = CALLERS[who]
    return basic(*identity) if identity else ()


def auth(who: str) -> str | None:
    identity = CALLERS[who]
    return http_basic(*identity) if identity else None


def grpc_indexes(c: Client, who: str, indexes: tuple[int, ...] = ()) -> list[int]:
    answer = c.resolver.Resolve(resolver_pb2.ResolveRequest(
        handle=ITEM, indexes=list(indexes)), metadata=md(who), timeout=10)
    return sorted(v.index for v in record_pb2.Record.FromString(answer.record.payload).values)


def rest_indexes(api: Http, who: str) -> list[int]:
    status, body = api.get(ITEM, auth=auth(who))
    assert status == 200, body
    return sorted(v["index"] for v in body["values"])


def snms_indexes(api: Http, who: str) -> list[int]:
    status, body, _ = api.call("GET", f"/identityv2/data/detail?handle={ITEM}",
                               auth=auth(who))
    assert status == 200 and body["status"] == 1, body
    shown = [v["index"] for v in body["data"]["value"]]
    if body["data"]["templateVersion"]:
        shown.append(1001)  # detail names the template apart from the values
    return sorted(shown)


def handle_protocol_indexes(node: Node) -> list[int]:
    """The anonymous view over UDP; the TCP answer must be the same."""
    framed = w.resolve_request(ITEM)
    udp = w.parse_answer(w.udp_exchange(node.handle_udp_port, framed)[0])
    tcp = w.parse_answer(w.tcp_exchange(node.handle_tcp_port, framed))
    shown = sorted(v.index for v in w.parse_values(udp.body)[1])
    assert sorted(v.index for v in w.parse_values(tcp.body)[1]) == shown
    return shown


def matrix(c: Client, api: Http, node: Node) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for who in CALLERS:
        seen = {"grpc": grpc_indexes(c, who), "rest": rest_indexes(api, who),
                "snms": snms_indexes(api, who)}
        if who == "anonymous":
            seen["handle"] = handle_protocol_indexes(node)
        out[who] = seen
    return out


def test_every_door_shows_each_caller_exactly_the_items_it_may_read(
        world: Client, gnode: Node) -> None:
    api = Http(gnode.http_port)
    got = matrix(world, api, gnode)
    want = {who: {door: EXPECTED[who] for door in seen} for who, seen in got.items()}
    assert got == want
    # Asked again (every answer cached now), the same.
    assert matrix(world, api, gnode) == want


def test_a_filter_asking_only_for_items_not_granted_is_refused_like_private_values(
        world: Client, gnode: Node) -> None:
    cases = {"anonymous": grpc.StatusCode.UNAUTHENTICATED,
             "other enterprise": grpc.StatusCode.PERMISSION_DENIED,
             "member": grpc.StatusCode.PERMISSION_DENIED}
    for who, code in cases.items():
        with pytest.raises(grpc.RpcError) as err:
            grpc_indexes(world, who, indexes=(2001,))
        assert err.value.code() == code, who
        assert "private" in (err.value.details() or "")
    assert grpc_indexes(world, "partner", indexes=(2001,)) == [2001]
    assert grpc_indexes(world, "member", indexes=(2000, 2001)) == [2000]
    api = Http(gnode.http_port)
    status, body = api.get(ITEM, "?index=2002")
    assert status == 401, body
    status, body = api.get(ITEM, "?index=2002", auth=auth("partner"))
    assert status == 403, body
    status, body = api.get(ITEM, "?index=2002", auth=auth("member"))
    assert status == 200 and [v["index"] for v in body["values"]] == [2002]


def merge(c: Client, who: str, values: list[record_pb2.Value]) -> None:
    etag = c.resolver.Resolve(resolver_pb2.ResolveRequest(handle=ITEM), metadata=ADMIN,
                              timeout=10).etag
    c.registry.Update(registry_pb2.UpdateRequest(
        handle=ITEM, values=values, etag=etag, mode=registry_pb2.UpdateRequest.MODE_MERGE),
        metadata=md(who), timeout=10)


def test_a_read_write_grantee_writes_its_item_and_nothing_else(world: Client,
                                                               gnode: Node) -> None:
    merge(world, "partner", [text(2001, "price", "13.00")])
    answer = world.resolver.Resolve(resolver_pb2.ResolveRequest(handle=ITEM, indexes=[2001]),
                                    metadata=md("partner"), timeout=10)
    assert record_pb2.Record.FromString(answer.record.payload).values[0].text == "13.00"
    refused = [("partner", [text(2000, "productName", "Other")]),
               ("partner", [text(2001, "price", "1.00"), text(2002, "supplier", "X")]),
               ("partner", [grant(1100, f"300:{A}/PARTNER rw 2002")]),
               ("member", [text(2002, "supplier", "Me")]),  # read only
               ("other enterprise", [text(2001, "price", "0.01")])]
    for who, values in refused:
        with pytest.raises(grpc.RpcError) as err:
            merge(world, who, values)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (who, values)
    # The template still holds: a grantee's value breaking it is refused with its rule.
    with pytest.raises(grpc.RpcError) as err:
        merge(world, "partner", [text(2001, "price", "cheap")])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The Handle REST API's partial put is the same write.
    api = Http(gnode.http_port)
    status, body, _ = api.put(ITEM, [{"index": 2001, "type": "price",
                                      "data": {"format": "string", "value": "14.00"}}],
                              "?index=2001", auth=auth("partner"))
    assert status == 200, body
    status, body, _ = api.put(ITEM, [{"index": 2000, "type": "productName",
                                      "data": {"format": "string", "value": "x"}}],
                              "?index=2000", auth=auth("partner"))
    assert status == 403, body


def test_identifier_grants_add_readers_override_the_template_and_are_audited(
        world: Client, gnode: Node) -> None:
    api = Http(gnode.http_port)
    merge(world, "owner", [grant(1100, f"300:{B}/ADMIN r 2001,2002"),
                           grant(1101, f"300:{A}/PARTNER none 2001")])
    assert grpc_indexes(world, "other enterprise") == [1, 1001, 2000, 2001, 2002]
    assert rest_indexes(api, "other enterprise") == [1, 1001, 2000, 2001, 2002]
    assert grpc_indexes(world, "partner") == [1, 1001, 2000]  # taken away here
    assert grpc_indexes(world, "anonymous") == EXPECTED["anonymous"]
    # The owner's SNMS update (a whole-record replace with a write-scoped token) keeps the
    # grants it cannot send back, like HS_ values.
    _, login, _ = api.call("POST", "/identity/token", {"username": OWNER[0],
                                                       "password": OWNER[1]})
    _, updated, _ = api.call("PUT", "/identityv2/data", {
        "handle": ITEM, "templateVersion": "1.0", "value": [
            {"index": 1, "type": "URL", "data": "https://example.com/p1"},
            {"index": 2000, "type": "productName", "data": "Spindle-2"},
            {"index": 2001, "type": "price", "data": "12.50"},
            {"index": 2002, "type": "supplier", "data": "ACME"}]},
        auth=f"Bearer {login['data']['token']}")
    assert updated["status"] == 1, updated
    assert grpc_indexes(world, "other enterprise") == [1, 1001, 2000, 2001, 2002]
    assert snms_indexes(api, "other enterprise") == [1, 1001, 2000, 2001, 2002]
    status, _, _ = api.call("DELETE", f"/api/handles/{ITEM}?index=1101", auth=auth("owner"))
    assert status == 200
    assert grpc_indexes(world, "partner") == [1, 1001, 2000, 2001]
    admin = admin_pb2_grpc.AdminStub(world.channel)
    entries = wait_for(admin, 2, prefix=A, outcome="ok")
    actions = [(e.action, e.target, e.message) for e in entries if e.action in
               ("grant", "revoke")]
    assert actions[0][:2] == ("revoke", ITEM) and f"-300:{A}/PARTNER" in actions[0][2]
    assert actions[1][:2] == ("grant", ITEM)
    assert f"+300:{B}/ADMIN r 2001,2002" in actions[1][2]


def test_grants_are_rights_writes_a_write_token_or_a_malformed_grant_is_refused(
        world: Client) -> None:
    token = admin_pb2_grpc.AdminStub(world.channel).CreateToken(
        admin_pb2.CreateTokenRequest(scope="write"),
        metadata=basic(*OWNER), timeout=10).secret
    etag = world.resolver.Resolve(resolver_pb2.ResolveRequest(handle=ITEM), metadata=ADMIN,
                                  timeout=10).etag
    with pytest.raises(grpc.RpcError) as err:
        world.registry.Update(registry_pb2.UpdateRequest(
            handle=ITEM, values=[grant(1100, f"300:{B}/ADMIN r 2001")], etag=etag,
            mode=registry_pb2.UpdateRequest.MODE_MERGE),
            metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bad: list[tuple[record_pb2.Value, str]] = [
        (grant(1100, f"300:{B}/ADMIN r 12"), "2000 or more"),
        (grant(1100, f"300:{B}/ADMIN maybe 2001"), "access must be"),
        (grant(1150, "nobody 2001"), "must read"),
        (grant(1050, f"300:{B}/ADMIN r 2001"), "1100"),
        (text(1120, "URL", "https://x"), "reserved"),
    ]
    for value, said in bad:
        with pytest.raises(grpc.RpcError) as err:
            merge(world, "owner", [value])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, value
        assert said in (err.value.details() or ""), (said, err.value.details())


def test_callers_granted_the_same_items_share_one_signed_view(world: Client,
                                                              gnode: Node) -> None:
    # A second principal in the PARTNERS group sees what MEMBER sees: one view for both.
    owner = basic(*OWNER)
    world.registry.Register(registry_pb2.RegisterRequest(handle=f"{A}/MEMBER2", values=[
        text(300, "HS_SECKEY", "member2-secret-01")]), metadata=owner, timeout=10)
    etag = world.resolver.Resolve(resolver_pb2.ResolveRequest(handle=f"{A}/PARTNERS"),
                                  metadata=ADMIN, timeout=10).etag
    world.registry.Update(registry_pb2.UpdateRequest(handle=f"{A}/PARTNERS", values=[
        record_pb2.Value(index=200, type="HS_VLIST", vlist=record_pb2.ValueList(refs=[
            record_pb2.ValueRef(handle=f"{A}/MEMBER", index=300),
            record_pb2.ValueRef(handle=f"{A}/MEMBER2", index=300)]))], etag=etag),
        metadata=owner, timeout=10)
    signed = gnode.core.resolver.metrics.sign_view
    first = grpc_indexes(world, "member")
    before = _count(signed)
    second = world.resolver.Resolve(resolver_pb2.ResolveRequest(handle=ITEM),
                                    metadata=basic(f"300:{A}/MEMBER2", "member2-secret-01"),
                                    timeout=10)
    assert sorted(v.index for v in record_pb2.Record.FromString(
        second.record.payload).values) == first == EXPECTED["member"]
    assert _count(signed) == before  # served from the view MEMBER's resolve signed


def _count(counter: Any) -> float:
    return float(counter._value.get())


def test_a_templates_grants_are_shown_only_to_those_who_may_write_it(world: Client,
                                                                     gnode: Node) -> None:
    def grants(who: str) -> list[list[str]]:
        got = world.registry.GetTemplate(registry_pb2.GetTemplateRequest(
            prefix=A, version="1.0"), metadata=md(who), timeout=10)
        return [list(f.grants) for f in got.template.fields]
    assert grants("owner") == [[], [f"300:{A}/PARTNER rw"], [f"200:{A}/PARTNERS"]]
    assert grants("anonymous") == grants("partner") == grants("other enterprise") == \
        [[], [], []]
    status, body, _ = Http(gnode.http_port).call(
        "GET", f"/snms/api/v5/template?prefix={A}&version=1.0", auth=auth("other enterprise"))
    assert status == 200 and body["status"] == 1
    assert all("grants" not in item for item in body["data"]["items"])
