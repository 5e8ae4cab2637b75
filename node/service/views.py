"""Signed views: a record as one caller may see it, serialised and signed once.

The payload is a serialised ``idnode.v1.Record`` (the contract signs those bytes for
every door); the ready-to-send answer wrapped around it is cached with it, so a cache
hit never signs or serialises. A nonce answer adds one fresh signature over
``nonce || SHA-256(payload)`` to the cached bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from idnode.v1 import record_pb2, resolver_pb2
from node.cache.l1 import Entry
from node.observe.metrics import Metrics
from node.security.signing import KeyRing
from node.service.payload import (
    OPERATION_NUMBERS,
    change_binding,
    change_payload,
    record_to_wire,
)
from registry.errors import InvalidArgument
from registry.record import Change, Record
from registry.values import Value

MAX_NONCE_BYTES = 256
_NONCE_SIGNATURE_TAG = bytes([(3 << 3) | 2])  # ResolveResponse.nonce_signature, bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class SignedChange:
    """A change-feed entry as signed for followers (see ``idnode.v1.Change``)."""

    payload: bytes
    signature: bytes
    key_id: str
    algorithm: str
    change_signature: bytes
    store_id: str


class ViewSigner:
    """Builds signed views and nonce answers with the key ring's active key."""

    def __init__(self, keys: KeyRing, metrics: Metrics, *, node_id: str,
                 signature_validity_seconds: int, resign_before_expiry_seconds: int,
                 l1_max_ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.metrics = metrics
        self.node_id = node_id
        self.validity = signature_validity_seconds
        self.resign_margin = resign_before_expiry_seconds
        self.l1_max_ttl = l1_max_ttl_seconds
        self.clock = clock

    def sign(self, record: Record, values: tuple[Value, ...], mono_now: float) -> Entry:
        """The entry for ``values`` of ``record``; it expires (in monotonic time) before
        its signature does, and no later than the shortest value TTL."""
        now = int(self.clock())
        signer = self.keys.active
        payload = record_to_wire(record, values, node_id=self.node_id, signed_at=now,
                                 expires_at=now + self.validity).SerializeToString()
        signature = signer.sign(payload)
        self.metrics.sign_view.inc()
        signed = record_pb2.SignedRecord(payload=payload, signature=signature,
                                         key_id=signer.key_id, algorithm=signer.algorithm)
        response = resolver_pb2.ResolveResponse(record=signed, etag=record.etag)
        ttl = min(self.l1_max_ttl, record.min_ttl(), self.validity - self.resign_margin)
        return Entry(response.SerializeToString(), mono_now + ttl, payload, signature,
                     signer.key_id, signer.algorithm, record.etag)

    def sign_change(self, change: Change, store_id: str) -> SignedChange:
        """A change signed for followers: its payload as a resolve of the whole record
        would sign it, and a second signature binding that payload to the log, position
        and operation (two signatures per change: a few tens of µs with Ed25519, next to
        a write's commit; never cached, since each position is signed once per stream)."""
        now = int(self.clock())
        signer = self.keys.active
        payload = change_payload(change, node_id=self.node_id, signed_at=now,
                                 expires_at=now + self.validity).SerializeToString()
        binding = change_binding(store_id, change.sequence, OPERATION_NUMBERS[change.operation])
        signed = SignedChange(payload, signer.sign(payload), signer.key_id, signer.algorithm,
                              signer.sign(binding + hashlib.sha256(payload).digest()),
                              store_id)
        self.metrics.sign_change.inc()
        return signed

    def with_nonce(self, entry: Entry, nonce: bytes) -> bytes:
        """A response whose nonce_signature binds ``nonce`` to this exact payload."""
        if len(nonce) > MAX_NONCE_BYTES:
            raise InvalidArgument(f"nonce is longer than {MAX_NONCE_BYTES} bytes")
        signer = self.keys.active
        digest = hashlib.sha256(entry.payload).digest()
        self.metrics.sign_nonce.inc()
        signature = signer.sign(nonce + digest)
        if signer.key_id == entry.key_id:
            # Appending a field to a serialised message is valid protobuf: the cached
            # answer is reused as is, only nonce_signature is added after it.
            response = entry.response or b""
        else:
            # The view was signed before a key rotation: both signatures must come from
            # the same key, so the payload is signed again with the active one.
            self.metrics.sign_view.inc()
            record = record_pb2.SignedRecord(payload=entry.payload,
                                             signature=signer.sign(entry.payload),
                                             key_id=signer.key_id, algorithm=signer.algorithm)
            response = resolver_pb2.ResolveResponse(record=record,
                                                     etag=entry.etag).SerializeToString()
        return response + _NONCE_SIGNATURE_TAG + _varint(len(signature)) + signature


__all__ = ["MAX_NONCE_BYTES", "SignedChange", "ViewSigner"]
