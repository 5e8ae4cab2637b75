"""The SNMS-compatible API through a real HTTP client against a real node: what an
enterprise system integrated with SNMS sends (a token from username/password, records
against a published template, batches), and the envelope it depends on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from idnode.v1 import admin_pb2_grpc, registry_pb2
from node.app import Node
from tests.conftest import ADMIN, Client, basic
from tests.e2e.helpers import query, wait_for
from tests.http_client import Http
from tests.http_client import basic as http_basic

pytestmark = pytest.mark.e2e

OWNER_ID = "300:88.118.8/ADMIN"
OWNER_SECRET = "owner-secret-0008"
OTHER_ID = "300:88.118.9/ADMIN"
OTHER_SECRET = "other-secret-0009"
Field = registry_pb2.Template.Field


def part_template() -> registry_pb2.Template:
    return registry_pb2.Template(version="1.0", description="零件", fields=[
        Field(name="产品名称", type="productName", id_index=2000, required=True,
              kind=Field.KIND_STRING, min_length=1, max_length=16),
        Field(name="重量", type="weight", id_index=2001, kind=Field.KIND_DECIMAL,
              minimum="0", precision=2),
    ], industry_category="C", industry_specific="34", object_type=1)


@pytest.fixture
def owners(node: Node) -> Iterator[Client]:
    """Two prefixes with their admins (allocated by the node admin) and a published
    template on 88.118.8."""
    c = Client(f"127.0.0.1:{node.grpc_port}")
    for prefix, secret in (("88.118.8", OWNER_SECRET), ("88.118.9", OTHER_SECRET)):
        c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix=prefix, owner_secret=secret), metadata=ADMIN, timeout=10)
    owner = basic(OWNER_ID, OWNER_SECRET)
    c.registry.PutTemplate(registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=part_template()), metadata=owner, timeout=10)
    c.registry.PublishTemplate(registry_pb2.PublishTemplateRequest(
        prefix="88.118.8", version="1.0"), metadata=owner, timeout=10)
    yield c
    c.close()


@pytest.fixture
def api(node: Node, owners: Client) -> Http:
    return Http(node.http_port)


def call(api: Http, method: str, path: str, body: object = None, *,
         token: str | None = None, raw: bytes | None = None) -> dict[str, Any]:
    """One SNMS call; every envelope answer is HTTP 200."""
    status, answer, _ = api.call(method, path, body, raw=raw,
                                 auth=f"Bearer {token}" if token else None)
    assert status == 200, (status, answer)
    assert set(answer) == {"status", "message", "data"}
    return dict(answer)


def login(api: Http, username: str = OWNER_ID, password: str = OWNER_SECRET) -> str:
    answer = call(api, "POST", "/identity/token", {"username": username,
                                                   "password": password})
    assert answer["status"] == 1 and answer["message"] == "success", answer
    return str(answer["data"]["token"])


def record(handle: str, name: str = "Spindle", weight: str = "12.50",
           **extra: Any) -> dict[str, Any]:
    return {"handle": handle, "templateVersion": "1.0", "value": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x/p"}},
        {"index": 2000, "type": "productName", "data": {"format": "string", "value": name}},
        {"auth": 1, "index": 2001, "type": "weight",
         "data": {"format": "string", "value": weight}}], **extra}


def test_an_enterprise_system_logs_in_registers_reads_updates_and_deletes(api: Http) -> None:
    token = login(api)
    assert token.startswith("idn1.")
    created = call(api, "POST", "/identityv2/data", record("88.118.8/P1"), token=token)
    assert created == {"status": 1, "message": "success", "data": True}
    detail = call(api, "GET", "/identityv2/data/detail?handle=88.118.8/P1", token=token)
    assert detail["status"] == 1
    assert detail["data"] == {"prefix": "88.118.8", "handle": "88.118.8/P1",
                              "templateVersion": "1.0", "value": [
        {"index": 1, "type": "URL", "auth": 0,
         "data": {"format": "string", "value": "https://x/p"}},
        {"index": 2000, "type": "productName", "auth": 0,
         "data": {"format": "string", "value": "Spindle"}},
        {"index": 2001, "type": "weight", "auth": 1,
         "data": {"format": "string", "value": "12.50"}}]}
    # auth 1 is private: an anonymous reader does not see it.
    public = call(api, "GET", "/identityv2/data/detail?handle=88.118.8%2FP1")
    assert [v["index"] for v in public["data"]["value"]] == [1, 2000]
    updated = call(api, "PUT", "/identityv2/data", record("88.118.8/P1", name="Spindle-2"),
                   token=token)
    assert updated["status"] == 1
    detail = call(api, "GET", "/identityv2/data/detail?handle=88.118.8/P1", token=token)
    assert detail["data"]["value"][1]["data"]["value"] == "Spindle-2"
    # The same record resolves on the Handle REST API, with its template reference.
    status, rest = api.get("88.118.8/P1")
    assert status == 200
    assert {"index": 1001, "type": "TEMPLATE"}.items() <= rest["values"][1].items()
    assert call(api, "DELETE", "/identityv2/data", {"handle": "88.118.8/P1"},
                token=token)["data"] is True
    gone = call(api, "GET", "/identityv2/data/detail?handle=88.118.8/P1", token=token)
    assert gone["status"] == -2 and "标识不存在" in gone["message"]


def test_a_duplicate_create_says_already_exists_so_a_retry_after_504_is_success(
        api: Http) -> None:
    token = login(api)
    assert call(api, "POST", "/identityv2/data", record("88.118.8/D"), token=token)["status"] == 1
    again = call(api, "POST", "/identityv2/data", record("88.118.8/D"), token=token)
    assert again["status"] == -2 and "已存在" in again["message"] and again["data"] is None


def test_batch_create_answers_per_item_in_order_and_writes_only_the_valid_ones(
        api: Http) -> None:
    token = login(api)
    call(api, "POST", "/identityv2/data", record("88.118.8/B0"), token=token)
    items = [record("88.118.8/B1"), record("88.118.8/B0"),
             record("88.118.8/B2", name="S" * 17), record("88.118.8/B3")]
    answer = call(api, "POST", "/identityv2/data/batchCreate", items, token=token)
    assert answer["status"] == 1
    msgs = answer["data"]
    assert [m["handle"] for m in msgs] == ["88.118.8/B1", "88.118.8/B0", "88.118.8/B2",
                                           "88.118.8/B3"]
    assert msgs[0]["msg"] == "success" and msgs[3]["msg"] == "success"
    assert msgs[1]["msg"] == "标识已存在"
    assert "does not follow" in msgs[2]["msg"] and "2000" in msgs[2]["msg"]
    found = [call(api, "GET", f"/identityv2/data/detail?handle=88.118.8/B{n}",
                  token=token)["status"] for n in range(4)]
    assert found == [1, 1, -2, 1]


def test_batch_update_answers_per_item(api: Http) -> None:
    token = login(api)
    call(api, "POST", "/identityv2/data", record("88.118.8/U1"), token=token)
    answer = call(api, "PUT", "/identityv2/data/batchUpdate",
                  [record("88.118.8/U1", name="New"), record("88.118.8/U-NONE")], token=token)
    assert answer["data"][0] == {"handle": "88.118.8/U1", "msg": "success"}
    assert "标识不存在" in answer["data"][1]["msg"]


def test_batch_delete_reports_a_missing_handle_with_code_minus_2(api: Http) -> None:
    token = login(api)
    call(api, "POST", "/identityv2/data", record("88.118.8/X1"), token=token)
    answer = call(api, "DELETE", "/identityv2/data/batchDelete",
                  ["88.118.8/X1", "88.118.8/X-MISSING"], token=token)
    assert answer["data"] == [{"handle": "88.118.8/X1", "code": 1, "msg": "success"},
                              {"handle": "88.118.8/X-MISSING", "code": -2,
                               "msg": "标识不存在"}]


def test_a_batch_over_2000_items_is_refused_naming_the_limit(api: Http) -> None:
    token = login(api)
    answer = call(api, "DELETE", "/identityv2/data/batchDelete",
                  [f"88.118.8/N{n}" for n in range(2001)], token=token)
    assert answer["status"] == -2 and "2000" in answer["message"]


def test_a_wrong_password_is_minus_2_with_the_snms_message(api: Http) -> None:
    answer = call(api, "POST", "/identity/token", {"username": OWNER_ID, "password": "nope"})
    assert answer == {"status": -2, "message": "用户名/密码错误！", "data": None}


def test_the_prehashed_login_is_refused_with_a_message_naming_the_alternative(
        api: Http) -> None:
    answer = call(api, "POST", "/identity/token/v1",
                  {"username": OWNER_ID, "password": "ab" * 32})
    assert answer["status"] == -2 and "/identity/token" in answer["message"]


def test_no_or_a_bad_token_is_minus_1(api: Http) -> None:
    answer = call(api, "POST", "/identityv2/data", record("88.118.8/NT"))
    assert answer["status"] == -1
    answer = call(api, "POST", "/identityv2/data", record("88.118.8/NT"), token="idn1.x.y")
    assert answer["status"] == -1
    answer = call(api, "POST", "/identityv2/data/batchCreate", [record("88.118.8/NT")])
    assert answer["status"] == -1


def test_the_token_of_another_prefixs_admin_is_minus_3(api: Http) -> None:
    other = login(api, OTHER_ID, OTHER_SECRET)
    answer = call(api, "POST", "/identityv2/data", record("88.118.8/Z"), token=other)
    assert answer["status"] == -3 and answer["data"] is None


def test_malformed_json_is_minus_2_naming_the_problem(api: Http) -> None:
    token = login(api)
    answer = call(api, "POST", "/identityv2/data", raw=b"{not json", token=token)
    assert answer["status"] == -2 and "not valid JSON" in answer["message"]


def test_index_1001_and_non_string_formats_are_refused(api: Http) -> None:
    token = login(api)
    body = record("88.118.8/R")
    body["value"].append({"index": 1001, "type": "TEMPLATE",
                          "data": {"format": "string", "value": "1.0"}})
    body["value"].append({"index": 3, "type": "X", "data": {"format": "base64", "value": "AA"}})
    answer = call(api, "POST", "/identityv2/data", body, token=token)
    assert answer["status"] == -2
    assert "1001 is reserved" in answer["message"] and "format" in answer["message"]


def test_a_template_violation_has_the_same_message_as_on_the_handle_rest_api(
        api: Http) -> None:
    token = login(api)
    bad = record("88.118.8/V", name="S" * 17, weight="heavy")
    snms = call(api, "POST", "/identityv2/data", bad, token=token)
    rest_values = [{"index": v["index"], "type": v["type"], "data": v["data"],
                    **({"permissions": "1110"} if v.get("auth") else {})}
                   for v in bad["value"]]
    rest_values.append({"index": 1001, "type": "TEMPLATE", "data": "1.0"})
    status, rest, _ = api.put("88.118.8/V", rest_values,
                              auth=http_basic(OWNER_ID, OWNER_SECRET))
    assert status == 400
    assert snms["status"] == -2 and snms["message"] == rest["message"]
    assert "2 violations" in snms["message"]


def test_a_refused_login_is_audited_with_the_identity_and_never_the_password(
        api: Http, owners: Client) -> None:
    wrong = "wrong-pw-snms-4c1d"
    call(api, "POST", "/identity/token", {"username": OWNER_ID, "password": wrong})
    stub = admin_pb2_grpc.AdminStub(owners.channel)
    (entry,) = wait_for(stub, 1, outcome="refused")
    assert (entry.action, entry.target, entry.principal, entry.door) == (
        "create_token", OWNER_ID, OWNER_ID, "http")
    assert wrong.encode() not in b"".join(e.SerializeToString() for e in query(stub))


# --- /snms/api/v3|v5/template ---------------------------------------------------------------


def snms_template(version: str, *, v5: bool = True, **extra: Any) -> dict[str, Any]:
    """The body of the id-guide's examples (v5: idIndex as a string, as they send it)."""
    items: list[dict[str, Any]] = [
        {"name": "e1", "idType": "ip", "metadata": {"type": "string", "minLength": 1,
                                                    "maxLength": 10}, "required": True},
        {"name": "e2", "idType": "owner", "metadata": {"type": "string", "minLength": 1,
                                                       "maxLength": 20}, "required": False}]
    if v5:
        items[0]["idIndex"], items[1]["idIndex"] = "2100", "2101"
    return {"prefix": "88.118.8", "version": version, "industryCategory": "A",
            "industrySpecific": "01", "industryTrade": "011", "industrySubclass": "0111",
            "type": 1, "description": "测试模板", "items": items, **extra}


