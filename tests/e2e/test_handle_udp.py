"""The Handle protocol's UDP specifics through a real socket on 127.0.0.1: requests sent
in several datagrams (RFC 3652 §2.2.1), and the remembered answers of the raw-bytes fast
path (each with its own request's ids, exact metrics, never older than the store).
Requests are built by the independent encoder in tests/handle_wire.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests import handle_wire as w
from tests.conftest import ADMIN, Client, NodeFactory

PN = "88.118.8/UDP-0001"
# Enough requested types to need two datagrams: a request of about 900 bytes.
MANY_TYPES = ("URL", *(f"unknown-type-{n:03d}" for n in range(40)))


@pytest.fixture
def hnode(node_factory: NodeFactory) -> Node:
    return node_factory(handle_listen="127.0.0.1:0")


@pytest.fixture
def grpc_client(hnode: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{hnode.grpc_port}")
    yield c
    c.close()


@pytest.fixture
def part(grpc_client: Client) -> str:
    grpc_client.registry.Register(registry_pb2.RegisterRequest(handle=PN, values=[
        record_pb2.Value(index=1, type="URL", text="https://example.com/u/1"),
        record_pb2.Value(index=2, type="serial", text="SN-1")]), metadata=ADMIN, timeout=10)
    return PN


def send_all(port: int, datagrams: list[bytes], *, timeout: float = 5.0) -> bytes:
    """Send every datagram from one socket and return the first datagram answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))
        return s.recv(65535)


def no_answer(port: int, datagrams: list[bytes]) -> bool:
    """Whether nothing comes back to ``datagrams`` within a short wait."""
    try:
        send_all(port, datagrams, timeout=0.3)
    except TimeoutError:
        return True
    return False


def tcp(node: Node, framed: bytes) -> w.Answer:
    return w.parse_answer(w.tcp_exchange(node.handle_tcp_port, framed))


def count(node: Node, name: str, labels: dict[str, str]) -> float:
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


# --- requests in several datagrams ------------------------------------------------------


def test_a_request_in_several_datagrams_is_answered_like_one_sent_whole(
        hnode: Node, part: str) -> None:
    framed = w.resolve_request(part, types=MANY_TYPES, request_id=61, session_id=5)
    datagrams = w.fragments(framed)
    assert len(datagrams) == 2 and all(len(d) <= w.UDP_PACKET for d in datagrams)
    for order in (datagrams, datagrams[::-1]):  # fragments may arrive in any order
        answer = w.parse_answer(send_all(hnode.handle_udp_port, order))
        assert (answer.code, answer.request_id, answer.session_id) == (w.RC_SUCCESS, 61, 5)
        assert not answer.flag0 & w.TC_BIT  # the answer fits one datagram
        assert answer.body == tcp(hnode, framed).body
        assert [v.type for v in w.parse_values(answer.body)[1]] == ["URL"]


def test_the_sdk_authbytes_variant_in_several_datagrams(hnode: Node, part: str) -> None:
    framed = w.resolve_request(part, auth_bytes=b"\x01" * 700, request_id=62)
    answer = w.parse_answer(send_all(hnode.handle_udp_port, w.fragments(framed)))
    assert (answer.code, answer.request_id) == (w.RC_SUCCESS, 62)
    assert [v.index for v in w.parse_values(answer.body)[1]] == [1, 2]


def test_fragments_that_do_not_fit_together_are_a_protocol_error(hnode: Node,
                                                                 part: str) -> None:
    port = hnode.handle_udp_port
    first, second = w.fragments(w.resolve_request(part, types=MANY_TYPES, request_id=63))
    past_the_end = bytearray(second)
    past_the_end[12:16] = (9).to_bytes(4, "big")  # SequenceNumber 9 of a 2-fragment message
    short = first[:300]  # fragment 0 must carry 492 octets
    other_length = bytearray(second)
    other_length[16:20] = (int.from_bytes(second[16:20], "big") + 1).to_bytes(4, "big")
    for datagrams in ([bytes(past_the_end)], [short], [first, bytes(other_length)]):
        answer = w.parse_answer(send_all(port, datagrams))
        assert (answer.code, answer.request_id) == (4, 63)  # RC_PROTOCOL_ERROR
        assert w.parse_error(answer.body)
    # too long for any request: refused from its first fragment
    huge = bytearray(first)
    huge[16:20] = (10_000_000).to_bytes(4, "big")
    assert w.parse_answer(send_all(port, [bytes(huge)])).code == 4
    # a refusal longer than the datagram refused is not sent (no reflection gain)
    assert no_answer(port, [w.envelope(1000, request_id=66, flags=w.TC_BIT)])


def test_an_incomplete_request_gets_no_answer_and_blocks_no_one(hnode: Node,
                                                                part: str) -> None:
    port = hnode.handle_udp_port
    first, _second = w.fragments(w.resolve_request(part, types=MANY_TYPES, request_id=64))
    assert no_answer(port, [first])
    # the first fragment of an answer (a response code set) is never kept nor answered
    reply = bytearray(first)
    reply[24:28] = (1).to_bytes(4, "big")
    assert no_answer(port, [bytes(reply)])
    answer = w.parse_answer(send_all(port, [w.resolve_request(part, request_id=65)]))
    assert (answer.code, answer.request_id) == (w.RC_SUCCESS, 65)


