"""The Handle REST API through a real HTTP client against a real node: what Handle
clients (pyhandle, b2handle, curl scripts) send and depend on."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from idnode.v1 import record_pb2, resolver_pb2
from node.app import Node
from node.verify import verify
from tests.conftest import Client
from tests.http_client import ADMIN_AUTH, ADMIN_SECRET, ADMIN_USER, Http, basic


def url(index: int, value: str) -> dict[str, Any]:
    return {"index": index, "type": "URL", "data": {"format": "string", "value": value}}


@pytest.fixture
def api(node: Node) -> Http:
    return Http(node.http_port)


@pytest.fixture
def grpc_client(node: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{node.grpc_port}")
    yield c
    c.close()


# --- reading ---------------------------------------------------------------------------


def test_every_value_carries_ttl_and_an_iso_timestamp_and_the_registered_spelling(
        api: Http) -> None:
    assert api.put("88.118.8/Mixed-Case", [url(1, "https://x")])[0] == 201
    status, body = api.get("88.118.8/mixed-case")
    assert status == 200 and body["responseCode"] == 1
    assert body["handle"] == "88.118.8/Mixed-Case"
    value = body["values"][0]
    assert value["ttl"] == 86400
    assert value["timestamp"].endswith("Z") and value["timestamp"][10] == "T"


def test_raw_and_percent_encoded_paths_name_the_same_identifier(api: Http) -> None:
    api.put("88.118.8/EQ/CNC-7", [url(1, "https://cnc")])
    raw = api.get("88.118.8/EQ/CNC-7")
    encoded = api.get(urllib.parse.quote("88.118.8/EQ/CNC-7", safe=""))
    assert raw == encoded and raw[0] == 200


def test_type_and_index_filters_select_their_union(api: Http) -> None:
    api.put("88.118.8/F", [url(1, "https://a"),
                           {"index": 2, "type": "EMAIL", "data": "a@example.com"},
                           {"index": 3, "type": "DESC", "data": "three"}])
    status, body = api.get("88.118.8/F", "?type=EMAIL&index=3&auth=true&pretty")
    assert status == 200
    assert [v["index"] for v in body["values"]] == [2, 3]


def test_a_filter_that_matches_nothing_is_200_with_response_code_200(api: Http) -> None:
    api.put("88.118.8/NOTHING", [url(1, "https://a")])
    assert api.get("88.118.8/nothing", "?type=EMAIL") == (
        200, {"responseCode": 200, "handle": "88.118.8/NOTHING", "values": []})


def test_every_error_is_json_with_response_code_and_handle(api: Http) -> None:
    status, body = api.get("88.118.8/ABSENT")
    assert status == 404 and body["responseCode"] == 100
    assert body["handle"] == "88.118.8/ABSENT" and "not found" in body["message"]
    status, body = api.get("no-slash-here")
    assert status == 400 and body["responseCode"] == 102
    status, body = api.get("86.1/X")
    assert status == 404 and body["responseCode"] == 301


def test_nothing_under_api_handles_redirects(api: Http) -> None:
    api.put("88.118.8/REDIR", [url(1, "https://example.com/go")])
    status, _, headers = api.call("GET", "/api/handles/88.118.8/REDIR")
    assert status == 200 and "location" not in headers


def test_the_prefix_admin_resolves_anonymously_with_hs_admin_and_no_secret(
        api: Http, node: Node) -> None:
    grpc = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        from idnode.v1 import registry_pb2
        from tests.conftest import ADMIN

        grpc.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix="88.118.5", owner_secret="owner-secret-00005"), metadata=ADMIN)
    finally:
        grpc.close()
    status, body = api.get("88.118.5/ADMIN")
    assert status == 200
    assert [(v["type"], v["data"]["format"]) for v in body["values"]] == [("HS_ADMIN", "admin")]
    assert body["values"][0]["data"]["value"]["index"] == 300
    assert "owner-secret-00005" not in json.dumps(body)


def test_signed_answers_verify_and_plain_clients_see_no_difference(
        api: Http, grpc_client: Client) -> None:
    api.put("88.118.8/SIGNED", [url(1, "https://s")])
    plain = api.get("88.118.8/SIGNED")[1]
    signed = api.get("88.118.8/SIGNED", "?signed=true")[1]
    assert "signed" not in plain and {k: signed[k] for k in plain} == plain
    keys = grpc_client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys
    record = record_pb2.SignedRecord(
        payload=base64.b64decode(signed["signed"]["payload"]),
        signature=base64.b64decode(signed["signed"]["signature"]),
        key_id=signed["signed"]["keyId"], algorithm=signed["signed"]["algorithm"])
    assert verify(record, keys).handle == "88.118.8/SIGNED"


# --- writing ---------------------------------------------------------------------------


def test_put_takes_every_data_format_and_bare_strings(api: Http) -> None:
    values = [url(1, "https://x"),
              {"index": 2, "type": "DESC", "data": "plain string"},
              {"index": 3, "type": "HS_PUBKEY", "data": {"format": "base64", "value": "AAEC"}},
              {"index": 4, "type": "BLOB", "data": {"format": "hex", "value": "0a0b"}, "ttl": "60"},
              {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
                  "handle": "88.118.8/FORMATS", "index": "3", "permissions": "011111110011"}}},
              {"index": 200, "type": "HS_VLIST", "data": {"format": "vlist", "value": [
                  {"handle": "88.118.8/FORMATS", "index": 3}]}}]
    assert api.put("88.118.8/FORMATS", values)[0] == 201
    got = {v["index"]: v for v in api.get("88.118.8/FORMATS")[1]["values"]}
    assert got[2]["data"] == {"format": "string", "value": "plain string"}
    assert got[3]["data"] == {"format": "base64", "value": "AAEC"}
    assert got[4]["data"] == {"format": "base64", "value": "Cgs="} and got[4]["ttl"] == 60
    assert got[100]["data"]["value"] == {"handle": "88.118.8/FORMATS", "index": 3,
                                         "permissions": "011111110011"}
    assert got[200]["data"] == {"format": "vlist",
                                "value": [{"handle": "88.118.8/FORMATS", "index": 3}]}


def test_put_overwrite_false_refuses_an_existing_identifier(api: Http) -> None:
    assert api.put("88.118.8/OW", [url(1, "https://1")])[0] == 201
    status, body, _ = api.put("88.118.8/OW", [url(1, "https://2")], "?overwrite=false")
    assert (status, body["responseCode"]) == (409, 101)
    assert api.put("88.118.8/OW", [url(1, "https://3")], "?overwrite=true")[0] == 200
    assert api.get("88.118.8/OW")[1]["values"][0]["data"]["value"] == "https://3"


def test_put_with_indexes_replaces_or_adds_exactly_those_values(api: Http) -> None:
    api.put("88.118.8/PART", [url(1, "https://1"), {"index": 2, "type": "DESC", "data": "two"},
                              {"index": 3, "type": "DESC", "data": "three"}])
    status, _, _ = api.put("88.118.8/PART",
                           [url(1, "https://new"), {"index": 5, "type": "DESC", "data": "five"},
                            {"index": 3, "type": "DESC", "data": "ignored"}],
                           "?index=1&index=5&overwrite=true")
    assert status == 200
    values = {v["index"]: v["data"]["value"] for v in api.get("88.118.8/PART")[1]["values"]}
    assert values == {1: "https://new", 2: "two", 3: "three", 5: "five"}
    status, body, _ = api.put("88.118.8/PART", [{"index": 2, "type": "DESC", "data": "x"}],
                              "?index=2&overwrite=false")
    assert (status, body["responseCode"]) == (409, 101)


def test_delete_whole_or_by_index(api: Http) -> None:
    api.put("88.118.8/DEL", [url(1, "https://1"), {"index": 2, "type": "DESC", "data": "d"}])
    status, body, _ = api.call("DELETE", "/api/handles/88.118.8/DEL?index=2", auth=ADMIN_AUTH)
    assert (status, body["responseCode"]) == (200, 1)
    assert [v["index"] for v in api.get("88.118.8/DEL")[1]["values"]] == [1]
    status, body, _ = api.call("DELETE", "/api/handles/88.118.8/DEL?index=9", auth=ADMIN_AUTH)
    assert (status, body["responseCode"]) == (400, 200)  # pyhandle's values_not_found
    assert api.call("DELETE", "/api/handles/88.118.8/DEL", auth=ADMIN_AUTH)[0] == 200
    assert api.get("88.118.8/DEL")[0] == 404


def test_listing_a_prefix_needs_rights_and_pages(api: Http) -> None:
    for i in range(5):
        api.put(f"88.118.8/L-{i}", [url(1, "https://l")])
    status, body, _ = api.call("GET", "/api/handles?prefix=88.118.8&pageSize=2", auth=ADMIN_AUTH)
    assert status == 200 and body["handles"] == ["88.118.8/L-0", "88.118.8/L-1"]
    status, body, _ = api.call("GET", "/api/handles?prefix=88.118.8&pageSize=2&page=2",
                               auth=ADMIN_AUTH)
    assert body["handles"] == ["88.118.8/L-4"] and "nextPageToken" not in body
    assert api.call("GET", "/api/handles?prefix=88.118.8")[0] == 401


def test_basic_user_names_are_percent_decoded_or_plain(api: Http) -> None:
    plain = basic(ADMIN_USER, ADMIN_SECRET, encode_user=False)
    assert api.put("88.118.8/AUTH-1", [url(1, "https://a")], auth=plain)[0] == 201
    assert api.put("88.118.8/AUTH-2", [url(1, "https://a")], auth=ADMIN_AUTH)[0] == 201


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "content_type", "auth", "status", "code"), [
    (b"{not json", "application/json", ADMIN_AUTH, 400, 2),
    (b'{"values": [{"index": 1, "type": "URL", "data": "x"}]}', "text/plain", ADMIN_AUTH,
     415, 2),
    (b'{"values": [{"index": 1, "type": "URL", "data": "a"},'
     b' {"index": 1, "type": "URL", "data": "b"}]}', "application/json", ADMIN_AUTH, 400, 2),
    (b'{"values": [{"index": 1, "type": "URL", "data": {"format": "nope", "value": "x"}}]}',
     "application/json", ADMIN_AUTH, 400, 2),
    (b'{"values": [{"index": 1, "type": "X", "data": {"format": "base64", "value": "!!"}}]}',
     "application/json", ADMIN_AUTH, 400, 2),
    (b'{"values": [{"index": 1, "type": "X", "data": {"format": "hex", "value": "zz"}}]}',
     "application/json", ADMIN_AUTH, 400, 2),
    (b'{"values": [{"index": 1, "type": "URL", "data": "x"}]}', "application/json",
     "Basic !!!", 401, 402),
    (b'{"values": [{"index": 1, "type": "URL", "data": "x"}]}', "application/json",
     None, 401, 402),
    (b'{"values": [{"index": 1, "type": "URL", "data": "x"}]}', "application/json",
     basic(ADMIN_USER, "wrong-secret-0000"), 401, 402),
])
def test_bad_puts_get_their_status_and_write_nothing(
        api: Http, raw: bytes, content_type: str, auth: str | None, status: int,
        code: int) -> None:
    got, body, headers = api.call("PUT", "/api/handles/88.118.8/BAD", raw=raw,
                                  content_type=content_type, auth=auth)
    assert (got, body["responseCode"], body["handle"]) == (status, code, "88.118.8/BAD")
    assert body["message"]
    if status == 401:
        assert headers["www-authenticate"].startswith("Basic")
    assert api.get("88.118.8/BAD")[0] == 404


@pytest.mark.parametrize("path", ["/api/handles/88.118.8/%ZZ", "/api/handles/88.118.8/%FF",
                                  "/api/handles/88.118.8/a%0Ab"])
def test_bad_percent_encoding_and_control_characters_are_invalid_handles(
        api: Http, path: str) -> None:
    status, body, _ = api.call("GET", path)
    assert (status, body["responseCode"]) == (400, 102)


def test_a_body_over_the_limit_is_refused(api: Http) -> None:
    big = b'{"values": [{"index": 1, "type": "URL", "data": "' + b"x" * (5 * 1024 * 1024) + b'"}]}'
    status, body, _ = api.call("PUT", "/api/handles/88.118.8/BIG", raw=big, auth=ADMIN_AUTH)
    assert status == 413 and body["responseCode"] == 2
    assert api.get("88.118.8/BIG")[0] == 404


# --- HTTP and gRPC cannot drift ----------------------------------------------------------


def test_written_over_http_resolves_identically_over_grpc_and_back(
        api: Http, grpc_client: Client) -> None:
    api.put("88.118.8/BOTH-1", [url(1, "https://h"), {"index": 2, "type": "productName",
                                                      "data": "主轴"}])
    answer = grpc_client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/both-1"))
    record = record_pb2.Record.FromString(answer.record.payload)
    http_values = api.get("88.118.8/BOTH-1")[1]["values"]
    assert [(v.index, v.type, v.text) for v in record.values] == [
        (v["index"], v["type"], v["data"]["value"]) for v in http_values]
    grpc_client.register("88.118.8/BOTH-2", ("URL", "https://g"), ("productName", "轴承"))
    body = api.get("88.118.8/both-2")[1]
    assert [(v["index"], v["type"], v["data"]["value"]) for v in body["values"]] == [
        (1, "URL", "https://g"), (2, "productName", "轴承")]
    # A write through one door is seen at once through the other (one cache, one core).
    api.put("88.118.8/BOTH-2", [url(1, "https://changed")], "?index=1")
    again = grpc_client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/BOTH-2"))
    assert record_pb2.Record.FromString(again.record.payload).values[0].text == "https://changed"
