"""Metadata templates through the real server: the lifecycle over gRPC, who may write
them, records checked against them with identical results over gRPC and the Handle REST
API, BulkRegister's per-row violations, and the ``idnode template`` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests.conftest import ADMIN, Client, basic
from tests.e2e.helpers import cli, part_template
from tests.http_client import Http
from tests.http_client import basic as http_basic

OWNER_SECRET = "owner-secret-0008"
OWNER = basic("300:88.118.8/ADMIN", OWNER_SECRET)
OTHER = basic("300:88.118.9/ADMIN", "other-secret-0009")
Field = registry_pb2.Template.Field
State = registry_pb2.Template


def values(**data: str) -> list[record_pb2.Value]:
    out = [record_pb2.Value(index=1, type="URL", text="https://example.com/p"),
           record_pb2.Value(index=1001, type="TEMPLATE", text="1.0")]
    indexes = {"productName": 2000, "weight": 2001, "productionDate": 2002}
    out += [record_pb2.Value(index=indexes[k], type=k, text=v) for k, v in data.items()]
    return out


GOOD = {"productName": "Spindle", "weight": "12.50", "productionDate": "2024-05-01"}
# Over length, not a number, and the required production date missing.
BAD = {"productName": "S" * 17, "weight": "heavy"}


@pytest.fixture
def owners(node: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{node.grpc_port}")
    for prefix, secret in (("88.118.8", OWNER_SECRET), ("88.118.9", "other-secret-0009")):
        c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix=prefix, owner_secret=secret), metadata=ADMIN, timeout=10)
    yield c
    c.close()


def refused(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=10, **kwargs)
    return caught.value


def said(err: grpc.RpcError) -> str:
    return err.details() or ""


def violations_of(err: grpc.RpcError) -> list[tuple[int, str, str, str]]:
    for item in err.trailing_metadata() or ():
        if item.key == "idnode-violations-bin":
            listed = record_pb2.Violations.FromString(item.value)
            return [(v.index, v.rule, v.value, v.detail) for v in listed.violations]
    return []


def publish_part(c: Client) -> None:
    c.registry.PutTemplate(registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=part_template()), metadata=OWNER, timeout=10)
    c.registry.PublishTemplate(registry_pb2.PublishTemplateRequest(
        prefix="88.118.8", version="1.0"), metadata=OWNER, timeout=10)


def test_a_template_goes_from_draft_to_published_to_withdrawn(owners: Client) -> None:
    r = owners.registry
    put = r.PutTemplate(registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=part_template()), metadata=OWNER, timeout=10)
    assert (put.prefix, put.template.state, put.template.updated_by) == \
        ("88.118.8", State.STATE_DRAFT, "300:88.118.8/ADMIN")
    # A draft is its writers' business; nothing is published yet.
    get = registry_pb2.GetTemplateRequest(prefix="88.118.8", version="1.0")
    assert refused(r.GetTemplate, get).code() == grpc.StatusCode.NOT_FOUND
    assert r.GetTemplate(get, metadata=OWNER, timeout=10).template.state == State.STATE_DRAFT
    assert list(r.ListTemplates(registry_pb2.ListTemplatesRequest(prefix="88.118.8"),
                                timeout=10).templates) == []
    latest = registry_pb2.GetTemplateRequest(prefix="88.118.8")
    assert "no published template" in said(refused(r.GetTemplate, latest))
    # A draft is edited in place and takes no records.
    edited = r.PutTemplate(registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=part_template(description="零件 v1")), metadata=OWNER,
        timeout=10)
    assert edited.template.description == "零件 v1"
    err = refused(r.Register, registry_pb2.RegisterRequest(
        handle="88.118.8/P0", values=values(**GOOD)), metadata=OWNER)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "is a draft" in said(err)
    done = r.PublishTemplate(registry_pb2.PublishTemplateRequest(
        prefix="88.118.8", version="1.0"), metadata=OWNER, timeout=10)
    assert done.template.state == State.STATE_PUBLISHED and done.template.published_at.seconds
    # Published: it never changes again; anyone may read it.
    err = refused(r.PutTemplate, registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=part_template()), metadata=OWNER)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "put a new version" in said(err)
    got = r.GetTemplate(latest, timeout=10).template
    assert (got.version, [f.type for f in got.fields]) == \
        ("1.0", ["productName", "weight", "productionDate"])
    assert got.fields[1].kind == Field.KIND_DECIMAL and got.fields[1].precision == 2
    first = r.Register(registry_pb2.RegisterRequest(handle="88.118.8/P1",
                                                    values=values(**GOOD)),
                       metadata=OWNER, timeout=10)
    # Withdrawn: no new records; its records stay writable.
    r.WithdrawTemplate(registry_pb2.WithdrawTemplateRequest(
        prefix="88.118.8", version="1.0"), metadata=OWNER, timeout=10)
    err = refused(r.Register, registry_pb2.RegisterRequest(
        handle="88.118.8/P2", values=values(**GOOD)), metadata=OWNER)
    assert "withdrawn" in said(err)
    r.Update(registry_pb2.UpdateRequest(handle="88.118.8/P1", etag=first.etag,
                                        values=values(**{**GOOD, "weight": "13"})),
             metadata=OWNER, timeout=10)
    err = refused(r.PublishTemplate, registry_pb2.PublishTemplateRequest(
        prefix="88.118.8", version="1.0"), metadata=OWNER)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = r.ListTemplates(registry_pb2.ListTemplatesRequest(prefix="88.118.8"),
                             timeout=10).templates
    assert [(t.version, t.state) for t in listed] == [("1.0", State.STATE_WITHDRAWN)]


def test_only_rights_on_the_prefix_handle_write_its_templates(owners: Client) -> None:
    r = owners.registry
    put = registry_pb2.PutTemplateRequest(prefix="88.118.8", template=part_template())
    assert refused(r.PutTemplate, put).code() == grpc.StatusCode.UNAUTHENTICATED
    err = refused(r.PutTemplate, put, metadata=OTHER)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "300:88.118.9/ADMIN may not write the templates of 88.118.8" in said(err)
    r.PutTemplate(put, metadata=ADMIN, timeout=10)  # the node admin may
    publish = registry_pb2.PublishTemplateRequest(prefix="88.118.8", version="1.0")
    assert refused(r.PublishTemplate, publish, metadata=OTHER).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    assert refused(r.WithdrawTemplate, publish, metadata=OTHER).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    r.PublishTemplate(publish, metadata=OWNER, timeout=10)
    # Reading a published template needs nothing: it is schema.
    got = r.GetTemplate(registry_pb2.GetTemplateRequest(prefix="88.118.8"), metadata=OTHER,
                        timeout=10)
    assert got.template.version == "1.0"
    err = refused(r.PutTemplate, registry_pb2.PutTemplateRequest(
        prefix="99.1", template=part_template()), metadata=ADMIN)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "not served" in said(err)


def test_a_bad_template_is_refused_with_every_problem_listed(owners: Client) -> None:
    bad = part_template(version="1 0")
    bad.fields.add(name="重量", type="weight", id_index=1999, kind=Field.KIND_DATE,
                   date_format="yy")
    err = refused(owners.registry.PutTemplate, registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=bad), metadata=OWNER)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [rule for _, rule, _, _ in violations_of(err)] == \
        ["version", "idIndex", "format", "name", "idType"]
    assert "(5 violations)" in said(err)


def test_a_record_breaking_three_rules_gets_one_error_naming_all_three_on_both_doors(
        owners: Client, node: Node) -> None:
    publish_part(owners)
    err = refused(owners.registry.Register, registry_pb2.RegisterRequest(
        handle="88.118.8/BAD", values=values(**BAD)), metadata=OWNER)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert said(err).startswith("88.118.8/BAD does not follow template 88.118.8 version "
                                    "1.0 (3 violations): index 2000 (产品名称): maxLength:")
    over_grpc = violations_of(err)
    assert [(i, rule) for i, rule, _, _ in over_grpc] == \
        [(2000, "maxLength"), (2001, "number"), (2002, "required")]
    http = Http(node.http_port)
    rest_values = [{"index": v.index, "type": v.type,
                    "data": {"format": "string", "value": v.text}} for v in values(**BAD)]
    status, answer, _ = http.put("88.118.8/BAD", rest_values,
                                 auth=http_basic("300:88.118.8/ADMIN", OWNER_SECRET))
    assert (status, answer["responseCode"]) == (400, 2)
    assert answer["message"] == said(err)
    assert [(v["index"], v["rule"], v["value"], v["detail"])
            for v in answer["violations"]] == over_grpc
    assert refused(owners.resolver.Resolve, resolver_pb2.ResolveRequest(
        handle="88.118.8/BAD")).code() == grpc.StatusCode.NOT_FOUND


def test_a_good_record_registers_on_both_doors_and_names_its_template_publicly(
        owners: Client, node: Node) -> None:
    publish_part(owners)
    owners.registry.Register(registry_pb2.RegisterRequest(
        handle="88.118.8/GOOD", values=values(**GOOD)), metadata=OWNER, timeout=10)
    status, _, _ = Http(node.http_port).put(
        "88.118.8/GOOD-REST", [{"index": v.index, "type": v.type, "data": v.text}
                               for v in values(**GOOD)],
        auth=http_basic("300:88.118.8/ADMIN", OWNER_SECRET))
    assert status == 201
    seen = record_pb2.Record.FromString(owners.resolver.Resolve(resolver_pb2.ResolveRequest(
        handle="88.118.8/GOOD"), timeout=10).record.payload)  # anonymously
    assert [(v.index, v.type, v.text) for v in seen.values if v.index == 1001] == \
        [(1001, "TEMPLATE", "1.0")]


def test_bulk_register_reports_each_rows_violations(owners: Client) -> None:
    publish_part(owners)
    rows = [registry_pb2.BulkRow(handle=f"88.118.8/B{n}", values=values(**data))
            for n, data in enumerate((GOOD, BAD, GOOD))]
    answer = owners.registry.BulkRegister(iter([registry_pb2.BulkRegisterRequest(rows=rows)]),
                                          metadata=OWNER, timeout=10)
    assert answer.accepted == 2 and [f.row for f in answer.failures] == [1]
    failure = answer.failures[0]
    assert failure.handle == "88.118.8/B1" and failure.error.code == 3
    assert [(v.index, v.rule) for v in failure.error.violations] == \
        [(2000, "maxLength"), (2001, "number"), (2002, "required")]


def test_the_cli_puts_publishes_lists_gets_and_withdraws_templates(
        owners: Client, node: Node, tmp_path: Path) -> None:
    owner = {"IDNODE_IDENTITY": "300:88.118.8/ADMIN", "IDNODE_SECRET": OWNER_SECRET}
    document: dict[str, Any] = {
                "prefix": "88.118.8", "version": "2.0", "type": 1, "description": "零件",
                "items": [{"name": "产品名称", "idType": "productName", "idIndex": "2000",
                           "required": True, "metadata": {"type": "string", "maxLength": 16}},
                          {"name": "颜色", "idType": "color", "idIndex": 2003,
                           "metadata": {"type": "enum", "enum": ["red", "blue"]}}]}
    path = tmp_path / "part.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    code, out = cli(node, "template", "put", str(path), "--prefix", "88.118.8", env=owner)
    assert code == 0, out
    assert "draft 88.118.8 version 2.0 stored (2 items)" in out
    yaml_path = tmp_path / "part.yaml"
    yaml_path.write_text("version: '2.1'\nitems:\n  - {name: 名, idType: productName, "
                         "idIndex: 2000, metadata: {type: strng, pattern: '(a+)+'}}\n",
                         encoding="utf-8")
    code, out = cli(node, "template", "put", str(yaml_path), "--prefix", "88.118.8",
                    env=owner)
    assert code == 2 and "2 problem(s), nothing sent" in out
    assert "type: 'strng' is not a data type" in out and "pattern:" in out
    code, out = cli(node, "template", "publish", "--prefix", "88.118.8", "--version", "2.0",
                    env=owner)
    assert code == 0 and "88.118.8 version 2.0 published" in out
    code, out = cli(node, "template", "get", "--prefix", "88.118.8")
    shown = json.loads(out)
    assert (shown["version"], shown["state"], shown["items"][1]["metadata"]["enum"]) == \
        ("2.0", "published", ["red", "blue"])
    assert shown["items"][0]["idIndex"] == 2000 and shown["publishedAt"].endswith("Z")
    code, out = cli(node, "template", "list", "--prefix", "88.118.8", "--json")
    assert code == 0 and [json.loads(line)["state"] for line in out.splitlines()] == \
        ["published"]
    code, out = cli(node, "template", "put", str(path), "--prefix", "88.118.8", env=owner)
    assert code == 1 and "ALREADY_EXISTS" in out
    moved = {**document, "version": "3.0", "items": [{**document["items"][0],
                                                      "idIndex": 2005}]}
    path.write_text(json.dumps(moved, ensure_ascii=False), encoding="utf-8")
    code, out = cli(node, "template", "put", str(path), "--prefix", "88.118.8", env=owner)
    assert code == 1 and "INVALID_ARGUMENT" in out  # only the node knows other versions
    assert "  index 2005 productName (产品名称): idIndex: productName is at idIndex 2000 " \
           "in version 2.0" in out
    code, out = cli(node, "template", "withdraw", "--prefix", "88.118.8", "--version",
                    "2.0", env={"IDNODE_IDENTITY": "300:88.118.9/ADMIN",
                                "IDNODE_SECRET": "other-secret-0009"})
    assert code == 1 and "PERMISSION_DENIED" in out
    code, out = cli(node, "template", "withdraw", "--prefix", "88.118.8", "--version",
                    "2.0", env=owner)
    assert code == 0 and "withdrawn" in out
