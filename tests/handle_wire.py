"""An independent RFC 3652 encoder/decoder for the tests, written from the RFC's message
diagrams (and the deployed clients' documented variants), not from node.handle.

It shares no code with the server on purpose: a round trip between the two catches a
mistake made twice only if both made the same one. It builds requests field by field
with ``struct`` and parses answers with an explicit offset, the way a reader of the RFC
would.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

ENVELOPE = 20
HEADER = 24
UDP_PACKET = 512

OC_RESOLUTION = 1
OC_GET_SITEINFO = 2
RC_SUCCESS = 1

AT = 0x80000000  # authoritative
CT = 0x40000000  # certified
KC = 0x02000000  # keep connection
PO = 0x01000000  # public only
RD = 0x00800000  # return request digest
TC_BIT = 0x20  # in the first MessageFlag octet


def u32(n: int) -> bytes:
    return struct.pack("!I", n & 0xFFFFFFFF)


def utf8_string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return u32(len(raw)) + raw


def resolution_body(handle: str | bytes, indexes: tuple[int, ...] = (),
                    types: tuple[str, ...] = (), auth_bytes: bytes | None = None) -> bytes:
    """Handle, IndexList (count + int4s), TypeList (count + strings), [authBytes]."""
    out = utf8_string(handle) + u32(len(indexes))
    for i in indexes:
        out += struct.pack("!i", i)
    out += u32(len(types))
    for t in types:
        out += utf8_string(t)
    if auth_bytes is not None:
        out += utf8_string(auth_bytes)
    return out


def message(opcode: int, body: bytes, *, op_flags: int = 0, credential: bool = True,
            recursion: int = 0) -> bytes:
    """Header (OpCode, ResponseCode=0, OpFlag, SiteInfoSerial, RecursionCount, reserved,
    ExpirationTime, BodyLength) + body + an empty credential section."""
    head = struct.pack("!IIIHBBII", opcode, 0, op_flags, 0, recursion, 0, 0, len(body))
    return head + body + (u32(0) if credential else b"")


def envelope(length: int, *, request_id: int, minor: int = 10, flags: int = 0,
             suggest: tuple[int, int] | None = None, session_id: int = 0,
             sequence: int = 0, major: int = 2) -> bytes:
    """MajorVersion, MinorVersion, MessageFlag (2 octets), SessionId, RequestId,
    SequenceNumber, MessageLength."""
    flag0 = flags
    flag1 = 0
    if suggest is not None:
        flag0 |= suggest[0] & 0x03
        flag1 = suggest[1]
    return struct.pack("!BBBBIIII", major, minor, flag0, flag1, session_id, request_id,
                       sequence, length)


def request(opcode: int, body: bytes, *, request_id: int, minor: int = 10,
            op_flags: int = 0, suggest: tuple[int, int] | None = None,
            credential: bool = True, session_id: int = 0) -> bytes:
    """A whole framed request (envelope + message)."""
    msg = message(opcode, body, op_flags=op_flags, credential=credential)
    return envelope(len(msg), request_id=request_id, minor=minor, suggest=suggest,
                    session_id=session_id) + msg


def fragments(framed: bytes, *, packet: int = UDP_PACKET) -> list[bytes]:
    """A framed request split over several UDP datagrams (RFC 3652 §2.2.1): each gets a
    copy of the envelope with the TC flag set, SequenceNumber counting from 0 and
    MessageLength still the length of the whole message, followed by the next
    ``packet - 20`` octets of the message."""
    major, minor, flag0, flag1, session_id, request_id, _seq, length = \
        struct.unpack("!BBBBIIII", framed[:ENVELOPE])
    msg = framed[ENVELOPE:]
    chunk = packet - ENVELOPE
    return [struct.pack("!BBBBIIII", major, minor, flag0 | TC_BIT, flag1, session_id,
                        request_id, n, length) + msg[n * chunk:(n + 1) * chunk]
            for n in range(-(-len(msg) // chunk))]


def resolve_request(handle: str | bytes, *, request_id: int = 7, indexes: tuple[int, ...] = (),
                    types: tuple[str, ...] = (), auth_bytes: bytes | None = None,
                    op_flags: int = 0, minor: int = 10,
                    suggest: tuple[int, int] | None = None, session_id: int = 0) -> bytes:
    return request(OC_RESOLUTION, resolution_body(handle, indexes, types, auth_bytes),
                   request_id=request_id, op_flags=op_flags, minor=minor, suggest=suggest,
                   session_id=session_id)


@dataclass
class Answer:
    """A parsed answer: envelope fields, header fields and the body after any digest."""

    major: int
    minor: int
    flag0: int
    flag1: int
    session_id: int
    request_id: int
    sequence: int
    length: int
    opcode: int = 0
    code: int = 0
    op_flags: int = 0
    site_serial: int = 0
    recursion: int = 0
    body: bytes = b""
    digest: bytes = b""
    credential_length: int = 0
    expiration: int = 0
    message: bytes = b""  # header and body as sent (what a signature covers)
    credential: bytes = b""  # the credential after its length


def parse_envelope(data: bytes) -> Answer:
    fields = struct.unpack("!BBBBIIII", data[:ENVELOPE])
    return Answer(*fields)


def parse_answer(data: bytes) -> Answer:
    """One whole framed answer (envelope + message)."""
    a = parse_envelope(data)
    msg = data[ENVELOPE:]
    assert len(msg) == a.length, (len(msg), a.length)
    (a.opcode, a.code, a.op_flags, a.site_serial, a.recursion, _reserved, a.expiration,
     body_length) = struct.unpack("!IIIHBBiI", msg[:HEADER])
    body = msg[HEADER:HEADER + body_length]
    a.message = msg[:HEADER + body_length]
    rest = msg[HEADER + body_length:]
    a.credential_length = struct.unpack("!I", rest[:4])[0]
    assert len(rest) == 4 + a.credential_length
    a.credential = rest[4:]
    if a.op_flags & RD:
        size = {1: 16, 2: 20, 3: 32}[body[0]]
        a.digest, body = body[:1 + size], body[1 + size:]
    a.body = body
    return a


@dataclass
class Value:
    index: int
    timestamp: int
    ttl_type: int
    ttl: int
    permissions: int
    type: str
    data: bytes
    references: list[tuple[str, int]] = field(default_factory=list)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def fmt(self, spec: str) -> tuple[int, ...]:
        size = struct.calcsize(spec)
        out = struct.unpack(spec, self.data[self.at:self.at + size])
        self.at += size
        return out

    def string(self) -> bytes:
        (n,) = self.fmt("!I")
        raw = self.data[self.at:self.at + n]
        assert len(raw) == n
        self.at += n
        return raw


def parse_values(body: bytes) -> tuple[str, list[Value]]:
    """Handle + ValueList of a successful resolution answer (RFC 3652 §3.1 records)."""
    cur = _Cursor(body)
    handle = cur.string().decode()
    (count,) = cur.fmt("!I")
    values = []
    for _ in range(count):
        index, timestamp, ttl_type, ttl, perms = cur.fmt("!iIBiB")
        vtype = cur.string().decode()
        data = cur.string()
        (nrefs,) = cur.fmt("!I")
        refs = []
        for _ in range(nrefs):
            ref = cur.string().decode()
            (ri,) = cur.fmt("!i")
            refs.append((ref, ri))
        values.append(Value(index, timestamp, ttl_type, ttl, perms, vtype, data, refs))
    assert cur.at == len(body), "trailing bytes after the value list"
    return handle, values


def parse_error(body: bytes) -> str:
    return _Cursor(body).string().decode()


@dataclass
class Site:
    version: int
    major: int
    minor: int
    serial: int
    primary_mask: int
    attributes: dict[str, str]
    servers: list[tuple[int, bytes, bytes, list[tuple[int, int, int]]]]


def parse_site(body: bytes) -> Site:
    """An HS_SITE record (RFC 3651 §3.2.2)."""
    cur = _Cursor(body)
    version, major, minor, serial, mask, _hash_option = cur.fmt("!HBBHBB")
    cur.string()  # hash filter
    (nattr,) = cur.fmt("!I")
    attributes = {cur.string().decode(): cur.string().decode() for _ in range(nattr)}
    (nservers,) = cur.fmt("!I")
    servers = []
    for _ in range(nservers):
        (server_id,) = cur.fmt("!i")
        address = cur.data[cur.at:cur.at + 16]
        cur.at += 16
        key = cur.string()
        (nif,) = cur.fmt("!I")
        interfaces = [cur.fmt("!BBi") for _ in range(nif)]
        servers.append((server_id, address, key, [tuple(i) for i in interfaces]))
    assert cur.at == len(body)
    return Site(version, major, minor, serial, mask, attributes,
                servers)  # type: ignore[arg-type]


@dataclass
class Credential:
    """RFC 3652 §2.2.4: Version, Reserved, Options, Signer <Handle, Index>, Type, then
    SignedInfo: its length, DigestAlgorithm, SignedData."""

    version: int
    options: int
    signer: str
    signer_index: int
    type: str
    digest_algorithm: str
    signature: bytes


def parse_credential(raw: bytes) -> Credential:
    cur = _Cursor(raw)
    version, _reserved, options = cur.fmt("!BBH")
    signer = cur.string().decode()
    (signer_index,) = cur.fmt("!i")
    kind = cur.string().decode()
    (section,) = cur.fmt("!I")
    start = cur.at
    digest_algorithm = cur.string().decode()
    signature = cur.string()
    assert cur.at - start == section and cur.at == len(raw)
    return Credential(version, options, signer, signer_index, kind, digest_algorithm,
                      signature)


def rsa_numbers(pubkey: bytes) -> tuple[int, int]:
    """(exponent, modulus) of HS_PUBKEY data in the Handle library's RSA layout: the key
    type "RSA_PUB_KEY", two reserved octets, the exponent, the modulus (unsigned
    big-endian integers as length-prefixed byte strings)."""
    cur = _Cursor(pubkey)
    assert cur.string() == b"RSA_PUB_KEY"
    cur.fmt("!H")
    exponent = int.from_bytes(cur.string(), "big")
    modulus = int.from_bytes(cur.string(), "big")
    assert cur.at == len(pubkey)
    return exponent, modulus


def signed_part(a: Answer, counter: int) -> bytes:
    """What a certified answer's signature covers: its header and body (RFC 3652
    §2.2.4), preceded, for versions 2.6 and later, by the envelope fields the Handle.net
    Java library signs and verifies (AbstractMessage.signMessage / verifyMessage):
    MajorVersion, MinorVersion, from 2.8 on the suggested major and minor version
    (MessageFlag; a zero major means "the same as the message"), then SessionId,
    RequestId and the credential's index (its "session counter"). At 2.6 those three
    int4s are each written at offset 4 after the first (offsets 2, 4, 4), so the last
    one wins and eight of the fourteen octets are not what was meant; clients of that
    version verify exactly that."""
    if a.minor < 6:
        return a.message
    if a.minor == 6:
        buf = bytearray(14)
        buf[0], buf[1] = a.major, a.minor
        buf[2:6] = struct.pack("!I", a.session_id)
        buf[4:8] = struct.pack("!I", a.request_id)
        buf[4:8] = struct.pack("!i", counter)
        return bytes(buf) + a.message
    head = bytes([a.major, a.minor])
    if a.minor >= 8:
        suggest = (a.flag0 & 0x03, a.flag1) if a.flag0 & 0x03 else (a.major, a.minor)
        head += bytes(suggest)
    return head + struct.pack("!IIi", a.session_id, a.request_id, counter) + a.message


# --- transports ---------------------------------------------------------------------------


def udp_exchange(port: int, datagram: bytes, *, timeout: float = 5.0,
                 sock: socket.socket | None = None) -> list[bytes]:
    """Send one datagram; collect the answer's datagrams (all fragments, or what arrives
    of them before a short quiet period once the first one is in)."""
    own = sock is None
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(datagram, ("127.0.0.1", port))
        first = s.recv(65535)
        out = [first]
        env = parse_envelope(first)
        if env.flag0 & TC_BIT:
            s.settimeout(0.3)
            try:
                while True:
                    out.append(s.recv(65535))
            except TimeoutError:
                pass
        return out
    finally:
        if own:
            s.close()


def reassemble(datagrams: list[bytes]) -> bytes | None:
    """The whole framed answer from its fragments, or None when some are missing."""
    first = parse_envelope(datagrams[0])
    chunk = UDP_PACKET - ENVELOPE
    count = -(-first.length // chunk)
    parts: dict[int, bytes] = {}
    for d in datagrams:
        parts[parse_envelope(d).sequence] = d[ENVELOPE:]
    if len(parts) < count:
        return None
    msg = b"".join(parts[i] for i in range(count))
    return datagrams[0][:ENVELOPE] + msg


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed by the server")
        out += chunk
    return out


def tcp_read_answer(s: socket.socket) -> bytes:
    head = recv_exactly(s, ENVELOPE)
    length = parse_envelope(head).length
    return head + recv_exactly(s, length)


def tcp_exchange(port: int, framed: bytes, *, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(framed)
        return tcp_read_answer(s)
