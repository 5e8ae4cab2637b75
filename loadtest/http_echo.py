"""The HTTP empty-handler baseline: the node's HTTP server with a handler that does nothing.

Same server code as the node's HTTP door (``node.web.server.HttpServer``: uvicorn +
httptools in a thread of the process, our head-deadline protocol, the node's default
connection bound and idle timeout), serving an app that ignores the path and answers
every request with a fixed JSON body the size of a typical hot
``GET /api/handles/{handle}`` answer. Any difference against the node is its routing,
its handler and the core.

Two ways, as the node has two: ``asgi`` (a bare ASGI app: scope, task, two sends) and
``direct`` (the same answer from the app's ``direct`` hook, written by the server
without ASGI — the way the node answers its hot GET, so the like-for-like baseline).

``python -m loadtest.http_echo HOST PORT [PAYLOAD_BYTES [asgi|direct]]``
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

from loadtest.guard import join_target, require_loopback
from node.web.app import Answer, ASGIApp, Receive, Scope, Send
from node.web.server import HttpServer

DEFAULT_PAYLOAD_BYTES = 300
WAYS = ("asgi", "direct")


def body_of(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes (at least the empty skeleton)."""
    skeleton = {"responseCode": 1, "handle": "88.118.8/LT-0000000", "pad": ""}
    base = len(json.dumps(skeleton).encode())
    skeleton["pad"] = "x" * max(0, size - base)
    return json.dumps(skeleton).encode()


def make_app(payload: bytes) -> ASGIApp:
    """The bare ASGI app: the same two ``send`` calls and headers as the node's app."""
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": headers}
    body: dict[str, Any] = {"type": "http.response.body", "body": payload}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send(start)
        await send(body)

    return app


class DirectEcho:
    """The empty handler both ways: the bare ASGI app, and the same answer (status,
    headers, body) from ``direct`` for every bodyless GET or HEAD."""

    def __init__(self, payload: bytes) -> None:
        self.asgi = make_app(payload)
        self.answer: Answer = (200, [(b"content-type", b"application/json"),
                                     (b"content-length", str(len(payload)).encode())],
                               payload)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    def direct(self, method: str, path: str, raw_path: bytes, query_string: bytes,
               headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
               tls: dict[str, Any] | None) -> Answer | None:
        return self.answer


def main(argv: list[str]) -> int:
    """Serve until SIGTERM/SIGINT."""
    host, port = argv[0], int(argv[1])
    require_loopback(host)
    size = int(argv[2]) if len(argv) > 2 else DEFAULT_PAYLOAD_BYTES
    way = argv[3] if len(argv) > 3 else "asgi"
    if way not in WAYS:
        raise SystemExit(f"the answering way is one of {', '.join(WAYS)}, not {way!r}")
    payload = body_of(size)
    app = DirectEcho(payload) if way == "direct" else make_app(payload)
    server = HttpServer(join_target(host, port), app)
    server.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(3600):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