def template_record(handle: str, version: str, ip: str = "10.0.0.1") -> dict[str, Any]:
    return {"handle": handle, "templateVersion": version, "value": [
        {"index": 2100, "type": "ip", "data": {"format": "string", "value": ip}}]}


def test_an_enterprise_system_creates_reads_uses_and_deletes_a_v5_template(api: Http) -> None:
    token = login(api)
    path = "/snms/api/v5/template"
    assert call(api, "POST", path, snms_template("2.0"), token=token) == {
        "status": 1, "message": "success", "data": True}
    got = call(api, "GET", f"{path}?prefix=88.118.8&version=2.0", token=token)
    assert got["status"] == 1
    data = got["data"]
    assert {k: data[k] for k in ("prefix", "version", "industryCategory", "industrySubclass",
                                 "type", "description")} == {
        "prefix": "88.118.8", "version": "2.0", "industryCategory": "A",
        "industrySubclass": "0111", "type": 1, "description": "测试模板"}
    assert [(i["name"], i["idType"], i["idIndex"], i["required"], i["state"],
             i["metadata"]["maxLength"]) for i in data["items"]] == [
        ("e1", "ip", 2100, True, 1, 10), ("e2", "owner", 2101, False, 1, 20)]
    # Published at once: records are registered against it straight away.
    assert call(api, "POST", "/identityv2/data", template_record("88.118.8/T1", "2.0"),
                token=token)["status"] == 1
    too_long = call(api, "POST", "/identityv2/data",
                    template_record("88.118.8/T2", "2.0", ip="1" * 11), token=token)
    assert too_long["status"] == -2 and "maxLength" in too_long["message"]
    again = call(api, "POST", path, snms_template("2.0"), token=token)
    assert again["status"] == -2 and again["message"].startswith("模板已存在")
    # A published version never changes: PUT is refused, naming the way forward.
    changed = call(api, "PUT", path, snms_template("2.0"), token=token)
    assert changed["status"] == -2 and "put a new version" in changed["message"]
    # DELETE withdraws: no new record is based on it, the old one stays valid.
    assert call(api, "DELETE", path, {"prefix": "88.118.8", "version": "2.0"},
                token=token)["data"] is True
    refused = call(api, "POST", "/identityv2/data", template_record("88.118.8/T3", "2.0"),
                   token=token)
    assert refused["status"] == -2 and "withdrawn" in refused["message"]
    kept = call(api, "PUT", "/identityv2/data",
                template_record("88.118.8/T1", "2.0", ip="10.0.0.2"), token=token)
    assert kept["status"] == 1
    missing = call(api, "GET", f"{path}?prefix=88.118.8&version=9.9", token=token)
    assert missing["status"] == -2 and missing["message"].startswith("模板不存在")


