"""A minimal Handle protocol client (one resolution over TCP), for ``idnode resolve
--protocol handle`` and the load harness: the same wire a national resolver or an SDK
uses, without the gRPC door's signatures.

``certified=True`` asks for a certified answer (the CT flag) and verifies it as the Java
resolver does: on the same connection it first reads the node's site info (OC_GET_SITEINFO)
for the RSA key its server record publishes, then checks the answer's HS_SIGNED
credential against that key over exactly the bytes the node signs
(:func:`node.handle.codec.signed_bytes`). Trust in the key is the site info's: a client
that knows the node's key from elsewhere would compare it too."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from node.handle import codec as c


class HandleClientError(RuntimeError):
    """The node answered with an error code, or not at all; ``code`` is the RFC's."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise HandleClientError("the node closed the connection")
        out += chunk
    return bytes(out)


def framed(opcode: int, body: bytes, *, request_id: int, op_flags: int = 0,
           minor: int = c.MINOR_VERSION) -> bytes:
    """A framed request (envelope, header, ``body``, empty credential)."""
    msg = c.encode_header(c.Header(opcode, 0, op_flags, 0, 0, 0, len(body))) + body + \
        c.NO_CREDENTIAL
    env = c.Envelope(c.MAJOR_VERSION, minor, 0, 0, 0, request_id, 0, len(msg))
    return c.encode_envelope(env) + msg


def resolution_request(handle: str, *, request_id: int, types: tuple[str, ...] = (),
                       indexes: tuple[int, ...] = (), minor: int = c.MINOR_VERSION,
                       op_flags: int = 0) -> bytes:
    """A framed OC_RESOLUTION request (envelope, header, body, empty credential)."""
    body = c.encode_resolution_request(c.ResolutionRequest(handle, indexes, types))
    return framed(c.OC_RESOLUTION, body, request_id=request_id, op_flags=op_flags,
                  minor=minor)


def _exchange(sock: socket.socket, request: bytes,
              request_id: int) -> tuple[c.Envelope, c.Message]:
    sock.sendall(request)
    env = c.decode_envelope(_recv_exactly(sock, c.ENVELOPE_BYTES))
    if env.length > 16 * 1024 * 1024:
        raise HandleClientError(f"an answer of {env.length} bytes is too long")
    m = c.decode_message(_recv_exactly(sock, env.length))
    if env.request_id != request_id:
        raise HandleClientError("the answer is for another request")
    return env, m


def site_key(sock: socket.socket) -> rsa.RSAPublicKey:
    """The RSA key the node's site info publishes (its first server record's)."""
    request_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    _env, m = _exchange(sock, framed(c.OC_GET_SITEINFO, b"", request_id=request_id),
                        request_id)
    if m.header.response_code != c.RC_SUCCESS:
        raise HandleClientError("the node did not answer its site info",
                                m.header.response_code)
    site = c.decode_site(c.split_digest(m.body, m.header.op_flags)[1])
    if not site.servers or not site.servers[0].public_key:
        raise HandleClientError("the node's site info publishes no key")
    try:
        numbers = c.decode_rsa_public_key(site.servers[0].public_key)
    except c.ProtocolError as exc:
        raise HandleClientError(f"the site info's key: {exc.message}") from None
    return rsa.RSAPublicNumbers(numbers.exponent, numbers.modulus).public_key()


def verify_answer(env: c.Envelope, m: c.Message, key: rsa.RSAPublicKey) -> c.Credential:
    """Check a certified answer's credential with ``key``; the credential when it holds,
    else :class:`HandleClientError` naming what failed."""
    if not m.header.op_flags & c.FLAG_CERTIFIED or not m.credential:
        raise HandleClientError("the node did not certify the answer")
    try:
        cred = c.decode_credential(m.credential)
    except c.ProtocolError as exc:
        raise HandleClientError(f"the answer's credential: {exc.message}") from None
    if cred.type != c.CREDENTIAL_SIGNED or cred.digest_algorithm != c.DIGEST_NAME_SHA256:
        raise HandleClientError(f"a {cred.type.decode(errors='replace')} credential with "
                                f"{cred.digest_algorithm.decode(errors='replace')} is not "
                                "an HS_SIGNED SHA-256 signature")
    signed = c.signed_bytes(major=env.major, minor=env.minor, suggest_major=env.suggest_major,
                            suggest_minor=env.suggest_minor, session_id=env.session_id,
                            request_id=env.request_id, counter=cred.signer_index,
                            message=m.digested)
    try:
        key.verify(cred.signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise HandleClientError("the answer's signature does not verify with the key in "
                                "the node's site info") from None
    return cred


def resolve(target: str, handle: str, *, types: tuple[str, ...] = (),
            indexes: tuple[int, ...] = (), timeout_seconds: float = 10.0,
            certified: bool = False) -> tuple[str, list[c.HandleValue]]:
    """Resolve ``handle`` at ``target`` (host:port) over TCP: (handle, values). With
    ``certified``, the answer is asked for certified and verified (see the module's
    docstring); an error answer is verified too before it is raised."""
    host, _, port = target.rpartition(":")
    request_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    with socket.create_connection((host.strip("[]"), int(port)), timeout_seconds) as sock:
        key = site_key(sock) if certified else None
        env, m = _exchange(sock, resolution_request(
            handle, request_id=request_id, types=types, indexes=indexes,
            op_flags=c.FLAG_CERTIFIED if certified else 0), request_id)
    if key is not None:
        verify_answer(env, m, key)
    _digest, body = c.split_digest(m.body, m.header.op_flags)
    if m.header.response_code != c.RC_SUCCESS:
        code = m.header.response_code
        name = c.RESPONSE_CODE_NAMES.get(code, str(code))
        raise HandleClientError(f"{name} ({code}): {c.decode_error_body(body)}", code)
    return c.decode_resolution_response(body)


def to_json(handle: str, values: list[c.HandleValue]) -> str:
    """The answer as JSON for people: text data as text, anything else as hex."""
    out: list[dict[str, Any]] = []
    for v in values:
        item: dict[str, Any] = {"index": v.index, "type": v.type.decode("utf-8", "replace"),
                                "ttl": v.ttl, "timestamp": v.timestamp,
                                "permissions": f"{v.permissions:04b}"}
        try:
            item["data"] = v.data.decode("utf-8")
        except UnicodeDecodeError:
            item["data_hex"] = v.data.hex()
        out.append(item)
    return json.dumps({"handle": handle, "values": out}, ensure_ascii=False, indent=2)


__all__ = ["HandleClientError", "framed", "resolution_request", "resolve", "site_key", "to_json",
           "verify_answer"]
