"""What goes on the wire: identifier names, request builders, auth metadata, and the
gRPC length-prefixed message framing h2load needs in its body file.

Requests are serialised once up front where possible so the load generator spends its
CPU on gRPC, not on protobuf, and can push the server harder from one core.
"""

from __future__ import annotations

import base64
import os
import random
import struct
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from loadtest.stats import ZipfSampler

RESOLVE = "/idnode.v1.Resolver/Resolve"
BATCH_RESOLVE = "/idnode.v1.Resolver/BatchResolve"
REGISTER = "/idnode.v1.Registry/Register"
BULK_REGISTER = "/idnode.v1.Registry/BulkRegister"

NODE_PREFIX = "88.118"
ENTERPRISE_PREFIX = "88.118.8"

Metadata = tuple[tuple[str, str], ...]


def grpc_frame(message: bytes, *, compressed: bool = False) -> bytes:
    """One gRPC message: 1-byte compressed flag, 4-byte big-endian length, the bytes."""
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def grpc_unframe(data: bytes) -> list[bytes]:
    """Split a body of gRPC frames back into messages (the tests' round trip)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            raise ValueError("truncated gRPC frame header")
        _flag, length = struct.unpack_from(">BI", data, pos)
        pos += 5
        if len(data) - pos < length:
            raise ValueError("truncated gRPC message")
        out.append(data[pos:pos + length])
        pos += length
    return out


def basic_auth(identity: str, secret: str) -> Metadata:
    """``authorization: Basic base64(urlencode(identity) + ":" + secret)`` (Handle style)."""
    user = urllib.parse.quote(identity, safe="")
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


def admin_identity(node_prefix: str = NODE_PREFIX) -> str:
    """The node admin created from IDNODE_ADMIN_SECRET."""
    return f"300:{node_prefix}/ADMIN"


def seeded_handle(i: int) -> str:
    """The i-th identifier the harness registers before measuring."""
    return f"{ENTERPRISE_PREFIX}/LT-{i:07d}"


def missing_handle(i: int) -> str:
    """An identifier under a served prefix that is never registered."""
    return f"{ENTERPRISE_PREFIX}/NX-{i:07d}"


def record_values(i: int) -> list[record_pb2.Value]:
    """Two values, the shape of a typical product record (~300-byte signed answer)."""
    return [
        record_pb2.Value(index=1, type="URL", text=f"https://example.com/products/{i:07d}"),
        record_pb2.Value(index=2, type="productName", text=f"bearing 6204-2RS lot {i % 997}"),
    ]


BULK_ROWS_PER_MESSAGE = 500


def bulk_requests(start: int, count: int, make_handle: Callable[[int], str] = seeded_handle,
                  rows_per_message: int = BULK_ROWS_PER_MESSAGE
                  ) -> list[registry_pb2.BulkRegisterRequest]:
    """Messages for Registry.BulkRegister, built before the clock starts: rows travel in
    chunks (``rows``), as an importer should send them, not one message per row."""
    out = []
    for first in range(start, start + count, rows_per_message):
        last = min(first + rows_per_message, start + count)
        out.append(registry_pb2.BulkRegisterRequest(rows=[
            registry_pb2.BulkRow(handle=make_handle(i), values=record_values(i))
            for i in range(first, last)]))
    return out


def resolve_bytes(handle: str, nonce: bytes = b"") -> bytes:
    """A serialised ResolveRequest."""
    return resolver_pb2.ResolveRequest(handle=handle, nonce=nonce).SerializeToString()


@dataclass(frozen=True)
class Workload:
    """What one scenario's clients send; plain data so it crosses process boundaries.

    kind: ``hot`` (Zipf over the seeded ids), ``cold`` (uniform over them), ``notfound``
    (a cyclic scan of ids never registered), ``batch`` (BatchResolve of ``batch_size``
    Zipf-drawn ids), ``mixed`` (Zipf resolves plus ``write_ratio`` Registers of new
    ids), ``nonce`` (hot, with a fresh 16-byte nonce per request: a signature each).
    """

    kind: str
    ids: int
    zipf_s: float = 0.99
    seed: int = 1
    batch_size: int = 20
    write_ratio: float = 0.05
    notfound_space: int = 2000
    authorization: str = ""
    tag: str = field(default_factory=lambda: os.urandom(3).hex())

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the client process's argument."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        """Inverse of to_dict."""
        return cls(**data)


@dataclass(frozen=True)
class Op:
    """One request to send: method path, serialised body, metadata, the codes that count
    as success (NOT_FOUND is the expected answer of the not-found scan)."""

    name: str
    path: str
    body: bytes
    metadata: Metadata = ()
    ok_codes: frozenset[str] = frozenset({"OK"})


KINDS = ("hot", "cold", "notfound", "batch", "mixed", "nonce")
PREBUILT = 4096


class OpSource:
    """Endless stream of Ops for one client process (seeded per process)."""

    def __init__(self, workload: Workload, process_index: int = 0) -> None:
        if workload.kind not in KINDS:
            raise ValueError(f"unknown workload {workload.kind!r}; one of {', '.join(KINDS)}")
        if workload.ids < 1:
            raise ValueError("workload needs at least one identifier")
        self.w = workload
        self.proc = process_index
        seed = workload.seed * 1000 + process_index
        self._rng = random.Random(seed)
        self._zipf = ZipfSampler(workload.ids, workload.zipf_s, seed=workload.seed,
                                 sample_seed=seed)
        self._i = 0
        self._writes = 0
        self._auth: Metadata = ((("authorization", workload.authorization),)
                                if workload.authorization else ())
        self._ring: list[Op] = self._prebuild()

    def _prebuild(self) -> list[Op]:
        w = self.w
        if w.kind in {"hot", "mixed"}:
            return [Op("resolve", RESOLVE, resolve_bytes(seeded_handle(self._zipf.sample())))
                    for _ in range(PREBUILT)]
        if w.kind == "cold":
            return [Op("resolve", RESOLVE, resolve_bytes(seeded_handle(i)))
                    for i in range(w.ids)]
        if w.kind == "notfound":
            return [Op("resolve", RESOLVE, resolve_bytes(missing_handle(i)),
                       ok_codes=frozenset({"NOT_FOUND"})) for i in range(w.notfound_space)]
        if w.kind == "batch":
            ops = []
            for _ in range(PREBUILT // 4):
                handles = [seeded_handle(self._zipf.sample()) for _ in range(w.batch_size)]
                body = resolver_pb2.BatchResolveRequest(handles=handles).SerializeToString()
                ops.append(Op("batch", BATCH_RESOLVE, body))
            return ops
        # nonce
        return [Op("resolve+nonce", RESOLVE,
                   resolve_bytes(seeded_handle(self._zipf.sample()), os.urandom(16)))
                for _ in range(PREBUILT)]

    def next(self) -> Op:
        """The next request to send."""
        i = self._i
        self._i = i + 1
        w = self.w
        if w.kind == "cold":
            return self._ring[self._rng.randrange(len(self._ring))]
        if w.kind == "notfound":
            # Each process starts its scan elsewhere so the processes do not walk in step.
            offset = self.proc * len(self._ring) // 7
            return self._ring[(i + offset) % len(self._ring)]
        if w.kind == "mixed" and self._rng.random() < w.write_ratio:
            return self._register()
        return self._ring[i % len(self._ring)]

    def _register(self) -> Op:
        self._writes += 1
        n = self._writes
        handle = f"{ENTERPRISE_PREFIX}/LT-W-{self.w.tag}-{self.proc}-{n}"
        body = registry_pb2.RegisterRequest(handle=handle, values=record_values(n),
                                            request_id=f"lt-{self.w.tag}-{self.proc}-{n}"
                                            ).SerializeToString()
        return Op("register", REGISTER, body, self._auth)