def test_v3_templates_get_stable_indexes_and_answer_without_them(api: Http) -> None:
    token = login(api)
    path = "/snms/api/v3/template"
    assert call(api, "POST", path, snms_template("3.0", v5=False), token=token)["status"] == 1
    body = snms_template("3.1", v5=False)
    body["items"] = [body["items"][1], {"name": "e3", "idType": "site",
                                        "metadata": {"type": "string", "minLength": 1,
                                                     "maxLength": 5}}]
    assert call(api, "POST", path, body, token=token)["status"] == 1
    got = call(api, "GET", f"{path}?prefix=88.118.8&version=3.1")["data"]
    assert [(i["idType"], "idIndex" in i, "state" in i) for i in got["items"]] == [
        ("owner", False, False), ("site", False, False)]
    # The v5 view of the same versions shows the indexes the node gave: an idType keeps
    # its index in every version, a new one takes the next free index from 2000.
    # (version 1.0 of the fixture holds 2000 and 2001.)
    v5 = call(api, "GET", "/snms/api/v5/template?prefix=88.118.8&version=3.1")["data"]
    first = call(api, "GET", "/snms/api/v5/template?prefix=88.118.8&version=3.0")["data"]
    assert {i["idType"]: i["idIndex"] for i in first["items"]} == {"ip": 2002, "owner": 2003}
    assert {i["idType"]: i["idIndex"] for i in v5["items"]} == {"owner": 2003, "site": 2004}
    status, _, _ = api.call("PUT", path, body, auth=f"Bearer {token}")
    assert status == 405  # v3 has no update


