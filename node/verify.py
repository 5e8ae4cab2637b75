"""Client-side verification of what a node returns: for partners' code.

    from node.verify import verify
    keys = resolver.GetSigningKeys(GetSigningKeysRequest()).keys
    record = verify(resolver.Resolve(ResolveRequest(handle=h)).record, keys)

``verify`` checks the signature over the exact payload bytes, then parses them, then
checks the validity window; it raises :class:`VerificationError` saying which check failed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from google.protobuf.message import DecodeError

from idnode.v1 import record_pb2


class VerificationError(Exception):
    """The record must not be trusted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check(public_der: bytes, algorithm: str, signature: bytes, data: bytes) -> None:
    try:
        public = serialization.load_der_public_key(public_der)
    except (ValueError, UnsupportedAlgorithm):
        raise VerificationError("published key is not a valid public key") from None
    try:
        if algorithm == "Ed25519" and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        elif algorithm == "ECDSA-P256-SHA256" and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise VerificationError(f"algorithm {algorithm!r} does not match the published key")
    except InvalidSignature:
        raise VerificationError("signature does not match the payload") from None


def verify(signed: record_pb2.SignedRecord, keys: Iterable[record_pb2.SigningKey], *,
           now: float | None = None, nonce: bytes = b"",
           nonce_signature: bytes = b"") -> record_pb2.Record:
    """Verify ``signed`` against the node's published ``keys``; return the parsed record."""
    key = next((k for k in keys if k.key_id == signed.key_id), None)
    if key is None:
        raise VerificationError(f"key {signed.key_id!r} is not among the published keys")
    if key.algorithm != signed.algorithm:
        raise VerificationError(
            f"record says {signed.algorithm!r} but key {key.key_id} is {key.algorithm!r}")
    _check(key.public_key, signed.algorithm, signed.signature, signed.payload)
    if nonce:
        digest = hashlib.sha256(signed.payload).digest()
        _check(key.public_key, signed.algorithm, nonce_signature, nonce + digest)
    try:
        record = record_pb2.Record.FromString(signed.payload)
    except DecodeError:
        raise VerificationError("payload is not an idnode.v1.Record") from None
    at = time.time() if now is None else now
    if record.HasField("expires_at") and record.expires_at.ToSeconds() < at:
        raise VerificationError("record signature has expired")
    if key.HasField("not_after") and record.signed_at.ToSeconds() > key.not_after.ToSeconds():
        raise VerificationError("record was signed after its key's validity ended")
    return record
