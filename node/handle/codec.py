"""RFC 3652 wire format: envelope, header, bodies, value records and site records.

Pure functions over bytes, no I/O, so the server, the CLI and the tests share one
decoder and the fuzz tests can hammer it without sockets. Every decoder checks each
length against what is left before it reads, so a length that points past the message
is a :class:`ProtocolError` and never an over-read or a huge allocation.

Layouts (all integers big-endian; a "string" is a 4-byte length and that many bytes)::

    envelope  major:1 minor:1 flags:1 suggest-minor:1 session:4 request:4 sequence:4 length:4
    header    opcode:4 response:4 opflags:4 site-serial:2 recursion:1 reserved:1
              expiration:4 body-length:4
    message   header body credential-length:4 credential
    value     index:4 timestamp:4 ttl-type:1 ttl:4 permissions:1 type:string data:string
              reference-count:4 (handle:string index:4)*
    credential version:1 reserved:1 options:2 signer-handle:string signer-index:4
              type:string signed-info-length:4 digest-algorithm:string signature:string
    RSA key   "RSA_PUB_KEY":string flags:2 exponent:string modulus:string
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ENVELOPE_BYTES = 20
HEADER_BYTES = 24
# One datagram on the wire: the RFC's and the deployed clients' UDP packet size.
UDP_PACKET_BYTES = 512
UDP_DATA_BYTES = UDP_PACKET_BYTES - ENVELOPE_BYTES
# A request is a handle and two short lists; anything larger is refused unread.
MAX_REQUEST_BYTES = 65536
MAX_HANDLE_BYTES = 2048
MAX_LIST_ITEMS = 1024

MAJOR_VERSION = 2
MINOR_VERSION = 11  # the newest minor version we speak (2.1 ... 2.11)

# Opcodes (RFC 3652 §2.2.2.1).
OC_RESOLUTION = 1
OC_GET_SITEINFO = 2

# Response codes (RFC 3652 §2.2.2.2).
RC_RESERVED = 0
RC_SUCCESS = 1
RC_ERROR = 2
RC_SERVER_TOO_BUSY = 3
RC_PROTOCOL_ERROR = 4
RC_OPERATION_NOT_SUPPORTED = 5
RC_HANDLE_NOT_FOUND = 100
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_SERVER_NOT_RESP = 301
RC_AUTHENTICATION_NEEDED = 402

RESPONSE_CODE_NAMES: dict[int, str] = {
    RC_SUCCESS: "SUCCESS", RC_ERROR: "ERROR", RC_SERVER_TOO_BUSY: "SERVER_TOO_BUSY",
    RC_PROTOCOL_ERROR: "PROTOCOL_ERROR", RC_OPERATION_NOT_SUPPORTED: "OPERATION_NOT_SUPPORTED",
    RC_HANDLE_NOT_FOUND: "HANDLE_NOT_FOUND", RC_INVALID_HANDLE: "INVALID_HANDLE",
    RC_VALUES_NOT_FOUND: "VALUES_NOT_FOUND", RC_SERVER_NOT_RESP: "SERVER_NOT_RESP",
    RC_AUTHENTICATION_NEEDED: "AUTHENTICATION_NEEDED",
}

# Envelope flag byte (the first of MessageFlag); its two low bits carry the client's
# suggested major version in deployed clients (see node.handle).
ENV_COMPRESSED = 0x80
ENV_ENCRYPTED = 0x40
ENV_TRUNCATED = 0x20
ENV_SUGGEST_MAJOR_MASK = 0x03

# OpFlag bits (RFC 3652 §2.2.2.3, plus the later bits deployed clients send).
FLAG_AUTHORITATIVE = 0x80000000
FLAG_CERTIFIED = 0x40000000
FLAG_ENCRYPT = 0x20000000
FLAG_RECURSIVE = 0x10000000
FLAG_CACHE_CERTIFY = 0x08000000
FLAG_CONTINUOUS = 0x04000000
FLAG_KEEP_CONNECTION = 0x02000000
FLAG_PUBLIC_ONLY = 0x01000000
FLAG_REQUEST_DIGEST = 0x00800000

# Value permission bits (RFC 3651 §3.1).
PERM_ADMIN_READ = 0x08
PERM_ADMIN_WRITE = 0x04
PERM_PUBLIC_READ = 0x02
PERM_PUBLIC_WRITE = 0x01
DEFAULT_PERMISSIONS = PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ

# Request digest algorithm identifiers (the octet before the digest).
DIGEST_MD5 = 1
DIGEST_SHA1 = 2
DIGEST_SHA256 = 3

# Message credential (RFC 3652 §2.2.4): the signature type and digest algorithm names,
# spelled as the Java implementation writes them (Common.CREDENTIAL_TYPE_SIGNED,
# Common.HASH_ALG_SHA256).
CREDENTIAL_VERSION = 0
CREDENTIAL_SIGNED = b"HS_SIGNED"
CREDENTIAL_MAC = b"HS_MAC"
DIGEST_NAME_SHA256 = b"SHA-256"
MAX_CREDENTIAL_BYTES = 16384

# HS_PUBKEY data, as the Java library writes it (Util.getBytesFromPublicKey): a key type
# string, two reserved octets, then the key's integers as strings (RSA: exponent, then
# modulus).
KEY_RSA_PUBLIC = b"RSA_PUB_KEY"

# HS_SITE interface codes.
SERVICE_OUT_OF_SERVICE = 0
SERVICE_ADMIN = 1
SERVICE_QUERY = 2
SERVICE_ADMIN_AND_QUERY = 3
PROTOCOL_UDP = 0
PROTOCOL_TCP = 1
PROTOCOL_HTTP = 2
SITE_PRIMARY = 0x80
SITE_MULTI_PRIMARY = 0x40
HASH_BY_ALL = 2

_ENVELOPE = struct.Struct(">BBBBiiiI")
_HEADER = struct.Struct(">iiIHBBiI")
_HEAD = struct.Struct(">BBBBiiiIiiIHBBiI")  # envelope + header in one pack
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_VALUE_FIXED = struct.Struct(">iIBiB")


class ProtocolError(ValueError):
    """Input that does not follow the grammar; ``code`` is the response code to send."""

    def __init__(self, message: str, code: int = RC_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Envelope:
    """The 20-byte envelope in front of every message (and every UDP fragment)."""

    major: int
    minor: int
    flags: int  # the first flag byte: CP, EC, TC and the suggested major version
    suggest_minor: int
    session_id: int
    request_id: int
    sequence: int
    length: int

    @property
    def truncated(self) -> bool:
        return bool(self.flags & ENV_TRUNCATED)

    @property
    def suggest_major(self) -> int:
        return self.flags & ENV_SUGGEST_MAJOR_MASK


@dataclass(slots=True)
class Header:
    """The 24-byte message header."""

    opcode: int
    response_code: int
    op_flags: int
    site_serial: int
    recursion: int
    expiration: int
    body_length: int


@dataclass(slots=True)
class Message:
    """A decoded message: its header, body and credential (possibly empty), and the
    header+body bytes a request digest covers."""

    header: Header
    body: bytes
    credential: bytes
    digested: bytes


@dataclass(frozen=True, slots=True)
class ResolutionRequest:
    """OC_RESOLUTION body: a handle, an index list and a type list; ``auth_bytes`` is the
    industrial SDKs' trailing field (None when absent)."""

    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()
    auth_bytes: bytes | None = None