def test_a_v5_put_updates_a_draft_incrementally(api: Http, owners: Client) -> None:
    owner = basic(OWNER_ID, OWNER_SECRET)
    owners.registry.PutTemplate(registry_pb2.PutTemplateRequest(
        prefix="88.118.8", template=registry_pb2.Template(version="4.0", fields=[
            Field(name="产品名称", type="productName", id_index=2000, kind=Field.KIND_STRING,
                  max_length=16)])), metadata=owner, timeout=10)
    token = login(api)
    change = {"prefix": "88.118.8", "version": "4.0", "description": "改", "items": [
        {"name": "名称", "idType": "productName", "idIndex": 2000, "state": 0,
         "metadata": {"type": "string", "minLength": 1, "maxLength": 32}},
        {"name": "颜色", "idType": "colour", "state": 1,
         "metadata": {"type": "string", "minLength": 1, "maxLength": 8}}]}
    assert call(api, "PUT", "/snms/api/v5/template", change, token=token)["status"] == 1
    got = call(api, "GET", "/snms/api/v5/template?prefix=88.118.8&version=4.0",
               token=token)["data"]
    assert got["description"] == "改" and got["state"] == "draft"
    assert [(i["name"], i["idType"], i["idIndex"], i["state"], i["metadata"]["maxLength"])
            for i in got["items"]] == [("名称", "productName", 2000, 0, 32),
                                       ("颜色", "colour", 2002, 1, 8)]
    renamed = call(api, "PUT", "/snms/api/v5/template", {**change, "version": "4.1"},
                   token=token)
    assert renamed["status"] == -2 and renamed["message"].startswith("模板不存在")


def test_template_routes_need_the_prefixs_rights_and_name_every_problem(api: Http) -> None:
    path = "/snms/api/v5/template"
    assert call(api, "POST", path, snms_template("5.0"))["status"] == -1
    other = login(api, OTHER_ID, OTHER_SECRET)
    assert call(api, "POST", path, snms_template("5.0"), token=other)["status"] == -3
    token = login(api)
    bad = snms_template("5.0")
    bad["items"][0]["idIndex"] = "1999"
    bad["items"][1]["metadata"] = {"type": "string", "minLength": 9, "maxLength": 2}
    refused = call(api, "POST", path, bad, token=token)
    assert refused["status"] == -2
    assert "idIndex" in refused["message"] and "minLength" in refused["message"], refused
    malformed = api.call("POST", path, raw=b"{", auth=f"Bearer {token}")
    assert malformed[1]["status"] == -2 and "not valid JSON" in malformed[1]["message"]
