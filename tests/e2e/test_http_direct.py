"""The HTTP door answers the hot GET /api/handles/{handle} without ASGI (the server's
direct path); every answer must be byte for byte what the ASGI path writes.

Each test sends the same raw bytes to the node's HTTP door and to a second server over
the same app with the direct path switched off (``HttpServer(direct=False)``), reads
both connections to their end and compares status lines, headers (one by one, in
order) and bodies — plus that the direct path really answered the requests it should.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app import Node
from node.web.server import HttpServer
from tests.conftest import NodeFactory
from tests.http_client import ADMIN_AUTH, Http
from tests.servers import wait_until
from tests.tls_certs import CA, client_context

HANDLE = "88.118.8/DIRECT-1"
PATH = f"/api/handles/{HANDLE}"
HOST = b"Host: 127.0.0.1\r\n"


@pytest.fixture
def node(node_factory: NodeFactory) -> Node:
    node = node_factory()
    api = Http(node.http_port)
    assert api.put(HANDLE, [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x/1"}},
        {"index": 2, "type": "NAME", "data": {"format": "string", "value": "零件 <b>"}},
    ])[0] == 201
    return node


@pytest.fixture
def asgi(node: Node) -> Iterator[HttpServer]:
    """The same app, every request through ASGI."""
    assert node.http is not None
    server = HttpServer("127.0.0.1:0", node.http.app, direct=False)
    server.start()
    wait_until(lambda: server.started, 10, message="the ASGI-only server did not start")
    yield server
    server.stop()


def _exchange(port: int, raw: bytes) -> bytes:
    """Everything the server writes back to ``raw`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(raw)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _responses(data: bytes, heads: frozenset[int] = frozenset()
               ) -> list[tuple[bytes, list[bytes], bytes]]:
    """(status line, header lines, body) of each response in ``data`` (content-length
    framed; the responses numbered in ``heads`` answer HEAD: no body on the wire)."""
    out: list[tuple[bytes, list[bytes], bytes]] = []
    rest = data
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines[1:]
                      if line.lower().startswith(b"content-length:"))
        if len(out) in heads:
            length = 0
        out.append((lines[0], lines[1:], rest[:length]))
        rest = rest[length:]
    return out


def _same(node: Node, asgi: HttpServer, raw: bytes, *, direct: int,
          heads: frozenset[int] = frozenset()) -> list[tuple[bytes, list[bytes], bytes]]:
    """Send ``raw`` to both servers; assert equal answers and that ``direct`` of them
    were answered on the node's direct path (none on the other server)."""
    assert node.http is not None
    before = node.http.tally.direct
    fast = _exchange(node.http_port, raw)
    slow = _exchange(asgi.port, raw)
    assert node.http.tally.direct - before == direct
    assert asgi.tally.direct == 0
    got, want = _responses(fast, heads), _responses(slow, heads)
    assert len(got) == len(want)
    for (status, headers, body), (status2, headers2, body2) in zip(got, want, strict=True):
        assert status == status2
        assert len(headers) == len(headers2), (headers, headers2)
        for header, header2 in zip(headers, headers2, strict=True):
            assert header == header2
        assert body == body2
    assert fast == slow  # and nothing else on the wire either
    return got


def _get(target: str, *extra: bytes, method: bytes = b"GET", close: bool = True) -> bytes:
    return (method + b" " + target.encode() + b" HTTP/1.1\r\n" + HOST + b"".join(extra)
            + (b"Connection: close\r\n" if close else b"") + b"\r\n")


@pytest.mark.parametrize("target", [
    PATH,                                               # the hot GET
    "/api/handles/88.118.8%2FDIRECT-1",                 # percent-encoded
    "/api/handles/88.118.8/direct-1",                   # another spelling
    "/api/handles/88.118.8/NOPE",                       # 404, Handle-style
    "/api/handles/88.118.8/%ZZ",                        # bad percent-encoding
    "/api/handles/88.118.8/%FF%FE",                     # not UTF-8
    "/api/handles/88.118.8/%01",                        # a control character
    "/api/handles/77.1/ELSEWHERE",                      # a prefix not served here
    "/api/handles/88.118/ADMIN",                        # the prefix admin identity
])
def test_plain_gets_answer_the_same_bytes_directly(node: Node, asgi: HttpServer,
                                                   target: str) -> None:
    [(status, _, _)] = _same(node, asgi, _get(target), direct=1)
    assert status.startswith(b"HTTP/1.1 ")


@pytest.mark.parametrize("query", [
    "?signed=true", "?type=URL", "?index=1&index=2", "?index=1,2", "?type=NOPE",
    "?pretty", "?auth=true", "?index=x", "?signed=true&type=NAME",
])
def test_query_strings_answer_the_same_bytes(node: Node, asgi: HttpServer,
                                             query: str) -> None:
    _same(node, asgi, _get(PATH + query), direct=1)


@pytest.mark.parametrize("authorization", [
    ADMIN_AUTH, "Basic bm9ib2R5OnNlY3JldA==", "Bearer not-a-token", "Basic ???", "Digest x",
])
def test_callers_with_credentials_get_their_own_answer_either_way(
        node: Node, asgi: HttpServer, authorization: str) -> None:
    _same(node, asgi, _get(PATH, f"Authorization: {authorization}\r\n".encode()), direct=1)


def test_head_answers_the_get_headers_without_a_body(node: Node, asgi: HttpServer) -> None:
    [(status, headers, body)] = _same(node, asgi, _get(PATH, method=b"HEAD"), direct=1,
                                      heads=frozenset({0}))
    assert status == b"HTTP/1.1 200 OK" and body == b""
    assert headers[:2] == [b"content-type: application/json",
                           b"content-length: " + headers[1].split(b": ")[1]]
    assert int(headers[1].split(b": ")[1]) > 0


def test_http_1_0_and_connection_close_end_the_connection_the_same_way(
        node: Node, asgi: HttpServer) -> None:
    raw = b"GET " + PATH.encode() + b" HTTP/1.0\r\n" + HOST + b"\r\n"
    [(_, headers, _)] = _same(node, asgi, raw, direct=1)
    assert headers[-1] == b"connection: close"
    [(_, headers, _)] = _same(node, asgi, _get(PATH), direct=1)
    assert headers[-1] == b"connection: close"


def test_pipelined_requests_keep_their_order_around_asgi_ones(
        node: Node, asgi: HttpServer) -> None:
    put = (b"PUT " + PATH.encode() + b" HTTP/1.1\r\n" + HOST
           + b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")  # refused
    raw = (_get(PATH, close=False) + _get("/api/handles/88.118.8/NOPE", close=False)
           + put + _get(PATH + "?type=URL", close=False) + _get("/healthz", close=False)
           + _get(PATH, method=b"HEAD", close=False) + _get(PATH))
    # The two before the PUT are answered directly; the rest queue behind it.
    answers = _same(node, asgi, raw, direct=2, heads=frozenset({5}))
    assert [a[0].split(b" ")[1] for a in answers] == [b"200", b"404", b"400", b"200",
                                                      b"200", b"200", b"200"]


def test_keep_alive_connections_take_the_direct_path_again_after_asgi(
        node: Node, asgi: HttpServer) -> None:
    assert node.http is not None
    with socket.create_connection(("127.0.0.1", node.http_port), 5) as sock:
        for target in ("/healthz", PATH, "/healthz", PATH):
            before = node.http.tally.direct
            sock.sendall(_get(target, close=False))
            data = b""
            while b"\r\n\r\n" not in data or len(_responses(data)[0][2]) < int(
                    next(h for h in _responses(data)[0][1]
                         if h.startswith(b"content-length")).split(b": ")[1]):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200 OK")
            assert node.http.tally.direct - before == (1 if target == PATH else 0)


def test_a_get_with_a_body_goes_through_asgi_and_answers_the_same(
        node: Node, asgi: HttpServer) -> None:
    _same(node, asgi, _get(PATH, b"Content-Length: 3\r\n", close=True) + b"abc", direct=0)


def test_direct_answers_count_in_the_request_metrics(node: Node, asgi: HttpServer) -> None:
    def count(code: str) -> float:
        return node.metrics.registry.get_sample_value(
            "idnode_http_requests_total", {"route": "/api/handles/*", "code": code}) or 0.0

    ok, missing = count("200"), count("404")
    _same(node, asgi, _get(PATH, close=False) + _get(PATH, close=False)
          + _get("/api/handles/88.118.8/NOPE"), direct=3)
    # Both servers share the app, hence its metrics: 2 × 2 hits and 2 × 1 miss.
    assert count("200") - ok == 4
    assert count("404") - missing == 2


def test_over_tls_client_certificates_reach_the_handler_the_same_way(
        node_factory: NodeFactory, tmp_path: Path) -> None:
    ca = CA()
    folder = tmp_path / "tls"
    folder.mkdir()
    ca.issue("idnode test server", server=True).write(folder / "s.pem", folder / "s.key")
    (folder / "ca.pem").write_bytes(ca.pem)
    node = node_factory(tls_cert_file=str(folder / "s.pem"), tls_key_file=str(folder / "s.key"),
                        tls_client_ca_file=str(folder / "ca.pem"),
                        http_tls_client_auth="optional")
    assert node.http is not None and node.tls is not None
    asgi = HttpServer("127.0.0.1:0", node.http.app, tls=node.tls, client_auth="optional",
                      direct=False)
    asgi.start()
    try:
        wait_until(lambda: asgi.started, 10, message="the ASGI-only server did not start")
        clients = {
            "none": client_context(ca),
            "unproved identity": client_context(
                ca, ca.issue("x", uris=("hdl:88.118.8/ADMIN",)), tmp_path / "c1"),
            "no identity": client_context(ca, ca.issue("plain"), tmp_path / "c2"),
        }
        for name, context in clients.items():
            for target in ("/api/handles/88.118/ADMIN", "/api/handles/88.118.8/NOPE"):
                before = node.http.tally.direct
                fast = _tls_exchange(node.http_port, context, _get(target))
                slow = _tls_exchange(asgi.port, context, _get(target))
                assert node.http.tally.direct - before == 1, name
                assert fast == slow, (name, target, fast[:200], slow[:200])
    finally:
        asgi.stop()


def _tls_exchange(port: int, context: ssl.SSLContext, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), 5) as plain, \
            context.wrap_socket(plain, server_hostname="127.0.0.1") as sock:
        sock.sendall(raw)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
