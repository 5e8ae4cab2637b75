"""Signed records: round trip, every kind of tampering, rotation, nonces, key files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import pytest

from idnode.v1 import record_pb2
from node.rpc.wire import keys_to_wire
from node.security.signing import ECDSA_P256, ED25519, KeyRing, KeySigner, SigningKeyError, rotate
from node.verify import VerificationError, verify


def signed_by(signer: KeySigner, *, expires_in: int = 3600) -> record_pb2.SignedRecord:
    now = int(time.time())
    record = record_pb2.Record(handle="88.118.8/PN-1", version=3, node_id="n")
    record.values.add(index=1, type="URL", text="https://example.com")
    record.signed_at.seconds = now
    record.expires_at.seconds = now + expires_in
    payload = record.SerializeToString()
    return record_pb2.SignedRecord(payload=payload, signature=signer.sign(payload),
                                   key_id=signer.key_id, algorithm=signer.algorithm)


@pytest.mark.parametrize("algorithm", [ED25519, ECDSA_P256])
def test_a_signed_record_verifies_and_parses(algorithm: str) -> None:
    ring = KeyRing.ephemeral(algorithm)
    signed = signed_by(ring.active)  # type: ignore[arg-type]
    record = verify(signed, keys_to_wire(ring.published()))
    assert record.handle == "88.118.8/PN-1" and record.version == 3


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_tampering_with_payload_or_signature_fails(part: str) -> None:
    ring = KeyRing.ephemeral()
    signed = signed_by(ring.active)  # type: ignore[arg-type]
    data = bytearray(getattr(signed, part))
    data[len(data) // 2] ^= 1
    setattr(signed, part, bytes(data))
    with pytest.raises(VerificationError, match="does not match"):
        verify(signed, keys_to_wire(ring.published()))


def test_unknown_key_id_fails() -> None:
    ring = KeyRing.ephemeral()
    signed = signed_by(ring.active)  # type: ignore[arg-type]
    signed.key_id = "0000000000000000"
    with pytest.raises(VerificationError, match="not among the published keys"):
        verify(signed, keys_to_wire(ring.published()))


def test_wrong_algorithm_fails() -> None:
    ring = KeyRing.ephemeral()
    signed = signed_by(ring.active)  # type: ignore[arg-type]
    signed.algorithm = ECDSA_P256
    with pytest.raises(VerificationError, match="is 'Ed25519'"):
        verify(signed, keys_to_wire(ring.published()))


def test_expired_record_fails() -> None:
    ring = KeyRing.ephemeral()
    signed = signed_by(ring.active, expires_in=-10)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="expired"):
        verify(signed, keys_to_wire(ring.published()))


def test_nonce_signature_binds_nonce_and_payload() -> None:
    ring = KeyRing.ephemeral()
    signer = ring.active
    signed = signed_by(signer)  # type: ignore[arg-type]
    nonce = os.urandom(16)
    nonce_sig = signer.sign(nonce + hashlib.sha256(signed.payload).digest())
    keys = keys_to_wire(ring.published())
    verify(signed, keys, nonce=nonce, nonce_signature=nonce_sig)
    with pytest.raises(VerificationError):
        verify(signed, keys, nonce=os.urandom(16), nonce_signature=nonce_sig)


def test_first_start_generates_a_private_key_readable_only_by_the_owner(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys")
    key_file = tmp_path / "keys" / f"{ring.active.key_id}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = KeyRing.open(tmp_path / "keys")
    assert again.active.key_id == ring.active.key_id


def test_rotation_keeps_the_old_key_published_until_its_signatures_expire(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    old = KeyRing.open(folder)
    old_signed = signed_by(old.active)  # type: ignore[arg-type]
    new_id = rotate(folder, retire_after_seconds=3600)
    ring = KeyRing.open(folder)
    assert ring.active.key_id == new_id != old.active.key_id
    published = {k.key_id for k in ring.published()}
    assert published == {new_id, old.active.key_id}
    verify(old_signed, keys_to_wire(ring.published()))
    later = {k.key_id for k in ring.published(now=time.time() + 7200)}
    assert later == {new_id}


def test_missing_or_corrupt_keys_are_clear_start_up_errors(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="no signing keys"):
        KeyRing.open(tmp_path / "none", create=False)
    ring = KeyRing.open(tmp_path / "k")
    (tmp_path / "k" / f"{ring.active.key_id}.pem").write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        KeyRing.open(tmp_path / "k")
    (tmp_path / "k" / "keys.json").write_text(json.dumps({"keys": []}))
    with pytest.raises(SigningKeyError, match="no active key"):
        KeyRing.open(tmp_path / "k")
    (tmp_path / "k" / "keys.json").write_text("{")
    with pytest.raises(SigningKeyError, match="cannot read"):
        KeyRing.open(tmp_path / "k")