# --- the raw-bytes fast path --------------------------------------------------------------


def test_repeated_udp_resolutions_carry_their_own_ids_and_the_same_answer(
        hnode: Node, part: str) -> None:
    port = hnode.handle_udp_port
    answers = [w.parse_answer(send_all(port, [w.resolve_request(
        part, request_id=1000 + n, session_id=n * 7)])) for n in range(6)]
    assert [(a.request_id, a.session_id) for a in answers] == \
        [(1000 + n, n * 7) for n in range(6)]
    expected = tcp(hnode, w.resolve_request(part)).body
    assert all(a.code == w.RC_SUCCESS and a.body == expected for a in answers)
    assert all(a.expiration > 0 for a in answers)
    # flags that change the answer are part of what is remembered
    echoed = w.parse_answer(send_all(port, [w.resolve_request(part, op_flags=w.PO | w.KC)]))
    assert echoed.op_flags & (w.PO | w.KC) == w.PO | w.KC and echoed.body == expected
    plain = w.parse_answer(send_all(port, [w.resolve_request(part)]))
    assert not plain.op_flags & (w.PO | w.KC)
    old = w.parse_answer(send_all(port, [w.resolve_request(part, minor=5)]))
    assert (old.minor, old.flag0, old.flag1) == (5, 0, 0)  # no suggested version below 2.8


def test_every_udp_answer_is_counted_exactly_at_scrape_time(hnode: Node, part: str) -> None:
    labels = {"operation": "resolution", "transport": "udp", "code": "SUCCESS"}
    duration = {"operation": "resolution", "transport": "udp"}
    before = (count(hnode, "idnode_handle_requests_total", labels),
              count(hnode, "idnode_handle_request_duration_seconds_count", duration),
              count(hnode, "idnode_cache_hits_total", {"layer": "l1"}))
    for n in range(25):
        answer = w.parse_answer(send_all(hnode.handle_udp_port,
                                         [w.resolve_request(part, request_id=n + 1)]))
        assert answer.code == w.RC_SUCCESS
    assert count(hnode, "idnode_handle_requests_total", labels) == before[0] + 25
    assert count(hnode, "idnode_handle_request_duration_seconds_count", duration) == \
        before[1] + 25
    assert count(hnode, "idnode_cache_hits_total", {"layer": "l1"}) >= before[2] + 24
    buckets = count(hnode, "idnode_handle_request_duration_seconds_bucket",
                    {**duration, "le": "+Inf"})
    assert buckets == before[1] + 25


def test_a_write_reaches_the_next_udp_answer_however_often_it_was_asked(
        hnode: Node, grpc_client: Client, part: str) -> None:
    port = hnode.handle_udp_port
    for n in range(5):  # remembered by now
        assert w.parse_answer(send_all(port, [w.resolve_request(part, request_id=n)])).code \
            == w.RC_SUCCESS
    etag = grpc_client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=part)).etag
    grpc_client.registry.Update(registry_pb2.UpdateRequest(handle=part, values=[
        record_pb2.Value(index=1, type="URL", text="https://example.com/u/1-v2")], etag=etag),
        metadata=ADMIN, timeout=10)
    answer = w.parse_answer(send_all(port, [w.resolve_request(part, request_id=99)]))
    assert [(v.index, v.data) for v in w.parse_values(answer.body)[1]] == \
        [(1, b"https://example.com/u/1-v2")]
    for _ in range(3):  # the new answer is remembered in turn
        assert w.parse_answer(send_all(port, [w.resolve_request(part)])).code == w.RC_SUCCESS
    etag = grpc_client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=part)).etag
    grpc_client.registry.Delete(registry_pb2.DeleteRequest(handle=part, etag=etag),
                                metadata=ADMIN, timeout=10)
    assert w.parse_answer(send_all(port, [w.resolve_request(part)])).code == 100


def test_a_remembered_answer_is_never_used_once_l1_dropped_its_entry(hnode: Node,
                                                                    part: str) -> None:
    """What another host's write heard over Redis (or a resync) does: L1 drops entries
    without any local write; the fast path then asks the core again (an L1 miss)."""
    port = hnode.handle_udp_port
    for n in range(4):
        assert w.parse_answer(send_all(port, [w.resolve_request(part, request_id=n)])).code \
            == w.RC_SUCCESS
    misses = count(hnode, "idnode_cache_misses_total", {"layer": "l1"})
    assert w.parse_answer(send_all(port, [w.resolve_request(part)])).code == w.RC_SUCCESS
    assert count(hnode, "idnode_cache_misses_total", {"layer": "l1"}) == misses  # a hit
    hnode.resolver.coherence.resync()
    answer = w.parse_answer(send_all(port, [w.resolve_request(part, request_id=77)]))
    assert (answer.code, answer.request_id) == (w.RC_SUCCESS, 77)
    assert count(hnode, "idnode_cache_misses_total", {"layer": "l1"}) == misses + 1
