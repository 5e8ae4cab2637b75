"""node.handle.codec: round trips over the message grammar, agreement with the independent
encoder in tests/handle_wire.py, and fuzzing of every decoder with random bytes (bounded,
derandomized: the same examples on every run)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.handle import codec as c
from tests import handle_wire as w

FUZZ = settings(max_examples=400, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
ROUND = settings(max_examples=200, derandomize=True, deadline=None)

texts = st.text(max_size=40)
int32 = st.integers(-(2**31), 2**31 - 1)
uint32 = st.integers(0, 2**32 - 1)
blobs = st.binary(max_size=300)


# --- round trips ---------------------------------------------------------------------------


@ROUND
@given(handle=texts, indexes=st.lists(int32, max_size=8), types=st.lists(texts, max_size=8),
       auth=st.none() | st.binary(max_size=40))
def test_resolution_request_round_trip(handle: str, indexes: list[int], types: list[str],
                                       auth: bytes | None) -> None:
    req = c.ResolutionRequest(handle, tuple(indexes), tuple(types), auth)
    assert c.decode_resolution_request(c.encode_resolution_request(req)) == req


values = st.builds(
    c.HandleValue, index=int32, type=blobs, data=blobs, ttl=int32, timestamp=uint32,
    ttl_type=st.integers(0, 255), permissions=st.integers(0, 255),
    references=st.lists(st.tuples(blobs, int32), max_size=3).map(tuple))


@ROUND
@given(handle=texts, vals=st.lists(values, max_size=5))
def test_resolution_answer_round_trip(handle: str, vals: list[c.HandleValue]) -> None:
    body = c.encode_resolution_body(handle.encode(), vals)
    assert c.decode_resolution_response(body) == (handle, vals)


interfaces = st.builds(c.Interface, service_type=st.integers(0, 255),
                       protocol=st.integers(0, 255), port=int32)
servers = st.builds(c.Server, server_id=int32, address=st.binary(min_size=16, max_size=16),
                    public_key=blobs, interfaces=st.lists(interfaces, max_size=3).map(tuple))
sites = st.builds(c.SiteInfo, serial=st.integers(0, 65535),
                  servers=st.lists(servers, max_size=3).map(tuple),
                  major=st.integers(0, 255), minor=st.integers(0, 255), primary=st.booleans(),
                  multi_primary=st.booleans(), hash_option=st.integers(0, 255),
                  hash_filter=blobs,
                  attributes=st.lists(st.tuples(blobs, blobs), max_size=3).map(tuple),
                  format_version=st.integers(0, 65535))


@ROUND
@given(site=sites)
def test_site_record_round_trip(site: c.SiteInfo) -> None:
    assert c.decode_site(c.encode_site(site)) == site


@ROUND
@given(opcode=int32, flags=uint32, body=blobs, credential=st.none() | blobs,
       recursion=st.integers(0, 255))
def test_message_round_trip_with_and_without_a_credential(
        opcode: int, flags: int, body: bytes, credential: bytes | None, recursion: int) -> None:
    header = c.Header(opcode, 0, flags, 7, recursion, 0, len(body))
    tail = b"" if credential is None else c.string(credential)
    m = c.decode_message(c.encode_header(header) + body + tail)
    assert (m.header, m.body, m.credential) == (header, body, credential or b"")


# --- against the independent encoder ------------------------------------------------------


def test_a_request_built_from_the_rfc_diagrams_decodes() -> None:
    framed = w.resolve_request("88.118.8/PN-1", request_id=99, indexes=(1, 3),
                               types=("URL", "EMAIL."), auth_bytes=b"", op_flags=w.PO,
                               minor=11)
    env = c.decode_envelope(framed)
    assert (env.major, env.minor, env.request_id, env.length) == (2, 11, 99,
                                                                 len(framed) - 20)
    c.check_envelope(env)
    m = c.decode_message(framed[20:])
    assert (m.header.opcode, m.header.op_flags) == (c.OC_RESOLUTION, c.FLAG_PUBLIC_ONLY)
    assert c.decode_resolution_request(m.body) == c.ResolutionRequest(
        "88.118.8/PN-1", (1, 3), ("URL", "EMAIL."), b"")


def test_an_answer_encoded_here_parses_with_the_independent_decoder() -> None:
    vals = [c.HandleValue(1, b"URL", b"https://x", 3600, 1_700_000_000),
            c.HandleValue(100, b"HS_ADMIN", c.encode_admin("0.NA/88.118", 200,
                                                           "011111110011"))]
    body = c.encode_resolution_body(b"88.118.8/PN-1", vals) + c.NO_CREDENTIAL
    head = c.encode_head(minor=10, env_flags=0, suggest_minor=0, session_id=0,
                         request_id=5, sequence=0, length=24 + len(body), opcode=1,
                         response_code=1, op_flags=c.FLAG_AUTHORITATIVE, site_serial=1,
                         recursion=0, expiration=0, body_length=len(body) - 4)
    answer = w.parse_answer(head + body)
    handle, parsed = w.parse_values(answer.body)
    assert handle == "88.118.8/PN-1"
    assert [(v.index, v.type, v.ttl, v.timestamp, v.permissions) for v in parsed] == [
        (1, "URL", 3600, 1_700_000_000, 0x0E), (100, "HS_ADMIN", 86400, 0, 0x0E)]
    # HS_ADMIN: 2-byte mask, admin handle, admin index; read_value is wire bit 10
    admin = parsed[1].data
    mask = struct.unpack("!H", admin[:2])[0]
    assert mask & 0x0400 and not mask & 0x0004 and not mask & 0x0800
    assert admin[2:] == w.utf8_string("0.NA/88.118") + struct.pack("!i", 200)


def test_admin_permission_strings_map_to_the_wire_bits() -> None:
    assert c.admin_mask("000000000001") == 0x0001  # add_handle
    assert c.admin_mask("000010000000") == 0x0400  # read_value
    assert c.admin_mask("000100000000") == 0x0080  # modify_admin
    assert c.admin_mask("100000000000") == 0x0800  # list_handles
    assert c.admin_mask("111111111111") == 0x0FFF


def test_udp_fragments_carry_sequence_numbers_and_the_whole_length() -> None:
    message = bytes(range(256)) * 5  # 1280 bytes: three fragments
    envelope = c.encode_envelope(c.Envelope(2, 10, 0, 0, 0, 42, 0, len(message)))
    frags = c.udp_fragments(envelope, message, max_bytes=4096)
    assert len(frags) == 3 and all(len(f) <= c.UDP_PACKET_BYTES for f in frags)
    assert w.reassemble(frags) == envelope[:2] + bytes([c.ENV_TRUNCATED]) + \
        envelope[3:] + message
    assert [w.parse_envelope(f).sequence for f in frags] == [0, 1, 2]
    only_first = c.udp_fragments(envelope, message, max_bytes=1000)
    assert len(only_first) == 1 and only_first[0] == frags[0]
    assert c.udp_fragments(envelope, b"small", max_bytes=512) == [envelope + b"small"]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, code", [
    (b"", c.RC_PROTOCOL_ERROR),  # no handle length
    (struct.pack("!I", 10) + b"short", c.RC_PROTOCOL_ERROR),  # length past the end
    (struct.pack("!I", 2**31), c.RC_PROTOCOL_ERROR),  # absurd length
    (w.utf8_string(b"\xff\xfe") + bytes(8), c.RC_INVALID_HANDLE),  # not UTF-8
    (w.utf8_string("a/b") + struct.pack("!I", 1_000_000), c.RC_PROTOCOL_ERROR),  # huge list
    (w.utf8_string("a/b") + bytes(8) + b"\0\0", c.RC_PROTOCOL_ERROR),  # trailing junk
    (w.utf8_string("a/b") + bytes(8) + struct.pack("!I", 9) + b"x",
     c.RC_PROTOCOL_ERROR),  # authBytes past the end
    (w.utf8_string("a/b") + bytes(4) + struct.pack("!I", 1) + w.utf8_string(b"\xc3"),
     c.RC_PROTOCOL_ERROR),  # a type that is not UTF-8
])
def test_malformed_resolution_bodies_are_protocol_errors(body: bytes, code: int) -> None:
    with pytest.raises(c.ProtocolError) as info:
        c.decode_resolution_request(body)
    assert info.value.code == code


def test_envelopes_this_node_cannot_read_are_refused() -> None:
    for env in (c.Envelope(1, 0, 0, 0, 0, 1, 0, 100),  # another major version
                c.Envelope(2, 10, c.ENV_COMPRESSED, 0, 0, 1, 0, 100),
                c.Envelope(2, 10, c.ENV_ENCRYPTED, 0, 0, 1, 0, 100),
                c.Envelope(2, 10, 0, 0, 0, 1, 0, c.MAX_REQUEST_BYTES + 1),
                c.Envelope(2, 10, 0, 0, 0, 1, 0, 10)):  # shorter than a header
        with pytest.raises(c.ProtocolError):
            c.check_envelope(env)
    with pytest.raises(c.ProtocolError):
        c.decode_envelope(bytes(19))


def test_a_body_or_credential_length_pointing_past_the_message_is_refused() -> None:
    header = c.encode_header(c.Header(1, 0, 0, 0, 0, 0, 100))
    with pytest.raises(c.ProtocolError):
        c.decode_message(header + bytes(10))
    header = c.encode_header(c.Header(1, 0, 0, 0, 0, 0, 0))
    for tail in (b"\0\0", struct.pack("!I", 5) + b"abc", struct.pack("!I", 0) + b"x"):
        with pytest.raises(c.ProtocolError):
            c.decode_message(header + tail)


# --- fuzzing ------------------------------------------------------------------------------

DECODERS = (c.decode_message, c.decode_resolution_request, c.decode_resolution_response,
            c.decode_site, c.decode_error_body)


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_only_ever_raise_protocol_errors(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(c.ProtocolError):
            decode(data)


@st.composite
def near_requests(draw: st.DrawFn) -> bytes:
    """Well-formed requests with a few bytes overwritten, cut or appended: the inputs
    most likely to slip past a length check."""
    req = c.ResolutionRequest(draw(texts), tuple(draw(st.lists(int32, max_size=4))),
                              tuple(draw(st.lists(texts, max_size=4))),
                              draw(st.none() | st.binary(max_size=8)))
    body = bytearray(c.encode_resolution_request(req))
    msg = bytearray(c.encode_header(c.Header(1, 0, 0, 0, 0, 0, len(body)))) + body + \
        bytearray(c.NO_CREDENTIAL)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(msg) - 1))
        msg[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(msg)))
    return bytes(msg[:cut]) + draw(st.binary(max_size=8))


@FUZZ
@given(msg=near_requests())
def test_mutated_requests_decode_or_raise_protocol_errors(msg: bytes) -> None:
    try:
        m = c.decode_message(msg)
        req = c.decode_resolution_request(m.body)
    except c.ProtocolError:
        return
    assert len(req.indexes) <= c.MAX_LIST_ITEMS and len(req.types) <= c.MAX_LIST_ITEMS
