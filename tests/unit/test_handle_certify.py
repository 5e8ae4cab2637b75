"""Certified answers and the node's HS_SITE without I/O: the RSA key's HS_PUBKEY
encoding, the message credential, what a signature covers per protocol version, the
Handle protocol key file, the site value's index, and fuzzing of the new decoders."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.handle import codec as c
from node.handle import service as svc
from node.handle.certify import Certifier
from node.security import signing
from node.security.signing import SigningKeyError, open_handle_key
from tests import handle_wire as w

FUZZ = settings(max_examples=400, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
ROUND = settings(max_examples=200, derandomize=True, deadline=None)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- HS_PUBKEY -----------------------------------------------------------------------------


def test_an_rsa_key_is_encoded_as_the_java_library_writes_it(key: rsa.RSAPrivateKey) -> None:
    numbers = key.public_key().public_numbers()
    data = c.encode_rsa_public_key(c.RsaPublicKey(numbers.e, numbers.n))
    # "RSA_PUB_KEY", 2 reserved octets, exponent, modulus; BigInteger.toByteArray gives
    # the 2048-bit modulus a leading zero octet (its top bit is set)
    modulus = b"\0" + numbers.n.to_bytes(256, "big")
    assert data == struct.pack("!I", 11) + b"RSA_PUB_KEY" + b"\0\0" + \
        struct.pack("!I", 3) + b"\x01\x00\x01" + struct.pack("!I", 257) + modulus
    assert w.rsa_numbers(data) == (numbers.e, numbers.n)  # the tests' own reader agrees
    assert c.decode_rsa_public_key(data) == c.RsaPublicKey(numbers.e, numbers.n)


def test_java_integers_are_minimal_twos_complement() -> None:
    assert c.java_integer(0) == b"\0"
    assert c.java_integer(127) == b"\x7f"
    assert c.java_integer(128) == b"\0\x80"
    assert c.java_integer(65537) == b"\x01\x00\x01"


def test_keys_of_other_types_or_shapes_are_refused() -> None:
    dsa = c.string(b"DSA_PUB_KEY") + b"\0\0" + c.string(b"\x01") * 4
    for bad in (dsa, b"", c.string(b"RSA_PUB_KEY") + b"\0\0" + c.string(b"\x01"),
                c.string(b"RSA_PUB_KEY") + b"\0\0" + c.string(b"") + c.string(b"")):
        with pytest.raises(c.ProtocolError):
            c.decode_rsa_public_key(bad)


# --- the credential ------------------------------------------------------------------------


@ROUND
@given(handle=st.binary(max_size=60), index=st.integers(-(2**31), 2**31 - 1),
       kind=st.binary(max_size=20), digest=st.binary(max_size=20),
       signature=st.binary(max_size=600), options=st.integers(0, 65535))
def test_a_credential_round_trips(handle: bytes, index: int, kind: bytes, digest: bytes,
                                  signature: bytes, options: int) -> None:
    cred = c.Credential(handle, index, kind, digest, signature, options=options)
    section = c.encode_credential(cred)
    assert struct.unpack("!I", section[:4])[0] == len(section) - 4
    assert c.decode_credential(section[4:]) == cred


def test_a_credential_parses_with_the_independent_reader() -> None:
    section = c.encode_credential(c.Credential(b"0.NA/88.118", 1, c.CREDENTIAL_SIGNED,
                                               c.DIGEST_NAME_SHA256, b"\x01" * 256))
    cred = w.parse_credential(section[4:])
    assert (cred.signer, cred.signer_index, cred.type, cred.digest_algorithm,
            cred.signature) == ("0.NA/88.118", 1, "HS_SIGNED", "SHA-256", b"\x01" * 256)


MESSAGE = bytes(range(40))


def test_up_to_2_5_the_signature_covers_the_header_and_body_alone() -> None:
    for minor in (0, 1, 5):
        assert c.signed_bytes(major=2, minor=minor, suggest_major=0, suggest_minor=0,
                              session_id=9, request_id=7, counter=1, message=MESSAGE) == MESSAGE


def test_from_2_7_the_envelope_fields_come_first() -> None:
    assert c.signed_bytes(major=2, minor=7, suggest_major=0, suggest_minor=0, session_id=9,
                          request_id=7, counter=1, message=MESSAGE) == \
        b"\x02\x07" + struct.pack("!iii", 9, 7, 1) + MESSAGE
    assert c.signed_bytes(major=2, minor=10, suggest_major=2, suggest_minor=11, session_id=-1,
                          request_id=7, counter=1, message=MESSAGE) == \
        b"\x02\x0a\x02\x0b" + struct.pack("!iii", -1, 7, 1) + MESSAGE


def test_2_6_reproduces_the_overlapping_fields_its_clients_verify() -> None:
    signed = c.signed_bytes(major=2, minor=6, suggest_major=0, suggest_minor=0,
                            session_id=0x0A0B0C0D, request_id=0x11223344, counter=1,
                            message=MESSAGE)
    assert signed == b"\x02\x06\x0a\x0b\x00\x00\x00\x01" + bytes(6) + MESSAGE


def test_the_server_and_the_tests_agree_on_what_is_signed() -> None:
    for minor, flag0, flag1 in ((1, 0, 0), (6, 0, 0), (7, 0, 0), (8, 2, 11), (11, 2, 11)):
        answer = w.Answer(2, minor, flag0, flag1, 0x01020304, 0x7FFFFFFF, 0, 0,
                          message=MESSAGE)
        assert w.signed_part(answer, 1) == c.signed_bytes(
            major=2, minor=minor, suggest_major=flag0, suggest_minor=flag1,
            session_id=0x01020304, request_id=0x7FFFFFFF, counter=1, message=MESSAGE)


def test_a_certifiers_credential_verifies_with_the_key_it_publishes(
        key: rsa.RSAPrivateKey) -> None:
    certifier = Certifier(key, "0.NA/88.118")
    section = certifier.credential(minor=10, suggest_major=2, suggest_minor=11,
                                   session_id=0, request_id=42, message=MESSAGE)
    cred = c.decode_credential(section[4:])
    assert (cred.signer_handle, cred.signer_index, cred.type, cred.digest_algorithm) == \
        (b"0.NA/88.118", 1, b"HS_SIGNED", b"SHA-256")
    published = c.decode_rsa_public_key(certifier.public_key)
    public = rsa.RSAPublicNumbers(published.exponent, published.modulus).public_key()
    public.verify(cred.signature, c.signed_bytes(
        major=2, minor=10, suggest_major=2, suggest_minor=11, session_id=0, request_id=42,
        counter=1, message=MESSAGE), padding.PKCS1v15(), hashes.SHA256())


def certified_answer(certifier: Certifier, *, request_id: int = 42,
                     body: bytes = b"") -> tuple[c.Envelope, c.Message]:
    """A certified answer as the node frames it (header, ``body``, credential), decoded."""
    body = body or c.encode_resolution_body(b"88.118.8/X", [c.HandleValue(1, b"URL", b"u")])
    header = c.encode_header(c.Header(c.OC_RESOLUTION, c.RC_SUCCESS,
                                      c.FLAG_AUTHORITATIVE | c.FLAG_CERTIFIED, 1, 0, 0,
                                      len(body)))
    message = header + body
    msg = message + certifier.credential(minor=11, suggest_major=2, suggest_minor=11,
                                         session_id=0, request_id=request_id,
                                         message=message)
    return c.Envelope(2, 11, 2, 11, 0, request_id, 0, len(msg)), c.decode_message(msg)


def test_the_cli_client_verifies_a_certified_answer_and_refuses_a_tampered_one(
        key: rsa.RSAPrivateKey) -> None:
    from node.handle.client import HandleClientError, verify_answer

    certifier = Certifier(key, "0.NA/88.118")
    public = key.public_key()
    env, m = certified_answer(certifier)
    assert verify_answer(env, m, public).signer_handle == b"0.NA/88.118"
    tampered = c.Message(m.header, m.body, m.credential, m.digested[:-1] + b"v")
    other_request = c.Envelope(2, 11, 2, 11, 0, 43, 0, env.length)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    unsigned = c.Message(m.header, m.body, b"", m.digested)
    for bad_env, bad_m, bad_key, problem in (
            (env, tampered, public, "does not verify"),
            (other_request, m, public, "does not verify"),
            (env, m, other_key, "does not verify"),
            (env, unsigned, public, "did not certify")):
        with pytest.raises(HandleClientError, match=problem):
            verify_answer(bad_env, bad_m, bad_key)


# --- fuzzing what is new to decode ---------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_only_ever_raise_protocol_errors(data: bytes) -> None:
    for decode in (c.decode_credential, c.decode_rsa_public_key):
        with contextlib.suppress(c.ProtocolError):
            decode(data)


@FUZZ
@given(data=st.data())
def test_mutated_credentials_and_keys_decode_or_raise_protocol_errors(
        data: st.DataObject) -> None:
    valid = [c.encode_credential(c.Credential(b"0.NA/88.118", 1, b"HS_SIGNED", b"SHA-256",
                                              bytes(64)))[4:],
             c.encode_rsa_public_key(c.RsaPublicKey(65537, (1 << 2047) + 12345))]
    for raw in valid:
        buf = bytearray(raw)
        for _ in range(data.draw(st.integers(0, 3))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        mutated = bytes(buf[:data.draw(st.integers(0, len(buf)))]) + \
            data.draw(st.binary(max_size=6))
        for decode in (c.decode_credential, c.decode_rsa_public_key):
            with contextlib.suppress(c.ProtocolError):
                decode(mutated)


# --- the site value ------------------------------------------------------------------------


SITE = c.HandleValue(1, b"HS_SITE", b"site", 86400)


def _value(index: int, vtype: bytes = b"HS_ADMIN") -> c.HandleValue:
    return c.HandleValue(index, vtype, b"")


def test_the_site_value_takes_index_1_in_index_order() -> None:
    out = svc.with_site([_value(100), _value(200, b"HS_VLIST")], SITE)
    assert [(v.index, v.type) for v in out] == [(1, b"HS_SITE"), (100, b"HS_ADMIN"),
                                                (200, b"HS_VLIST")]


def test_the_site_value_moves_to_the_lowest_free_index_when_1_is_taken() -> None:
    out = svc.with_site([_value(1, b"URL"), _value(2, b"EMAIL"), _value(100)], SITE)
    assert [(v.index, v.type) for v in out] == [(1, b"URL"), (2, b"EMAIL"), (3, b"HS_SITE"),
                                                (100, b"HS_ADMIN")]


def test_a_stored_site_value_wins() -> None:
    for vtype in (b"HS_SITE", b"HS_SITE.6"):
        stored = [_value(5, vtype), _value(100)]
        assert svc.with_site(stored, SITE) == stored


def test_only_prefix_handles_get_the_site_value() -> None:
    assert svc.is_prefix_handle("0.NA/88.118.8") and svc.is_prefix_handle("0.na/88.118")
    for text in ("88.118.8/PN-1", "0.NA/not a prefix", "0.NA", "", "10.1/0.NA/88.118"):
        assert not svc.is_prefix_handle(text), text


def test_answers_expire_twelve_hours_on_in_a_signed_32_bit_field() -> None:
    assert svc.expires_at(1_700_000_000.7) == 1_700_000_000 + 43200
    assert svc.expires_at(2**31 - 100) == 2**31 - 100 + 43200 - 2**32  # as Java's int wraps


# --- the key file --------------------------------------------------------------------------


def test_the_handle_key_is_made_0600_once_and_then_read(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    made = open_handle_key(folder)
    path = folder / signing.HANDLE_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert made.key_size == 2048
    again = open_handle_key(folder, create=False)
    assert again.public_key().public_numbers() == made.public_key().public_numbers()
    assert [p.name for p in folder.iterdir()] == [signing.HANDLE_KEY_FILE]  # no temp left
    with pytest.raises(SigningKeyError):
        open_handle_key(tmp_path / "none", create=False)


def test_a_key_another_process_made_first_is_the_one_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: rsa.RSAPrivateKey) -> None:
    folder = tmp_path / "keys"
    theirs = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    generate = rsa.generate_private_key

    def racing(**kw: int) -> rsa.RSAPrivateKey:
        (folder / signing.HANDLE_KEY_FILE).write_bytes(theirs)  # they link theirs first
        return generate(**kw)

    monkeypatch.setattr(rsa, "generate_private_key", racing)
    used = open_handle_key(folder)
    assert used.public_key().public_numbers() == key.public_key().public_numbers()
    assert [p.name for p in folder.iterdir()] == [signing.HANDLE_KEY_FILE]


def test_a_key_that_is_not_rsa_2048_is_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for private in (ec.generate_private_key(ec.SECP256R1()), small):
        folder = tmp_path / type(private).__name__ / str(id(private))
        folder.mkdir(parents=True)
        (folder / signing.HANDLE_KEY_FILE).write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        with pytest.raises(SigningKeyError):
            open_handle_key(folder)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / signing.HANDLE_KEY_FILE).write_bytes(b"not a key")
    with pytest.raises(SigningKeyError):
        open_handle_key(tmp_path / "junk")


def test_the_workers_supervisor_makes_the_handle_key_before_forking(tmp_path: Path) -> None:
    from node.settings import load
    from node.workers import _prepare_shared_state

    for listen, made in (("", False), ("127.0.0.1:0", True)):
        data = tmp_path / (listen or "off")
        _prepare_shared_state(load(env={}, overrides={"data_dir": str(data),
                                                      "handle_listen": listen}))
        assert (data / "keys" / signing.HANDLE_KEY_FILE).exists() == made
