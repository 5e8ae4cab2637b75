"""The Handle native protocol (RFC 3652) through real sockets on 127.0.0.1, driven by the
independent encoder in tests/handle_wire.py and compared with gRPC Resolve."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests import handle_wire as w
from tests.conftest import ADMIN, Client, NodeFactory


@pytest.fixture
def hnode(node_factory: NodeFactory) -> Node:
    return node_factory(handle_listen="127.0.0.1:0", handle_idle_timeout_seconds=0.5)


@pytest.fixture
def grpc_client(hnode: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{hnode.grpc_port}")
    yield c
    c.close()


def register(c: Client, handle: str, *values: record_pb2.Value) -> None:
    c.registry.Register(registry_pb2.RegisterRequest(handle=handle, values=list(values)),
                        metadata=ADMIN, timeout=10)


def text(index: int, vtype: str, data: str, **kw: object) -> record_pb2.Value:
    return record_pb2.Value(index=index, type=vtype, text=data, **kw)  # type: ignore[arg-type]


def grpc_values(c: Client, handle: str, types: tuple[str, ...] = (),
                indexes: tuple[int, ...] = ()) -> list[tuple[object, ...]]:
    """(index, type, data bytes, ttl, timestamp, permission bits) as gRPC sees them."""
    response = c.resolver.Resolve(resolver_pb2.ResolveRequest(
        handle=handle, types=list(types), indexes=list(indexes)), timeout=10)
    record = record_pb2.Record.FromString(response.record.payload)
    out: list[tuple[object, ...]] = []
    for v in record.values:
        kind = v.WhichOneof("data")
        data = v.text.encode() if kind == "text" else v.binary if kind == "binary" else None
        p = v.permissions
        perms = (8 if p.admin_read else 0) | (4 if p.admin_write else 0) | \
            (2 if p.public_read else 0) | (1 if p.public_write else 0)
        out.append((v.index, v.type, data, v.ttl or 86400, v.timestamp.seconds, perms))
    return out


def handle_values(answer: w.Answer, *, with_data: bool = True) -> list[tuple[object, ...]]:
    _handle, values = w.parse_values(answer.body)
    return [(v.index, v.type, v.data if with_data else None, v.ttl, v.timestamp,
             v.permissions) for v in values]


def udp(node: Node, framed: bytes) -> w.Answer:
    return w.parse_answer(w.udp_exchange(node.handle_udp_port, framed)[0])


def tcp(node: Node, framed: bytes) -> w.Answer:
    return w.parse_answer(w.tcp_exchange(node.handle_tcp_port, framed))


PN = "88.118.8/PN-0001"


@pytest.fixture
def part(grpc_client: Client) -> str:
    register(grpc_client, PN,
             text(1, "URL", "https://example.com/p/1", ttl=3600),
             text(2, "productName", "主轴"),
             record_pb2.Value(index=3, type="serial", binary=bytes(range(7))),
             text(4, "URL.mirror", "https://mirror.example.com/p/1"),
             text(5, "URL.backup", "https://backup.example.com/p/1"),
             text(6, "EMAIL", "ops@example.com"),
             text(7, "note", "private", permissions=record_pb2.Permissions(
                 admin_read=True, admin_write=True)))
    return PN


def test_udp_and_tcp_resolution_match_grpc_resolve(hnode: Node, grpc_client: Client,
                                                   part: str) -> None:
    expected = grpc_values(grpc_client, part)
    assert [v[0] for v in expected] == [1, 2, 3, 4, 5, 6]  # the private value is not public
    for ask in (udp, tcp):
        answer = ask(hnode, w.resolve_request(part.lower(), request_id=41))
        assert (answer.code, answer.opcode, answer.request_id) == (w.RC_SUCCESS, 1, 41)
        assert answer.op_flags & w.AT
        assert handle_values(answer) == expected
        assert w.parse_values(answer.body)[0] == part  # the registered spelling


def test_filters_by_index_type_and_type_prefix(hnode: Node, grpc_client: Client,
                                               part: str) -> None:
    for types, indexes in ((("EMAIL",), (1,)), ((), (2, 3)), (("URL",), ())):
        expected = grpc_values(grpc_client, part, types, indexes)
        for ask in (udp, tcp):
            answer = ask(hnode, w.resolve_request(part, types=types, indexes=indexes))
            assert handle_values(answer) == expected, (types, indexes)
    answer = udp(hnode, w.resolve_request(part, types=("URL.",)))
    assert [v.type for v in w.parse_values(answer.body)[1]] == ["URL.mirror", "URL.backup"]
    answer = tcp(hnode, w.resolve_request(part, types=("URL.", "EMAIL"), indexes=(1,)))
    assert [v.index for v in w.parse_values(answer.body)[1]] == [1, 4, 5, 6]


def test_not_found_and_the_other_error_codes(hnode: Node, part: str) -> None:
    cases = [
        (w.resolve_request("88.118.8/NOPE"), 100),
        (w.resolve_request(part, types=("nothing",)), 200),
        (w.resolve_request(part, types=("nothing.",)), 200),
        (w.resolve_request("0"), 102),  # the SDKs' heartbeat: answered
        (w.resolve_request("88.118.8"), 102),  # no '/'
        (w.resolve_request(b"88.118.8/\xff\xfe"), 102),  # not UTF-8
        (w.resolve_request("99.1/x"), 301),  # not served here
        (w.request(105, b"", request_id=3), 5),  # OC_LIST_HANDLES: not supported
    ]
    for framed, code in cases:
        for ask in (udp, tcp):
            answer = ask(hnode, framed)
            assert answer.code == code, (framed, code)
            assert w.parse_error(answer.body)
    assert "99.1" in w.parse_error(udp(hnode, w.resolve_request("99.1/x")).body)


def test_site_info_names_the_node_and_its_ports(hnode: Node) -> None:
    for ask in (udp, tcp):
        answer = ask(hnode, w.request(w.OC_GET_SITEINFO, b"", request_id=5))
        assert (answer.code, answer.opcode) == (w.RC_SUCCESS, w.OC_GET_SITEINFO)
        site = w.parse_site(answer.body)
        assert (site.version, site.major, site.serial, site.primary_mask) == (1, 2, 1, 0x80)
        ((_server_id, address, _key, interfaces),) = site.servers
        assert address == bytes(12) + socket.inet_aton("127.0.0.1")
        assert sorted(interfaces) == [(2, 0, hnode.handle_udp_port),
                                      (2, 1, hnode.handle_tcp_port)]
        assert site.attributes == {"desc": "idnode-88.118"}


def test_the_sdk_variant_with_auth_bytes_is_accepted(hnode: Node, grpc_client: Client,
                                                     part: str) -> None:
    expected = grpc_values(grpc_client, part)
    for auth in (b"", b"some-sdk-token"):
        for ask in (udp, tcp):
            answer = ask(hnode, w.resolve_request(part, auth_bytes=auth))
            assert answer.code == w.RC_SUCCESS
            assert handle_values(answer) == expected


def test_versions_2_1_to_2_11_and_the_suggested_version(hnode: Node, part: str) -> None:
    for minor in (1, 2, 5, 7, 8, 10, 11, 12):
        framed = w.request(w.OC_RESOLUTION, w.resolution_body(part), request_id=minor,
                           minor=minor, suggest=(2, 11) if minor >= 8 else None,
                           credential=minor != 1)  # old clients may omit the credential
        answer = udp(hnode, framed)
        assert answer.code == w.RC_SUCCESS
        assert (answer.major, answer.minor) == (2, min(minor, 11))
        suggested = (answer.flag0 & 0x03, answer.flag1)
        assert suggested == ((2, 11) if minor >= 8 else (0, 0))
    answer = udp(hnode, w.envelope(24, request_id=1, major=3) + bytes(24))
    assert answer.code == 4


def test_request_digest_covers_the_request_header_and_body(hnode: Node, part: str) -> None:
    framed = w.resolve_request(part, op_flags=w.RD)
    answer = tcp(hnode, framed)
    body_length = int.from_bytes(framed[w.ENVELOPE + 20:w.ENVELOPE + 24], "big")
    digested = framed[w.ENVELOPE:w.ENVELOPE + w.HEADER + body_length]
    assert answer.digest == b"\x03" + hashlib.sha256(digested).digest()
    assert w.parse_values(answer.body)[0] == part


def test_several_requests_on_one_tcp_connection_without_the_keep_flag(
        hnode: Node, part: str) -> None:
    with socket.create_connection(("127.0.0.1", hnode.handle_tcp_port), timeout=5) as s:
        for n in range(3):  # one after the other, no keep-connection flag
            s.sendall(w.resolve_request(part, request_id=100 + n))
            answer = w.parse_answer(w.tcp_read_answer(s))
            assert (answer.code, answer.request_id) == (w.RC_SUCCESS, 100 + n)
            assert not answer.op_flags & w.KC
        # pipelined, one of them a miss that goes to a worker: answers keep their order
        s.sendall(b"".join(w.resolve_request(h, request_id=200 + n) for n, h in
                           enumerate([part, "88.118.8/COLD-1", part, "88.118.8/COLD-2"])))
        answers = [w.parse_answer(w.tcp_read_answer(s)) for _ in range(4)]
        assert [a.request_id for a in answers] == [200, 201, 202, 203]
        assert [a.code for a in answers] == [1, 100, 1, 100]


def test_udp_truncation_then_tcp_retry(hnode: Node, grpc_client: Client) -> None:
    medium, big = "88.118.8/MEDIUM", "88.118.8/BIG"
    register(grpc_client, medium, text(1, "desc", "m" * 1500))
    register(grpc_client, big, text(1, "desc", "b" * 20_000))
    # Medium: fragments of at most 512 bytes, all sent, reassembled = the TCP answer.
    datagrams = w.udp_exchange(hnode.handle_udp_port, w.resolve_request(medium, request_id=8))
    assert len(datagrams) == 4 and all(len(d) <= w.UDP_PACKET for d in datagrams)
    assert all(w.parse_envelope(d).flag0 & w.TC_BIT for d in datagrams)
    whole = w.reassemble(datagrams)
    assert whole is not None
    assert w.parse_answer(whole).body == tcp(hnode, w.resolve_request(medium)).body
    # Big: over the UDP bound, only the first fragment; the client retries over TCP.
    datagrams = w.udp_exchange(hnode.handle_udp_port, w.resolve_request(big, request_id=9))
    assert len(datagrams) == 1 and len(datagrams[0]) == w.UDP_PACKET
    first = w.parse_envelope(datagrams[0])
    assert first.flag0 & w.TC_BIT and first.request_id == 9 and first.length > 20_000
    assert w.reassemble(datagrams) is None
    answer = tcp(hnode, w.resolve_request(big))
    assert w.parse_values(answer.body)[1][0].data == b"b" * 20_000


def test_garbage_and_half_messages_never_stop_the_others(hnode: Node, part: str) -> None:
    port = hnode.handle_udp_port
    for junk in (b"", b"\x02\x0a", os.urandom(19), os.urandom(600), bytes(20),
                 w.envelope(10_000, request_id=1) + bytes(30)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            s.sendto(junk, ("127.0.0.1", port))
            try:
                reply = s.recv(65535)
            except TimeoutError:
                continue  # dropped: nothing to answer to
            assert w.parse_answer(reply).code == 4  # or a protocol error
    # a half message that stalls, and thousands of idle connections, on TCP
    stalled = socket.create_connection(("127.0.0.1", hnode.handle_tcp_port), timeout=5)
    framed = w.resolve_request(part)
    stalled.sendall(framed[:len(framed) // 2])
    idle = [socket.create_connection(("127.0.0.1", hnode.handle_tcp_port), timeout=5)
            for _ in range(200)]
    try:
        assert udp(hnode, w.resolve_request(part)).code == w.RC_SUCCESS
        assert tcp(hnode, w.resolve_request(part)).code == w.RC_SUCCESS
        # a malformed envelope over TCP: a protocol error, then the connection is closed
        with socket.create_connection(("127.0.0.1", hnode.handle_tcp_port), timeout=5) as s:
            s.sendall(w.envelope(10_000_000, request_id=77))
            answer = w.parse_answer(w.tcp_read_answer(s))
            assert (answer.code, answer.request_id) == (4, 77)
            assert s.recv(10) == b""
        # the stalled half message is closed after the idle timeout (0.5 s here)
        stalled.settimeout(5)
        started = time.monotonic()
        assert stalled.recv(10) == b""
        assert time.monotonic() - started < 4
    finally:
        stalled.close()
        for s2 in idle:
            s2.close()


def test_a_message_carrying_a_response_code_is_never_answered(hnode: Node) -> None:
    msg = bytearray(w.message(w.OC_RESOLUTION, w.resolution_body("88.118.8/x")))
    msg[4:8] = (1).to_bytes(4, "big")  # "success": an answer, perhaps spoofed
    framed = w.envelope(len(msg), request_id=3) + bytes(msg)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(framed, ("127.0.0.1", hnode.handle_udp_port))
        with pytest.raises(TimeoutError):
            s.recv(65535)


def test_a_write_is_seen_by_the_next_handle_resolution(hnode: Node, grpc_client: Client,
                                                       part: str) -> None:
    assert udp(hnode, w.resolve_request(part)).code == w.RC_SUCCESS  # now cached
    etag = grpc_client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=part)).etag
    grpc_client.registry.Update(registry_pb2.UpdateRequest(
        handle=part, values=[text(1, "URL", "https://example.com/p/1-v2")], etag=etag),
        metadata=ADMIN, timeout=10)
    for ask in (udp, tcp):
        values = w.parse_values(ask(hnode, w.resolve_request(part)).body)[1]
        assert [(v.index, v.data) for v in values] == [(1, b"https://example.com/p/1-v2")]


def test_requests_are_counted_by_operation_transport_and_code(hnode: Node,
                                                              part: str) -> None:
    def count(operation: str, transport: str, code: str) -> float:
        value = hnode.metrics.registry.get_sample_value(
            "idnode_handle_requests_total",
            {"operation": operation, "transport": transport, "code": code})
        return value or 0.0

    before = count("resolution", "udp", "SUCCESS"), count("resolution", "tcp",
                                                          "HANDLE_NOT_FOUND")
    udp(hnode, w.resolve_request(part))
    tcp(hnode, w.resolve_request("88.118.8/NOPE"))
    assert count("resolution", "udp", "SUCCESS") == before[0] + 1
    assert count("resolution", "tcp", "HANDLE_NOT_FOUND") == before[1] + 1
    udp(hnode, w.request(w.OC_GET_SITEINFO, b"", request_id=1))
    assert count("get_siteinfo", "udp", "SUCCESS") >= 1


def test_an_empty_handle_listen_disables_the_door(node_factory: NodeFactory) -> None:
    node = node_factory(handle_listen="")
    assert node.handle is None and node.handle_tcp_port == 0


def test_cli_resolves_over_the_handle_protocol(hnode: Node, part: str) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app

    target = f"127.0.0.1:{hnode.handle_tcp_port}"
    result = CliRunner().invoke(app, ["resolve", "--protocol", "handle", "--target", target,
                                      part])
    assert result.exit_code == 0, result.output
    assert '"handle": "88.118.8/PN-0001"' in result.output and "主轴" in result.output
    result = CliRunner().invoke(app, ["resolve", "--protocol", "handle", "--target", target,
                                      "88.118.8/NOPE"])
    assert result.exit_code == 1 and "HANDLE_NOT_FOUND (100)" in result.output
