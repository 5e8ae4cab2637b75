"""HTTP and gRPC cannot drift: the same register / resolve / update / delete / error
cases through both doors of one node, each answered with the same row of the one
error table (gRPC status ⇔ HTTP status) and the same resulting record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from node.errors import TABLE
from tests.conftest import ADMIN, Client
from tests.http_client import ADMIN_AUTH, Http, basic

WRONG = basic("300:88.118/ADMIN", "not-the-secret-00")
WRONG_GRPC = (("authorization", WRONG),)
HTTP_OF = {mapping.status: mapping.http_status for _, mapping in TABLE}
HTTP_OF["OK"] = 200


def _grpc_status(call: Callable[[], Any]) -> str:
    try:
        call()
    except grpc.RpcError as err:
        return str(err.code().name)
    return "OK"


def _checked(call: Callable[[], Any]) -> Callable[[], str]:
    return lambda: _grpc_status(call)


def _values(url: str) -> list[record_pb2.Value]:
    return [record_pb2.Value(index=1, type="URL", text=url)]


def _rest(url: str) -> list[dict[str, Any]]:
    return [{"index": 1, "type": "URL", "data": url}]


def cases(g: Client, h: Http, tag: str) -> list[tuple[str, Callable[[], Any], str]]:
    """(case, call, expected status) for one door; ``tag`` keeps the doors' ids apart."""
    ident = f"88.118.8/M-{tag}"
    if tag == "grpc":
        def register(handle: str, meta: Any = ADMIN) -> Any:
            return g.registry.Register(registry_pb2.RegisterRequest(
                handle=handle, values=_values("https://m")), metadata=meta)

        def resolve(handle: str) -> Any:
            return g.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle))

        def replace() -> Any:
            etag = resolve(ident).etag
            return g.registry.Update(registry_pb2.UpdateRequest(
                handle=ident, etag=etag, values=_values("https://n")), metadata=ADMIN)

        def delete(handle: str) -> Any:
            etag = resolve(handle).etag if _grpc_status(lambda: resolve(handle)) == "OK" \
                else "s1"
            return g.registry.Delete(registry_pb2.DeleteRequest(handle=handle, etag=etag),
                                     metadata=ADMIN)
        calls = [
            ("register", lambda: register(ident), "OK"),
            ("register again", lambda: register(ident), "ALREADY_EXISTS"),
            ("register anonymous", lambda: register(ident + "-A", ()), "UNAUTHENTICATED"),
            ("register wrong secret", lambda: register(ident + "-W", WRONG_GRPC),
             "UNAUTHENTICATED"),
            ("register bad handle", lambda: register("88.118.8/bad handle"),
             "INVALID_ARGUMENT"),
            ("register elsewhere", lambda: register("86.1/X"), "NOT_FOUND"),
            ("resolve", lambda: resolve(ident), "OK"),
            ("resolve absent", lambda: resolve(ident + "-none"), "NOT_FOUND"),
            ("replace", replace, "OK"),
            ("delete", lambda: delete(ident), "OK"),
            ("delete absent", lambda: delete(ident), "NOT_FOUND"),
        ]
        return [(name, _checked(c), want) for name, c, want in calls]

    def put(handle: str, auth: str | None = ADMIN_AUTH, query: str = "?overwrite=false",
            url: str = "https://m") -> int:
        return h.call("PUT", f"/api/handles/{handle}{query}", {"values": _rest(url)},
                      auth=auth)[0]

    return [
        ("register", lambda: put(ident), "OK"),
        ("register again", lambda: put(ident), "ALREADY_EXISTS"),
        ("register anonymous", lambda: put(ident + "-A", None), "UNAUTHENTICATED"),
        ("register wrong secret", lambda: put(ident + "-W", WRONG), "UNAUTHENTICATED"),
        ("register bad handle", lambda: put("88.118.8/bad%20handle"), "INVALID_ARGUMENT"),
        ("register elsewhere", lambda: put("86.1/X"), "NOT_FOUND"),
        ("resolve", lambda: h.get(ident)[0], "OK"),
        ("resolve absent", lambda: h.get(ident + "-none")[0], "NOT_FOUND"),
        ("replace", lambda: put(ident, query="?overwrite=true", url="https://n"), "OK"),
        ("delete", lambda: h.call("DELETE", f"/api/handles/{ident}", auth=ADMIN_AUTH)[0],
         "OK"),
        ("delete absent", lambda: h.call("DELETE", f"/api/handles/{ident}",
                                         auth=ADMIN_AUTH)[0], "NOT_FOUND"),
    ]


def test_both_doors_answer_every_case_with_the_same_row_of_the_error_table(
        node: Node) -> None:
    g = Client(f"127.0.0.1:{node.grpc_port}")
    h = Http(node.http_port)
    try:
        grpc_cases = cases(g, h, "grpc")
        http_cases = cases(g, h, "http")
        assert [c[0] for c in grpc_cases] == [c[0] for c in http_cases]
        for (name, via_grpc, want), (_, via_http, _) in zip(grpc_cases, http_cases,
                                                           strict=True):
            got_grpc, got_http = via_grpc(), via_http()
            assert got_grpc == want, f"gRPC {name}: {got_grpc}"
            expected_http = 201 if (name == "register" and want == "OK") else HTTP_OF[want]
            assert got_http == expected_http, f"HTTP {name}: {got_http}, want {expected_http}"
    finally:
        g.close()


@pytest.mark.parametrize("door", ["grpc", "http"])
def test_the_record_a_door_writes_is_the_record_the_other_reads(node: Node, door: str) -> None:
    g = Client(f"127.0.0.1:{node.grpc_port}")
    h = Http(node.http_port)
    handle = f"88.118.8/X-{door}"
    try:
        if door == "grpc":
            g.register(handle, ("URL", "https://x"), ("productName", "主轴"))
        else:
            h.put(handle, [{"index": 1, "type": "URL", "data": "https://x"},
                           {"index": 2, "type": "productName", "data": "主轴"}])
        via_grpc = record_pb2.Record.FromString(g.resolver.Resolve(
            resolver_pb2.ResolveRequest(handle=handle)).record.payload)
        via_http = h.get(handle)[1]
        assert via_http["handle"] == via_grpc.handle == handle
        assert [(v["index"], v["type"], v["data"]["value"], v["ttl"])
                for v in via_http["values"]] == [
            (v.index, v.type, v.text, v.ttl) for v in via_grpc.values]
    finally:
        g.close()
