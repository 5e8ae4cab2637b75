"""A minimal Handle protocol client (one resolution over TCP), for ``idnode resolve
--protocol handle`` and the load harness: the same wire a national resolver or an SDK
uses, without the gRPC door's signatures."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

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


def resolution_request(handle: str, *, request_id: int, types: tuple[str, ...] = (),
                       indexes: tuple[int, ...] = (), minor: int = c.MINOR_VERSION) -> bytes:
    """A framed OC_RESOLUTION request (envelope, header, body, empty credential)."""
    body = c.encode_resolution_request(c.ResolutionRequest(handle, indexes, types))
    msg = c.encode_header(c.Header(c.OC_RESOLUTION, 0, 0, 0, 0, 0, len(body))) + body + \
        c.NO_CREDENTIAL
    env = c.Envelope(c.MAJOR_VERSION, minor, 0, 0, 0, request_id, 0, len(msg))
    return c.encode_envelope(env) + msg


def resolve(target: str, handle: str, *, types: tuple[str, ...] = (),
            indexes: tuple[int, ...] = (), timeout_seconds: float = 10.0
            ) -> tuple[str, list[c.HandleValue]]:
    """Resolve ``handle`` at ``target`` (host:port) over TCP: (handle, values)."""
    host, _, port = target.rpartition(":")
    request_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    with socket.create_connection((host.strip("[]"), int(port)), timeout_seconds) as sock:
        sock.sendall(resolution_request(handle, request_id=request_id, types=types,
                                        indexes=indexes))
        env = c.decode_envelope(_recv_exactly(sock, c.ENVELOPE_BYTES))
        if env.length > 16 * 1024 * 1024:
            raise HandleClientError(f"an answer of {env.length} bytes is too long")
        m = c.decode_message(_recv_exactly(sock, env.length))
    if env.request_id != request_id:
        raise HandleClientError("the answer is for another request")
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


__all__ = ["HandleClientError", "resolution_request", "resolve", "to_json"]