@dataclass(frozen=True, slots=True)
class HandleValue:
    """One value record as it travels (type and data are raw bytes)."""

    index: int
    type: bytes
    data: bytes
    ttl: int = 86400
    timestamp: int = 0
    ttl_type: int = 0
    permissions: int = DEFAULT_PERMISSIONS
    references: tuple[tuple[bytes, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Interface:
    """One service interface of a server in a site record."""

    service_type: int
    protocol: int
    port: int


@dataclass(frozen=True, slots=True)
class Server:
    """One server of a site: id, 16-byte address (IPv4 right-aligned), public key."""

    server_id: int
    address: bytes
    public_key: bytes = b""
    interfaces: tuple[Interface, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """An HS_SITE record (RFC 3651 §3.2.2)."""

    serial: int
    servers: tuple[Server, ...]
    major: int = MAJOR_VERSION
    minor: int = MINOR_VERSION
    primary: bool = True
    multi_primary: bool = False
    hash_option: int = HASH_BY_ALL
    hash_filter: bytes = b""
    attributes: tuple[tuple[bytes, bytes], ...] = field(default=())
    format_version: int = 1


@dataclass(frozen=True, slots=True)
class Credential:
    """A message credential (RFC 3652 §2.2.4). ``signer_index`` doubles, for 2.6+
    clients, as the session counter folded into the signed bytes (see
    :func:`signed_bytes`)."""

    signer_handle: bytes
    signer_index: int
    type: bytes
    digest_algorithm: bytes
    signature: bytes
    version: int = CREDENTIAL_VERSION
    options: int = 0


@dataclass(frozen=True, slots=True)
class RsaPublicKey:
    """An RSA public key as HS_PUBKEY data carries it."""

    exponent: int
    modulus: int


# --- reading ------------------------------------------------------------------------------


class Reader:
    """A cursor over bytes whose every read checks the remaining length first."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.end - self.pos:
            raise ProtocolError(f"a field of {n} bytes runs past the end of the message")
        start = self.pos
        self.pos += n
        return self.buf[start:self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def i32(self) -> int:
        return int.from_bytes(self.take(4), "big", signed=True)

    def string(self, limit: int = MAX_REQUEST_BYTES) -> bytes:
        n = self.u32()
        if n > limit:
            raise ProtocolError(f"a field of {n} bytes is longer than the {limit} allowed")
        return self.take(n)

    def count(self, item_bytes: int, limit: int = MAX_LIST_ITEMS) -> int:
        """A list length, refused when it exceeds ``limit`` or cannot fit in what is left
        (each item needs at least ``item_bytes``)."""
        n = self.u32()
        if n > limit or n * item_bytes > self.remaining:
            raise ProtocolError(f"a list of {n} items does not fit the message")
        return n


def _utf8(raw: bytes, what: str, code: int = RC_PROTOCOL_ERROR) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8", code) from None


def decode_envelope(buf: bytes) -> Envelope:
    """The envelope at the start of ``buf`` (at least 20 bytes)."""
    if len(buf) < ENVELOPE_BYTES:
        raise ProtocolError(f"an envelope needs {ENVELOPE_BYTES} bytes, got {len(buf)}")
    major, minor, flags, suggest, session, request, sequence, length = \
        _ENVELOPE.unpack_from(buf, 0)
    return Envelope(major, minor, flags, suggest, session, request, sequence, length)


def check_envelope(env: Envelope, *, max_bytes: int = MAX_REQUEST_BYTES) -> None:
    """Refuse what this node cannot read: another major version, compressed or encrypted
    messages, and messages longer than ``max_bytes``."""
    if env.major != MAJOR_VERSION:
        raise ProtocolError(f"protocol version {env.major}.{env.minor} is not supported")
    if env.flags & (ENV_COMPRESSED | ENV_ENCRYPTED):
        raise ProtocolError("compressed or encrypted messages are not supported")
    if env.length > max_bytes:
        raise ProtocolError(f"a message of {env.length} bytes is longer than {max_bytes}")
    if env.length < HEADER_BYTES:
        raise ProtocolError(f"a message of {env.length} bytes cannot hold a header")


def decode_message(msg: bytes) -> Message:
    """Header, body and credential of one whole message (the bytes after the envelope).

    The credential section may be absent altogether (older clients stop after the body)
    or be a 4-byte length followed by exactly that many bytes; anything else is refused.
    """
    if len(msg) < HEADER_BYTES:
        raise ProtocolError(f"a message needs a {HEADER_BYTES}-byte header")
    opcode, code, flags, serial, recursion, _reserved, expiration, body_length = \
        _HEADER.unpack_from(msg, 0)
    header = Header(opcode, code, flags, serial, recursion, expiration, body_length)
    end = HEADER_BYTES + header.body_length
    if end > len(msg):
        raise ProtocolError(f"a body of {header.body_length} bytes runs past the message")
    credential = b""
    rest = len(msg) - end
    if rest:
        if rest < 4:
            raise ProtocolError("trailing bytes after the body are not a credential")
        n = _U32.unpack_from(msg, end)[0]
        if n != rest - 4:
            raise ProtocolError(f"a credential of {n} bytes does not match the "
                                f"{rest - 4} bytes left")
        credential = msg[end + 4:]
    return Message(header, msg[HEADER_BYTES:end], credential, msg[:end])


def decode_resolution_request(body: bytes) -> ResolutionRequest:
    """An OC_RESOLUTION body, with or without the SDKs' trailing ``authBytes``."""
    r = Reader(body)
    raw = r.string(MAX_HANDLE_BYTES)
    handle = _utf8(raw, "the handle", RC_INVALID_HANDLE)
    indexes = tuple(r.i32() for _ in range(r.count(4)))
    types = tuple(_utf8(r.string(MAX_HANDLE_BYTES), "a requested type")
                  for _ in range(r.count(4)))
    auth: bytes | None = None
    if r.remaining:
        auth = r.string()
        if r.remaining:
            raise ProtocolError(f"{r.remaining} unexpected bytes after the type list")
    return ResolutionRequest(handle, indexes, types, auth)


def decode_value(r: Reader) -> HandleValue:
    """One value record at the reader's position."""
    index = r.i32()
    timestamp = r.u32()
    ttl_type = r.u8()
    ttl = r.i32()
    permissions = r.u8()
    vtype = r.string()
    data = r.string()
    refs = tuple((r.string(), r.i32()) for _ in range(r.count(8)))
    return HandleValue(index, vtype, data, ttl, timestamp, ttl_type, permissions, refs)


def decode_resolution_response(body: bytes) -> tuple[str, list[HandleValue]]:
    """The handle and values of a successful OC_RESOLUTION answer (no request digest)."""
    r = Reader(body)
    handle = _utf8(r.string(MAX_HANDLE_BYTES), "the handle")
    values = [decode_value(r) for _ in range(r.count(19, limit=65536))]
    return handle, values


def split_digest(body: bytes, op_flags: int) -> tuple[bytes, bytes]:
    """(digest with its algorithm octet, rest of the body) of a response body."""
    if not op_flags & FLAG_REQUEST_DIGEST:
        return b"", body
    if not body:
        raise ProtocolError("a request digest was announced but the body is empty")
    size = {DIGEST_MD5: 16, DIGEST_SHA1: 20, DIGEST_SHA256: 32}.get(body[0])
    if size is None or len(body) < 1 + size:
        raise ProtocolError("unknown or short request digest")
    return body[:1 + size], body[1 + size:]


def decode_error_body(body: bytes) -> str:
    """The message of an error answer (lenient: bad UTF-8 is replaced)."""
    r = Reader(body)
    return r.string().decode("utf-8", "replace") if r.remaining >= 4 else ""


def decode_site(data: bytes) -> SiteInfo:
    """An HS_SITE record (as in an OC_GET_SITEINFO answer or an HS_SITE value)."""
    r = Reader(data)
    fmt = r.u16()
    major, minor = r.u8(), r.u8()
    serial = r.u16()
    mask = r.u8()
    hash_option = r.u8()
    hash_filter = r.string()
    attributes = tuple((r.string(), r.string()) for _ in range(r.count(8)))
    servers: list[Server] = []
    for _ in range(r.count(28)):
        server_id = r.i32()
        address = r.take(16)
        key = r.string()
        interfaces = tuple(Interface(r.u8(), r.u8(), r.i32()) for _ in range(r.count(6)))
        servers.append(Server(server_id, address, key, interfaces))
    if r.remaining:
        raise ProtocolError(f"{r.remaining} unexpected bytes after the site record")
    return SiteInfo(serial, tuple(servers), major, minor, bool(mask & SITE_PRIMARY),
                    bool(mask & SITE_MULTI_PRIMARY), hash_option, hash_filter, attributes,
                    fmt)


def decode_credential(data: bytes) -> Credential:
    """A credential section's content (the bytes after its 4-byte length).

    The signed-info part (digest algorithm and signature, the layout of both HS_SIGNED
    and HS_MAC) must fill exactly the length announced for it."""
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise ProtocolError(f"a credential of {len(data)} bytes is too long")
    r = Reader(data)
    version = r.u8()
    r.u8()  # reserved
    options = r.u16()
    signer_handle = r.string(MAX_HANDLE_BYTES)
    signer_index = r.i32()
    kind = r.string(MAX_HANDLE_BYTES)
    n = r.u32()
    info = Reader(r.take(n))
    digest_algorithm = info.string(MAX_HANDLE_BYTES)
    signature = info.string()
    if info.remaining or r.remaining:
        raise ProtocolError("unexpected bytes after the credential's signature")
    return Credential(signer_handle, signer_index, kind, digest_algorithm, signature,
                      version, options)


def decode_rsa_public_key(data: bytes) -> RsaPublicKey:
    """HS_PUBKEY data holding an RSA key (anything else is a ProtocolError)."""
    r = Reader(data)
    kind = r.string(MAX_HANDLE_BYTES)
    if kind != KEY_RSA_PUBLIC:
        raise ProtocolError(f"key type {kind!r} is not {KEY_RSA_PUBLIC.decode()}")
    r.u16()  # reserved flags
    exponent = int.from_bytes(r.string(), "big")
    modulus = int.from_bytes(r.string(), "big")
    if r.remaining:
        raise ProtocolError(f"{r.remaining} unexpected bytes after the public key")
    if exponent < 3 or modulus < 3:
        raise ProtocolError("an RSA key needs an exponent and a modulus")
    return RsaPublicKey(exponent, modulus)


# --- writing ------------------------------------------------------------------------------


def string(raw: bytes) -> bytes:
    """A 4-byte length and the bytes."""
    return _U32.pack(len(raw)) + raw


def encode_value(v: HandleValue) -> bytes:
    """One value record."""
    parts = [_VALUE_FIXED.pack(v.index, v.timestamp & 0xFFFFFFFF, v.ttl_type, v.ttl,
                               v.permissions),
             string(v.type), string(v.data), _U32.pack(len(v.references))]
    for handle, index in v.references:
        parts.append(string(handle))
        parts.append(_I32.pack(index))
    return b"".join(parts)


def encode_resolution_body(handle: bytes, values: Iterable[HandleValue]) -> bytes:
    """A successful OC_RESOLUTION answer body (without a request digest)."""
    encoded = [encode_value(v) for v in values]
    return b"".join([string(handle), _U32.pack(len(encoded)), *encoded])


def encode_resolution_request(req: ResolutionRequest) -> bytes:
    """An OC_RESOLUTION request body (``auth_bytes`` appended when not None)."""
    parts = [string(req.handle.encode()), _U32.pack(len(req.indexes))]
    parts.extend(_I32.pack(i) for i in req.indexes)
    parts.append(_U32.pack(len(req.types)))
    parts.extend(string(t.encode()) for t in req.types)
    if req.auth_bytes is not None:
        parts.append(string(req.auth_bytes))
    return b"".join(parts)


def encode_error_body(message: str) -> bytes:
    """An error answer body: the message as a string."""
    return string(message.encode("utf-8", "replace"))


def encode_site(site: SiteInfo) -> bytes:
    """An HS_SITE record."""
    mask = (SITE_PRIMARY if site.primary else 0) | (SITE_MULTI_PRIMARY if site.multi_primary
                                                     else 0)
    parts = [struct.pack(">HBBHBB", site.format_version, site.major, site.minor, site.serial,
                         mask, site.hash_option),
             string(site.hash_filter), _U32.pack(len(site.attributes))]
    for name, value in site.attributes:
        parts += [string(name), string(value)]
    parts.append(_U32.pack(len(site.servers)))
    for server in site.servers:
        address = server.address.rjust(16, b"\0")[-16:]
        parts += [_I32.pack(server.server_id), address, string(server.public_key),
                  _U32.pack(len(server.interfaces))]
        parts += [struct.pack(">BBi", i.service_type, i.protocol, i.port)
                  for i in server.interfaces]
    return b"".join(parts)


def java_integer(n: int) -> bytes:
    """A non-negative integer as Java's ``BigInteger.toByteArray`` writes it (big-endian,
    two's complement, minimal: a leading zero octet when the top bit is set), the form
    the Handle.net library gives key integers (Util.getBytesFromPublicKey)."""
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def encode_rsa_public_key(key: RsaPublicKey) -> bytes:
    """HS_PUBKEY data of an RSA key: "RSA_PUB_KEY", 2 reserved octets, exponent, modulus."""
    return string(KEY_RSA_PUBLIC) + b"\0\0" + string(java_integer(key.exponent)) + \
        string(java_integer(key.modulus))


def encode_credential(cred: Credential) -> bytes:
    """A credential section: its 4-byte length, then the credential."""
    info = string(cred.digest_algorithm) + string(cred.signature)
    body = struct.pack(">BBH", cred.version, 0, cred.options) + string(cred.signer_handle) + \
        _I32.pack(cred.signer_index) + string(cred.type) + string(info)
    return string(body)


def signed_bytes(*, major: int, minor: int, suggest_major: int, suggest_minor: int,
                 session_id: int, request_id: int, counter: int, message: bytes) -> bytes:
    """What a message signature covers: ``message`` (header and body, RFC 3652 §2.2.4),
    preceded from version 2.6 on by the envelope fields the Java implementation adds
    (AbstractMessage.signMessage/verifyMessage): major and minor version, the suggested
    version from 2.8 on, session id, request id and the credential's signer index (its
    "session counter"). Version 2.6 writes them with a known overlap that its clients
    verify, so it is reproduced: the session id's first two octets, then the counter,
    then six zero octets."""
    if major != MAJOR_VERSION or minor < 6:
        return message
    if minor == 6:
        return bytes((major, minor)) + _I32.pack(session_id)[:2] + _I32.pack(counter) + \
            bytes(6) + message
    version = bytes((major, minor, suggest_major, suggest_minor)) if minor >= 8 \
        else bytes((major, minor))
    return version + _I32.pack(session_id) + _I32.pack(request_id) + _I32.pack(counter) + \
        message


# The contract's 12-character permission string names bits from the right in this order;
# the HS_ADMIN record on the wire (RFC 3651 §3.2.3) uses these bit positions.
_ADMIN_WIRE_BITS = (0, 1, 2, 3, 4, 5, 6, 10, 7, 8, 9, 11)


def admin_mask(permissions: str) -> int:
    """The wire mask of a contract permission string like ``011111110011``."""
    mask = 0
    for bit, char in enumerate(reversed(permissions[-12:])):
        if char == "1":
            mask |= 1 << _ADMIN_WIRE_BITS[bit]
    return mask


def encode_admin(handle: str, index: int, permissions: str) -> bytes:
    """HS_ADMIN data: permission mask, admin handle, admin index."""
    return struct.pack(">H", admin_mask(permissions)) + string(handle.encode()) + \
        _I32.pack(index)


def encode_vlist(refs: Sequence[tuple[str, int]]) -> bytes:
    """HS_VLIST data: a counted list of (handle, index) references."""
    return _U32.pack(len(refs)) + b"".join(string(h.encode()) + _I32.pack(i) for h, i in refs)


def encode_head(*, minor: int, env_flags: int, suggest_minor: int, session_id: int,
                request_id: int, sequence: int, length: int, opcode: int, response_code: int,
                op_flags: int, site_serial: int, recursion: int, expiration: int,
                body_length: int) -> bytes:
    """Envelope and header together (44 bytes): the only per-request bytes of a cached
    answer."""
    return _HEAD.pack(MAJOR_VERSION, minor, env_flags, suggest_minor, session_id, request_id,
                      sequence, length, opcode, response_code, op_flags, site_serial,
                      recursion, 0, expiration, body_length)


HEAD = _HEAD  # for the server's hot path (pack without keyword overhead)
ENVELOPE = _ENVELOPE  # the envelope alone, and the header alone (signed answers)
HEADER = _HEADER
NO_CREDENTIAL = b"\0\0\0\0"


def encode_envelope(env: Envelope) -> bytes:
    return _ENVELOPE.pack(env.major, env.minor, env.flags, env.suggest_minor, env.session_id,
                          env.request_id, env.sequence, env.length)


def encode_header(h: Header) -> bytes:
    return _HEADER.pack(h.opcode, h.response_code, h.op_flags, h.site_serial, h.recursion, 0,
                        h.expiration, h.body_length)


def udp_fragments(envelope: bytes, message: bytes, *, max_bytes: int) -> list[bytes]:
    """``message`` as datagrams of at most 512 bytes, each with its own envelope.

    ``envelope`` is the 20-byte envelope of the whole message. A message that fits one
    datagram goes as is. A longer one gets the truncation flag and is cut into
    sequence-numbered fragments; when it is longer than ``max_bytes`` only the first
    fragment is sent, which tells the client the answer is there but must be fetched
    over TCP (see node.handle: bounding what a spoofed request can reflect).
    """
    if len(message) <= UDP_DATA_BYTES:
        return [envelope + message]
    major, minor, flags, suggest, session, request, _seq, length = \
        _ENVELOPE.unpack_from(envelope, 0)
    flags |= ENV_TRUNCATED
    count = -(-len(message) // UDP_DATA_BYTES)
    if len(message) > max_bytes:
        count = 1
    return [_ENVELOPE.pack(major, minor, flags, suggest, session, request, n, length)
            + message[n * UDP_DATA_BYTES:(n + 1) * UDP_DATA_BYTES] for n in range(count)]
