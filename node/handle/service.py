"""The Handle door: one request message in, one response message out, through the core.

Transport-free (the server in :mod:`node.handle.server` owns sockets), so TCP and UDP
answer identically and the tests can drive it without a network.

A hot resolution is a lookup plus a header patch: the core returns its cached
:class:`~node.cache.l1.Entry`, whose ``renditions["handle"]`` holds the answer body
(handle and value records, and the empty credential) encoded the first time this record
version was asked for over this door; only the 44 bytes of envelope and header are
packed per request. A repeated plain resolution is cheaper still: :meth:`HandleService.fast`
finds the whole answer by the request's bytes and patches the ids and expiration in,
without decoding anything (docs/ARCHITECTURE.md, "Handle protocol: the hot path").
Request counts and durations are batched per thread (:mod:`node.observe.batched`).

Two things exist only on this door:

- **Certified answers** (the CT flag): signed per request by
  :class:`~node.handle.certify.Certifier`, on a worker thread (an RSA signature holds
  the interpreter for a few hundred microseconds, so it never runs on the UDP thread or
  the TCP event loop, and a flood of them meets the workers' bounded backlog:
  RC_SERVER_TOO_BUSY, unsigned).
- **HS_SITE on prefix handles**: a resolution of ``0.NA/<prefix>`` (a prefix this node
  serves; only those exist as records here) carries an HS_SITE value describing this
  node, the same record OC_GET_SITEINFO answers, at index 1 (the lowest free index if
  a stored value holds 1; none when the stored record has an HS_SITE of its own). It
  is added to the answer, never stored: it names the bound port and advertised address
  of this door, which the store and the other doors know nothing of.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import struct
import time
from bisect import bisect_left
from collections.abc import Sequence

from idnode.v1 import record_pb2
from node.cache.l1 import VIEW_SEP, Entry
from node.errors import mapping_for, public_message
from node.handle import codec as c
from node.handle.certify import SIGNER_INDEX, Certifier
from node.observe.batched import Batched
from node.observe.metrics import (
    HANDLE_CODES,
    HANDLE_OPERATIONS,
    HANDLE_TRANSPORTS,
    LATENCY_BUCKETS,
    Metrics,
)
from node.service.caller import Caller
from node.service.core import Core
from node.service.resolve import view_id
from registry.access.rights import governed_prefix
from registry.errors import IdnodeError, ResourceExhausted, ValuesNotFound
from registry.identifier import Handle

log = logging.getLogger("idnode.handle")

RENDITION = "handle"
DROP = b""  # a message that deserves no answer (a response sent to us, a fragment)

_OPERATION_NAMES = {c.OC_RESOLUTION: "resolution", c.OC_GET_SITEINFO: "get_siteinfo"}
_ECHOED_FLAGS = c.FLAG_PUBLIC_ONLY | c.FLAG_KEEP_CONNECTION
# Opcode OC_RESOLUTION and response code 0: the first 8 bytes of a resolution request.
_PLAIN_RESOLUTION = b"\0\0\0\x01\0\0\0\0"
_NOT_PLAIN = object()
_ADMITTED = object()  # not plain after all, and already counted by the rate limit
# What the hot path leaves to the general one: digests and signatures.
_NOT_HOT_FLAGS = c.FLAG_REQUEST_DIGEST | c.FLAG_CERTIFIED

SITE_TYPE = b"HS_SITE"
_SITE_TYPES = (SITE_TYPE, b"HS_SITE.6")
SITE_TTL_SECONDS = 86400
# An answer's expiration time: twelve hours after it is made, as the Java library's
# messages (AbstractMessage); its resolver refuses an answer whose expiration has passed
# (HandleResolver: GOT_EXPIRED_MESSAGE), and a signed one cannot be replayed after it.
ANSWER_LIFETIME_SECONDS = 43200
# Whole answers remembered by their request's bytes (see HandleService.fast):
# at most this many, each at most one datagram plus its key (≈ 1 KiB), so ≈ 8 MiB.
FAST_ANSWERS_MAX = 8192
_I32 = struct.Struct(">i")
_SEQUENCE_AND_LENGTH = struct.Struct(">iI")


def handle_code(exc: IdnodeError) -> int:
    """The Handle response code of an error: the one table's, except that a refusal for
    load or rate (RESOURCE_EXHAUSTED) is RC_SERVER_TOO_BUSY, which Handle clients know
    to retry (the REST API keeps the table's responseCode 2)."""
    if isinstance(exc, ResourceExhausted):
        return c.RC_SERVER_TOO_BUSY
    return mapping_for(exc).handle_code


def record_values(payload: bytes) -> list[c.HandleValue]:
    """The value records of a signed payload (a serialised ``idnode.v1.Record``)."""
    record = record_pb2.Record.FromString(payload)
    out: list[c.HandleValue] = []
    for v in record.values:
        kind = v.WhichOneof("data")
        if kind == "text":
            data = v.text.encode("utf-8")
        elif kind == "binary":
            data = v.binary
        elif kind == "admin":
            data = c.encode_admin(v.admin.handle, v.admin.index, v.admin.permissions)
        elif kind == "vlist":
            data = c.encode_vlist([(ref.handle, ref.index) for ref in v.vlist.refs])
        else:
            data = b""
        if v.HasField("permissions"):
            p = v.permissions
            perms = ((c.PERM_ADMIN_READ if p.admin_read else 0)
                     | (c.PERM_ADMIN_WRITE if p.admin_write else 0)
                     | (c.PERM_PUBLIC_READ if p.public_read else 0)
                     | (c.PERM_PUBLIC_WRITE if p.public_write else 0))
        else:
            perms = c.DEFAULT_PERMISSIONS
        out.append(c.HandleValue(index=v.index, type=v.type.encode("utf-8"), data=data,
                                 ttl=v.ttl or 86400, timestamp=v.timestamp.seconds,
                                 permissions=perms))
    return out


def is_prefix_handle(text: str) -> bool:
    """Whether ``text`` is a prefix handle ``0.NA/<prefix>``."""
    try:
        return governed_prefix(Handle.parse(text)) is not None
    except IdnodeError:
        return False


def with_site(values: Sequence[c.HandleValue], site: c.HandleValue) -> list[c.HandleValue]:
    """``values`` and ``site`` in index order, at ``site.index`` or, when a value holds
    it, the lowest free index; ``values`` alone when one of them is an HS_SITE already
    (what the record says wins)."""
    if any(v.type in _SITE_TYPES for v in values):
        return list(values)
    taken = {v.index for v in values}
    index = site.index
    while index in taken:
        index = 1 if index < 1 else index + 1
    if index != site.index:
        site = c.HandleValue(index, site.type, site.data, site.ttl, site.timestamp,
                             site.ttl_type, site.permissions)
    out = list(values)
    at = next((n for n, v in enumerate(out) if v.index > index), len(out))
    out.insert(at, site)
    return out


def rendition(entry: Entry, site: c.HandleValue | None = None) -> bytes:
    """The answer body of ``entry`` followed by the empty credential, made once; with
    ``site`` (this node's HS_SITE value) included when ``entry`` is a prefix handle's
    whole public record."""
    renditions = entry.renditions
    if renditions is None:
        renditions = entry.renditions = {}
    cached = renditions.get(RENDITION)
    if cached is None:
        handle = record_pb2.Record.FromString(entry.payload).handle
        values = record_values(entry.payload)
        if site is not None and is_prefix_handle(handle):
            values = with_site(values, site)
        cached = c.encode_resolution_body(handle.encode("utf-8"), values) + c.NO_CREDENTIAL
        renditions[RENDITION] = cached
    return cached


def expires_at(now: float) -> int:
    """An answer's expiration time as the header's signed 32-bit field holds it."""
    return ((int(now) + ANSWER_LIFETIME_SECONDS + 2**31) & 0xFFFFFFFF) - 2**31


class HandleService:
    """Answers OC_RESOLUTION and OC_GET_SITEINFO through the application core."""

    def __init__(self, core: Core, metrics: Metrics, *, site_record: bytes,
                 site_serial: int, certifier: Certifier | None = None) -> None:
        self.core = core
        self.metrics = metrics
        self.site_serial = site_serial
        self.certifier = certifier  # None: certified requests get unsigned answers
        self._public = core.public
        self._cached = core.resolver.cached_public
        self._admit = core.admit_public  # None unless the per-address resolve limit is on
        self._resolver = core.resolver
        self._beacon_read = core.resolver.beacon.read
        self._coherence = core.resolver.coherence
        self._l1_get = core.resolver.l1.get
        self._monotonic = core.resolver.monotonic
        self._batch(metrics)
        # The raw-bytes fast path (UDP and TCP): request bytes without the ids and the
        # expiration → (L1 key, the L1 entry answered from, the whole encoded answer).
        self._fast: dict[bytes, tuple[str, Entry, bytes]] = {}
        self._expiration = b""
        self._expiration_until = 0.0
        self.site_record = c.NO_CREDENTIAL
        self.site_value: c.HandleValue | None = None
        self.set_site(site_record)

    def set_site(self, record: bytes) -> None:
        """The HS_SITE answered to OC_GET_SITEINFO and added to prefix handles (known once
        the port is bound, before the door starts: answers cached earlier keep theirs)."""
        self.site_record = record + c.NO_CREDENTIAL
        self.site_value = c.HandleValue(
            SIGNER_INDEX, SITE_TYPE, record, SITE_TTL_SECONDS, int(time.time())) \
            if record else None

    # --- metrics ------------------------------------------------------------------------

    def _batch(self, metrics: Metrics) -> None:
        """Slots for every request counter and duration histogram of this door (and the
        L1 hit counter the fast path bypasses), counted per thread in plain ints and
        folded into the prometheus children when the registry is collected (see
        :mod:`node.observe.batched`)."""
        batched = self._batched = Batched(enabled=metrics.enabled)
        codes = {name: code for code, name in c.RESPONSE_CODE_NAMES.items()}
        self._slots: dict[tuple[str, str, int], tuple[int, int]] = {}
        self._error_slots: dict[tuple[str, str], tuple[int, int]] = {}
        for operation in HANDLE_OPERATIONS:
            for transport in HANDLE_TRANSPORTS:
                histogram = batched.histogram(metrics.handle_duration(operation, transport),
                                              LATENCY_BUCKETS)
                for name in HANDLE_CODES:
                    slot = batched.counter(metrics.handle_request(operation, transport, name))
                    self._slots[(operation, transport, codes[name])] = (slot, histogram)
                self._error_slots[(operation, transport)] = \
                    self._slots[(operation, transport, c.RC_ERROR)]
        self._l1_hit_slot = batched.counter(metrics.l1_hit)
        self._fast_slots = {transport: self._slots[("resolution", transport, c.RC_SUCCESS)]
                            for transport in HANDLE_TRANSPORTS}
        self._fast_bounds = batched.bounds[self._fast_slots["udp"][1]]  # all alike
        self._tally = batched.tally
        metrics.before_collect(batched.fold)

    def flush_metrics(self) -> None:
        """Fold the batched counts into the prometheus children now (the server's sweep
        does, for ``--workers``, whose metrics port reads the multiprocess files)."""
        self._batched.fold()

    def _count(self, operation: str, transport: str, code: int, started: float) -> None:
        slots = self._slots.get((operation, transport, code))
        if slots is None:  # a code outside the fixed label set counts as ERROR
            slots = self._error_slots[(operation, transport)]
        tally = self._tally()
        tally.counts[slots[0]] += 1
        tally.observe(slots[1], self._batched.bounds[slots[1]],
                      time.perf_counter() - started)

    # --- the raw-bytes fast path ------------------------------------------------------

    def fast(self, data: bytes, transport: str = "udp") -> bytes | None:
        """The answer to a whole request ``data`` (a UDP datagram, or envelope and
        message from a TCP stream) when the same request (every byte but the session
        id, request id and expiration) was answered from the same current L1 entry
        before: the remembered answer with this request's ids and a
        fresh expiration patched in. None: not remembered (or no longer current), use
        :meth:`answer`.

        No decoding, no peer string: one dict lookup, the core's coherence and L1 checks
        (the same :meth:`Resolver.cached_public` makes), a few slices. Only plain
        resolutions answered by :meth:`_plain` are remembered (never certified, digest,
        filtered, rate-limited, fragmented or truncated exchanges), and only answers
        that fit one datagram, so what the general path would do is all a hit can stand
        for, on either transport."""
        started = time.perf_counter()
        hit = self._fast.get(data[:4] + data[12:36] + data[40:])
        if hit is None or self._beacon_read() != self._coherence.applied_sequence:
            return None
        key, entry, answer = hit
        if self._l1_get(key, self._monotonic()) is not entry:
            self._fast.pop(data[:4] + data[12:36] + data[40:], None)
            return None
        now = time.time()
        if now >= self._expiration_until:
            self._expiration = _I32.pack(expires_at(now))
            self._expiration_until = float(int(now) + 1)
        out = answer[:4] + data[4:12] + answer[12:36] + self._expiration + answer[40:]
        tally = self._tally()
        counts = tally.counts
        counter, histogram = self._fast_slots[transport]
        counts[counter] += 1
        counts[self._l1_hit_slot] += 1
        seconds = time.perf_counter() - started
        bounds = self._fast_bounds
        tally.buckets[histogram][0 if seconds <= bounds[0]
                                 else bisect_left(bounds, seconds)] += 1
        tally.sums[histogram] += seconds
        return out

    def _remember(self, env: c.Envelope, msg: bytes, text: str, entry: Entry,
                  out: bytes) -> None:
        """Keep ``out`` for :meth:`fast` under the request bytes of ``env`` + ``msg``
        that it depends on (all but the ids and the request's expiration)."""
        if len(out) > c.UDP_PACKET_BYTES:
            return  # sent in fragments: the general path's business
        try:
            key = self._resolver.parse(text).key
        except IdnodeError:
            return
        fast = self._fast
        if len(fast) >= FAST_ANSWERS_MAX:
            fast.clear()  # cheaper than LRU bookkeeping on every hit; refilled by use
        fast[bytes((env.major, env.minor, env.flags, env.suggest_minor))
             + _SEQUENCE_AND_LENGTH.pack(env.sequence, env.length) + msg[:16]
             + msg[20:]] = (key, entry, out)

    # --- answering ----------------------------------------------------------------------

    def answer(self, env: c.Envelope, msg: bytes, transport: str, peer: str, *,
               may_block: bool = True) -> bytes | None:
        """The framed answer (envelope + message) to one whole request message.

        ``None``: answering may wait for the store or Redis and ``may_block`` is False;
        the caller runs it again on a worker thread. :data:`DROP`: no answer at all.
        """
        started = time.perf_counter()
        admitted = False  # whether this request has been counted by the rate limit
        if msg[:8] == _PLAIN_RESOLUTION and len(msg) >= 36 and env.major == c.MAJOR_VERSION \
                and not env.flags & (c.ENV_COMPRESSED | c.ENV_ENCRYPTED):
            out = self._plain(env, msg, transport, peer, may_block, started)
            if out is not _NOT_PLAIN and out is not _ADMITTED:
                return out  # type: ignore[return-value]
            admitted = out is _ADMITTED
        try:
            c.check_envelope(env)
            m = c.decode_message(msg)
        except c.ProtocolError as exc:
            opcode = int.from_bytes(msg[:4], "big", signed=True) if len(msg) >= 4 else 0
            if len(msg) >= 8 and msg[4:8] != b"\0\0\0\0":
                return DROP  # an answer (or garbage shaped like one): never answer it
            self._count("other", transport, exc.code, started)
            return self.error(env, opcode, 0, 0, b"", exc.code, exc.message)
        h = m.header
        if h.response_code != c.RC_RESERVED:
            return DROP
        if not may_block and h.op_flags & c.FLAG_CERTIFIED and self.certifier is not None:
            return None  # a signature: made on a worker (see the module's docstring)
        operation = _OPERATION_NAMES.get(h.opcode, "other")
        digest = b""
        if h.op_flags & c.FLAG_REQUEST_DIGEST:
            digest = bytes([c.DIGEST_SHA256]) + hashlib.sha256(m.digested).digest()
        if h.opcode == c.OC_RESOLUTION:
            try:
                req = c.decode_resolution_request(m.body)
            except c.ProtocolError as exc:
                self._count(operation, transport, exc.code, started)
                return self.error(env, h.opcode, h.op_flags, h.recursion, digest, exc.code,
                                  exc.message)
            if not may_block and self.would_block(req):
                return None
            try:
                body = self.resolution(req, peer, admitted=admitted)
            except IdnodeError as exc:
                code = handle_code(exc)
                self._count(operation, transport, code, started)
                return self.error(env, h.opcode, h.op_flags, h.recursion, digest, code,
                                  public_message(exc))
            except Exception:
                log.exception("handle resolution failed (peer %s)", peer)
                self._count(operation, transport, c.RC_ERROR, started)
                return self.error(env, h.opcode, h.op_flags, h.recursion, digest,
                                  c.RC_ERROR, "internal error (logged on the node)")
        elif h.opcode == c.OC_GET_SITEINFO:
            body = self.site_record
        else:
            self._count(operation, transport, c.RC_OPERATION_NOT_SUPPORTED, started)
            return self.error(env, h.opcode, h.op_flags, h.recursion, digest,
                              c.RC_OPERATION_NOT_SUPPORTED,
                              f"operation {h.opcode} is not supported by this node")
        out = self.frame(env, h.opcode, c.RC_SUCCESS, h.op_flags, h.recursion, digest, body)
        self._count(operation, transport, c.RC_SUCCESS, started)
        return out

    def _plain(self, env: c.Envelope, msg: bytes, transport: str, peer: str,
               may_block: bool, started: float) -> bytes | object | None:
        """The hot path: an unfiltered resolution (optionally with the SDKs' empty
        authBytes) without a request digest, read with a few slices instead of the
        general decoder. Anything else is :data:`_NOT_PLAIN` (the general path), or
        :data:`_ADMITTED` when the rate limit already counted it."""
        n = int.from_bytes(msg[24:28], "big")
        end = 28 + n
        body_length = int.from_bytes(msg[20:24], "big")
        op_flags = int.from_bytes(msg[8:12], "big")
        rest = msg[end:]
        if body_length - n not in (8, 12) or len(msg) - 24 - body_length not in (0, 4) \
                or rest.strip(b"\0") or op_flags & _NOT_HOT_FLAGS \
                or len(msg) > c.MAX_REQUEST_BYTES:
            return _NOT_PLAIN
        try:
            text = msg[28:end].decode("utf-8")
        except UnicodeDecodeError:
            return _NOT_PLAIN
        entry = self._cached(text)  # the hot path: one lookup
        if entry is None and not may_block and self._public_would_block(text):
            return None
        if self._admit is not None:
            try:
                self._admit(peer)
            except IdnodeError as exc:
                code = handle_code(exc)
                self._count("resolution", transport, code, started)
                return self.error(env, c.OC_RESOLUTION, op_flags, msg[18], b"", code,
                                  public_message(exc))
        try:
            body = rendition(entry if entry is not None else self._public(text),
                             self.site_value)
        except IdnodeError:
            # Errors are answered by the general path (which must not count it again).
            return _NOT_PLAIN if self._admit is None else _ADMITTED
        out = self.frame(env, c.OC_RESOLUTION, c.RC_SUCCESS, op_flags, msg[18], b"", body)
        self._count("resolution", transport, c.RC_SUCCESS, started)
        if entry is not None and self._admit is None and env.sequence == 0 \
                and env.length == len(msg) and not env.flags & c.ENV_TRUNCATED:
            self._remember(env, msg, text, entry, out)
        return out

    def _public_would_block(self, text: str) -> bool:
        """:meth:`would_block` for an unfiltered resolution."""
        r = self._resolver
        if r.beacon.read() != r.coherence.applied_sequence:
            return True
        try:
            handle = r.parse(text)
        except IdnodeError:
            return False
        return r.l1.get(handle.key, r.monotonic()) is None

    def frame(self, env: c.Envelope, opcode: int, code: int, req_flags: int, recursion: int,
              digest: bytes, body: bytes) -> bytes:
        """Envelope + header + ``body`` (which ends with its empty credential section).

        The answer speaks the request's minor version (at most 2.11) and, to clients new
        enough to read it (2.8 on), suggests 2.11 in the envelope's flag bits. A request
        with the certified flag gets the flag back and a signed credential instead of
        the empty one (when the node has a key)."""
        minor = env.minor if env.minor <= c.MINOR_VERSION else c.MINOR_VERSION
        if minor >= 8:
            flags, suggest = c.MAJOR_VERSION, c.MINOR_VERSION
        else:
            flags, suggest = 0, 0
        op_flags = c.FLAG_AUTHORITATIVE | (req_flags & _ECHOED_FLAGS)
        if digest:
            op_flags |= c.FLAG_REQUEST_DIGEST
            body = digest + body
        body_length = len(body) - 4
        expiration = expires_at(time.time())
        certifier = self.certifier
        if req_flags & c.FLAG_CERTIFIED and certifier is not None:
            message = c.HEADER.pack(opcode, code, op_flags | c.FLAG_CERTIFIED,
                                    self.site_serial, recursion, 0, expiration,
                                    body_length) + body[:body_length]
            message += certifier.credential(minor=minor, suggest_major=flags,
                                            suggest_minor=suggest, session_id=env.session_id,
                                            request_id=env.request_id, message=message)
            return c.ENVELOPE.pack(c.MAJOR_VERSION, minor, flags, suggest, env.session_id,
                                   env.request_id, 0, len(message)) + message
        return c.HEAD.pack(c.MAJOR_VERSION, minor, flags, suggest, env.session_id,
                           env.request_id, 0, c.HEADER_BYTES + len(body), opcode, code,
                           op_flags, self.site_serial, recursion, 0, expiration,
                           body_length) + body

    def error(self, env: c.Envelope, opcode: int, req_flags: int, recursion: int,
              digest: bytes, code: int, message: str) -> bytes:
        """An error answer: the response code and a message."""
        return self.frame(env, opcode, code, req_flags, recursion, digest,
                          c.encode_error_body(message) + c.NO_CREDENTIAL)

    def busy(self, env: c.Envelope, msg: bytes, transport: str) -> bytes:
        """RC_SERVER_TOO_BUSY for a request that found every worker taken."""
        opcode = int.from_bytes(msg[:4], "big", signed=True) if len(msg) >= 4 else 0
        self._count(_OPERATION_NAMES.get(opcode, "other"), transport, c.RC_SERVER_TOO_BUSY,
                    time.perf_counter())
        return self.error(env, opcode, 0, 0, b"", c.RC_SERVER_TOO_BUSY,
                          "the node is busy; try again")

    def protocol_error(self, env: c.Envelope, transport: str, message: str) -> bytes:
        """RC_PROTOCOL_ERROR for an envelope the transport refused before the message."""
        self._count("other", transport, c.RC_PROTOCOL_ERROR, time.perf_counter())
        return self.error(env, 0, 0, 0, b"", c.RC_PROTOCOL_ERROR, message)

    # --- resolution through the core ----------------------------------------------------

    def resolution(self, req: c.ResolutionRequest, peer: str, *,
                   admitted: bool = False) -> bytes:
        """The answer body (and empty credential) for ``req``, from the core's entry.
        ``admitted``: the per-address rate limit has counted this request already."""
        if not req.indexes and not req.types:
            if self._admit is not None and not admitted:
                self._admit(peer)
            return rendition(self._public(req.handle), self.site_value)
        if self.site_value is not None and self._is_site_handle(req.handle):
            return self._prefix_resolution(req, peer, admitted=admitted)
        exact = [t for t in req.types if not t.endswith(".")]
        prefixes = [t for t in req.types if t.endswith(".")]
        if prefixes:
            exact += expand_prefixes(self._public(req.handle).payload, prefixes)
            if not exact and not req.indexes:
                raise ValuesNotFound(f"{req.handle} has no values of the requested types "
                                     "or indexes")
        entry = self.core.resolve(Caller(None, peer, "handle"), req.handle, types=exact,
                                  indexes=[i for i in req.indexes if i > 0])
        return rendition(entry)

    def _is_site_handle(self, text: str) -> bool:
        """Whether ``text`` names a prefix handle (served here, or the core says not)."""
        try:
            return governed_prefix(self._resolver.parse(text)) is not None
        except IdnodeError:
            return False

    def _prefix_resolution(self, req: c.ResolutionRequest, peer: str, *,
                           admitted: bool) -> bytes:
        """A filtered resolution of a prefix handle: the filter applied here to the public
        record and this node's HS_SITE value (the core's filter cannot see a value it
        does not store). Filtered answers are encoded per request: prefix handles are
        read by resolvers looking for a prefix's service, which cache what they find."""
        assert self.site_value is not None
        if self._admit is not None and not admitted:
            self._admit(peer)
        entry = self._public(req.handle)
        record = record_pb2.Record.FromString(entry.payload)
        values = with_site(record_values(entry.payload), self.site_value)
        indexes = {i for i in req.indexes if i > 0}
        exact = {t.encode("utf-8") for t in req.types if not t.endswith(".")}
        prefixes = tuple(t.encode("utf-8") for t in req.types if t.endswith("."))
        if indexes or exact or prefixes:
            values = [v for v in values if v.index in indexes or v.type in exact
                      or (prefixes and v.type.startswith(prefixes))]
        if not values:
            # Nothing public matched: the core's own answer (values not found, or that
            # the values matched are not public), never a rate-limit count again.
            types = sorted(t for t in req.types if not t.endswith(".")) + \
                expand_prefixes(entry.payload, [t for t in req.types if t.endswith(".")])
            if not types and not indexes:
                raise ValuesNotFound(f"{req.handle} has no values of the requested types "
                                     "or indexes")
            entry = self._resolver.resolve(req.handle, types=types, indexes=sorted(indexes))
            values = record_values(entry.payload)
        return c.encode_resolution_body(record.handle.encode("utf-8"), values) + \
            c.NO_CREDENTIAL

    def would_block(self, req: c.ResolutionRequest) -> bool:
        """Whether the core would have to read the store (or Redis) for ``req``.

        A read-only peek at the core's own state (its change beacon and L1, the same
        checks :meth:`Resolver.public` makes first), so the event-loop thread answers
        hits itself and hands only misses to a worker. A wrong guess costs one store read
        on the loop, never a wrong answer: the core call that follows decides."""
        r = self._resolver
        if r.beacon.read() != r.coherence.applied_sequence:
            return True
        try:
            handle = r.parse(req.handle)
        except IdnodeError:
            return False  # refused without I/O
        key = handle.key
        if self.site_value is None or governed_prefix(handle) is None:
            if any(t.endswith(".") for t in req.types):
                return True
            if req.types or req.indexes:
                key += VIEW_SEP + view_id(False, req.types, [i for i in req.indexes if i > 0])
        # (a prefix handle's filtered answer is made from its public record: ``key``)
        return r.l1.get(key, r.monotonic()) is None


SITE_SERIAL = 1


def site_record(address: str, port: int, *, description: str = "",
                public_key: bytes = b"") -> bytes:
    """The HS_SITE of this node: one primary server at ``address`` answering queries on
    TCP and UDP at ``port``, with ``public_key`` (HS_PUBKEY data: the key certified
    answers are signed with). An address that is not an IP (a wildcard, a name) is
    advertised as all zeros: set ``handle_site_address`` to what clients should use. An
    IPv4 address fills the last 4 of the 16 octets, the rest zero, as the Java library
    writes and reads it (ServerInfo.isIPv4)."""
    raw = b""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
        if not ip.is_unspecified:
            raw = ip.packed
    except ValueError:
        pass
    server = c.Server(1, raw.rjust(16, b"\0"), public_key, (
        c.Interface(c.SERVICE_QUERY, c.PROTOCOL_TCP, port),
        c.Interface(c.SERVICE_QUERY, c.PROTOCOL_UDP, port)))
    attributes = ((b"desc", description.encode("utf-8")),) if description else ()
    return c.encode_site(c.SiteInfo(SITE_SERIAL, (server,), attributes=attributes))


def expand_prefixes(payload: bytes, prefixes: Sequence[str]) -> list[str]:
    """The types of a record that start with one of ``prefixes`` (each ending in '.'),
    so the core's exact-type filter can select them."""
    record = record_pb2.Record.FromString(payload)
    return sorted({v.type for v in record.values if v.type.startswith(tuple(prefixes))})


__all__ = ["ANSWER_LIFETIME_SECONDS", "DROP", "SITE_SERIAL", "SITE_TYPE", "HandleService",
           "expand_prefixes", "expires_at", "handle_code", "is_prefix_handle",
           "record_values", "rendition", "site_record", "with_site"]
