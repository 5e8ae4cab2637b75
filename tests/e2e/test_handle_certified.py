"""Certified answers and the node's HS_SITE over the Handle protocol, through real sockets
on 127.0.0.1. Signatures are checked here with ``cryptography`` from the RFC's and the
Java library's description (tests/handle_wire.py), never with the server's own code."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from node.handle import codec as c
from tests import handle_wire as w
from tests.conftest import ADMIN, NODE_PREFIX, Client, NodeFactory

PN = "88.118.8/PN-0001"
PREFIX_HANDLE = "0.NA/88.118.8"


@pytest.fixture
def hnode(node_factory: NodeFactory) -> Node:
    return node_factory(handle_listen="127.0.0.1:0")


@pytest.fixture
def grpc_client(hnode: Node) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{hnode.grpc_port}")
    c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
        prefix="88.118.8", owner_secret="owner-secret-00088"), metadata=ADMIN, timeout=30)
    c.registry.Register(registry_pb2.RegisterRequest(handle=PN, values=[
        record_pb2.Value(index=1, type="URL", text="https://example.com/p/1"),
        record_pb2.Value(index=2, type="productName", text="主轴"),
        record_pb2.Value(index=3, type="serial", binary=bytes(range(7)))]),
        metadata=ADMIN, timeout=10)
    yield c
    c.close()


def udp(node: Node, framed: bytes) -> w.Answer:
    datagrams = w.udp_exchange(node.handle_udp_port, framed)
    whole = w.reassemble(datagrams) if len(datagrams) > 1 else datagrams[0]
    assert whole is not None
    return w.parse_answer(whole)


def tcp(node: Node, framed: bytes) -> w.Answer:
    return w.parse_answer(w.tcp_exchange(node.handle_tcp_port, framed))


def site_of(node: Node) -> w.Site:
    return w.parse_site(tcp(node, w.request(w.OC_GET_SITEINFO, b"", request_id=1)).body)


def site_key(node: Node) -> rsa.RSAPublicKey:
    ((_id, _address, key, _interfaces),) = site_of(node).servers
    exponent, modulus = w.rsa_numbers(key)
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def verify(answer: w.Answer, key: rsa.RSAPublicKey) -> w.Credential:
    """Check a certified answer as a client would; the parsed credential."""
    assert answer.op_flags & w.CT
    cred = w.parse_credential(answer.credential)
    assert (cred.version, cred.options, cred.type, cred.digest_algorithm) == \
        (0, 0, "HS_SIGNED", "SHA-256")
    key.verify(cred.signature, w.signed_part(answer, cred.signer_index), padding.PKCS1v15(),
               hashes.SHA256())
    return cred


def test_a_certified_resolution_verifies_with_the_key_in_the_site_info(
        hnode: Node, grpc_client: Client) -> None:
    key = site_key(hnode)
    for minor, suggest in ((10, None), (11, (2, 11)), (8, (2, 8)), (7, None), (6, None),
                           (5, None), (1, None)):
        for ask in (tcp, udp):
            framed = w.resolve_request(PN, request_id=1000 + minor, op_flags=w.CT, minor=minor,
                                       suggest=suggest, session_id=0x01020304)
            answer = ask(hnode, framed)
            assert (answer.code, answer.request_id) == (w.RC_SUCCESS, 1000 + minor)
            cred = verify(answer, key)
            assert (cred.signer, cred.signer_index) == (f"0.NA/{NODE_PREFIX}", 1)
            assert [v.index for v in w.parse_values(answer.body)[1]] == [1, 2, 3]


def test_the_signature_covers_the_answer_and_the_request_id(hnode: Node,
                                                            grpc_client: Client) -> None:
    key = site_key(hnode)
    answer = tcp(hnode, w.resolve_request(PN, request_id=77, op_flags=w.CT))
    verify(answer, key)
    cred = w.parse_credential(answer.credential)
    tampered = bytearray(answer.message)
    tampered[-1] ^= 0x01  # the last octet of the last value
    for changed in (w.Answer(**{**answer.__dict__, "message": bytes(tampered)}),
                    w.Answer(**{**answer.__dict__, "request_id": 78})):
        with pytest.raises(InvalidSignature):
            key.verify(cred.signature, w.signed_part(changed, cred.signer_index),
                       padding.PKCS1v15(), hashes.SHA256())


def test_certified_errors_digests_and_site_info_are_signed_too(hnode: Node,
                                                               grpc_client: Client) -> None:
    key = site_key(hnode)
    not_found = udp(hnode, w.resolve_request("88.118.8/NOPE", op_flags=w.CT))
    assert not_found.code == 100
    verify(not_found, key)
    digested = tcp(hnode, w.resolve_request(PN, op_flags=w.CT | w.RD))
    assert digested.digest[:1] == b"\x03" and digested.op_flags & w.RD
    verify(digested, key)
    site = tcp(hnode, w.request(w.OC_GET_SITEINFO, b"", request_id=3, op_flags=w.CT))
    verify(site, key)
    # longer than one datagram: sent in fragments, verified once reassembled
    datagrams = w.udp_exchange(hnode.handle_udp_port,
                               w.resolve_request(PREFIX_HANDLE, op_flags=w.CT))
    assert len(datagrams) > 1
    whole = w.reassemble(datagrams)
    assert whole is not None
    verify(w.parse_answer(whole), key)


def test_an_uncertified_request_gets_no_signature(hnode: Node, grpc_client: Client) -> None:
    for ask in (tcp, udp):
        for framed in (w.resolve_request(PN), w.resolve_request(PN, types=("URL",)),
                       w.resolve_request("88.118.8/NOPE")):
            answer = ask(hnode, framed)
            assert answer.credential_length == 0 and not answer.op_flags & w.CT


def test_answers_expire_twelve_hours_after_they_are_made(hnode: Node,
                                                         grpc_client: Client) -> None:
    # The Java resolver refuses an answer whose expiration time has passed.
    for op_flags in (0, w.CT):
        answer = udp(hnode, w.resolve_request(PN, op_flags=op_flags))
        assert abs(answer.expiration - (time.time() + 12 * 3600)) < 60


def test_the_prefix_handle_carries_this_nodes_site(hnode: Node, grpc_client: Client) -> None:
    for ask in (udp, tcp):
        handle, values = w.parse_values(ask(hnode, w.resolve_request(PREFIX_HANDLE)).body)
        assert handle == PREFIX_HANDLE
        assert [(v.index, v.type) for v in values] == \
            [(1, "HS_SITE"), (100, "HS_ADMIN"), (200, "HS_VLIST")]
        site = w.parse_site(values[0].data)
        assert (site.version, site.major, site.primary_mask) == (1, 2, 0x80)
        ((server_id, address, key, interfaces),) = site.servers
        assert server_id == 1
        assert address == bytes(12) + socket.inet_aton("127.0.0.1")
        assert sorted(interfaces) == [(2, 0, hnode.handle_udp_port),
                                      (2, 1, hnode.handle_tcp_port)]
        assert w.rsa_numbers(key)[0] == 65537
        assert values[0].data == w.tcp_exchange(
            hnode.handle_tcp_port, w.request(w.OC_GET_SITEINFO, b"", request_id=9)
        )[w.ENVELOPE + w.HEADER:-4]  # the very record OC_GET_SITEINFO answers


def test_the_site_value_answers_type_and_index_filters(hnode: Node,
                                                       grpc_client: Client) -> None:
    def types_of(**filters: object) -> list[tuple[int, str]]:
        answer = tcp(hnode, w.resolve_request(PREFIX_HANDLE, **filters))  # type: ignore[arg-type]
        assert answer.code == w.RC_SUCCESS
        return [(v.index, v.type) for v in w.parse_values(answer.body)[1]]

    # what a resolver looking for a prefix's service asks for
    assert types_of(types=("HS_SITE", "HS_SITE.6", "HS_SERV")) == [(1, "HS_SITE")]
    assert types_of(indexes=(1,)) == [(1, "HS_SITE")]
    assert types_of(types=("HS_SITE", "HS_ADMIN")) == [(1, "HS_SITE"), (100, "HS_ADMIN")]
    assert types_of(types=("HS_ADMIN",), indexes=(1,)) == [(1, "HS_SITE"), (100, "HS_ADMIN")]
    assert types_of(indexes=(200,)) == [(200, "HS_VLIST")]
    for nothing in ({"types": ("URL",)}, {"types": ("HS_SITE.",)}, {"indexes": (7,)}):
        missing = tcp(hnode, w.resolve_request(PREFIX_HANDLE, **nothing))
        assert missing.code == 200, nothing
    certified = tcp(hnode, w.resolve_request(PREFIX_HANDLE, types=("HS_SITE",),
                                             op_flags=w.CT))
    verify(certified, site_key(hnode))


def test_the_site_value_lives_on_the_handle_protocol_only(hnode: Node,
                                                          grpc_client: Client) -> None:
    response = grpc_client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=PREFIX_HANDLE))
    record = record_pb2.Record.FromString(response.record.payload)
    assert "HS_SITE" not in {v.type for v in record.values}
    # and an identifier that is no prefix handle gets none
    values = w.parse_values(tcp(hnode, w.resolve_request(PN)).body)[1]
    assert "HS_SITE" not in {v.type for v in values}
    # nor is one made up for a prefix that is not allocated, or not served here
    assert tcp(hnode, w.resolve_request("0.NA/88.118.99")).code == 100
    assert tcp(hnode, w.resolve_request("0.NA/99.1", types=("HS_SITE",))).code == 301


def test_the_handle_key_is_made_once_and_survives_a_restart(
        node_factory: NodeFactory, tmp_path: Path) -> None:
    data = tmp_path / "restart"
    first = node_factory(data_dir=data, seed_handle_key=False)
    key_file = data / "keys" / "handle-rsa.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = site_key(first).public_numbers()
    assert before.n.bit_length() == 2048
    first.stop(0)
    again = node_factory(data_dir=data, seed_handle_key=False)
    assert site_key(again).public_numbers() == before
    answer = tcp(again, w.resolve_request(f"0.NA/{NODE_PREFIX}", op_flags=w.CT))
    assert answer.code == w.RC_SUCCESS
    verify(answer, rsa.RSAPublicNumbers(before.e, before.n).public_key())


def test_certified_answers_are_made_on_a_worker_never_on_the_socket_threads(
        hnode: Node, grpc_client: Client) -> None:
    # An RSA signature holds the interpreter for a few hundred microseconds: the UDP
    # thread and the TCP event loop hand certified requests to the bounded worker pool.
    assert hnode.handle is not None
    service = hnode.handle.service
    for op_flags, offloaded in ((0, False), (w.CT, True)):
        framed = w.resolve_request(PN, op_flags=op_flags)
        assert udp(hnode, framed).code == w.RC_SUCCESS  # cached now
        env = c.decode_envelope(framed)
        out = service.answer(env, framed[w.ENVELOPE:], "udp", "127.0.0.1:9", may_block=False)
        assert (out is None) == offloaded


def test_cli_resolves_certified_and_verifies_with_the_published_key(hnode: Node,
                                                                    grpc_client: Client) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app

    target = f"127.0.0.1:{hnode.handle_tcp_port}"
    result = CliRunner().invoke(app, ["resolve", "--protocol", "handle", "--certified",
                                      "--target", target, PN])
    assert result.exit_code == 0, result.output
    assert f'"handle": "{PN}"' in result.stdout
    assert "verified: HS_SIGNED SHA-256" in result.stderr
    result = CliRunner().invoke(app, ["resolve", "--protocol", "handle", "--certified",
                                      "--target", target, "88.118.8/NOPE"])
    assert result.exit_code == 1 and "HANDLE_NOT_FOUND (100)" in result.output  # signed too
    result = CliRunner().invoke(app, ["resolve", "--certified", PN])
    assert result.exit_code == 2 and "--protocol handle" in result.output
