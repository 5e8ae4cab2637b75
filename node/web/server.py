"""The HTTP server: uvicorn (httptools) serving our own ASGI app, in a thread beside gRPC.

Chosen by measurement (docs/benchmarks/http-stack.md): a bare ASGI app on uvicorn costs
about 35–40 µs of CPU per request on one core, the same as granian and half of
Starlette's; uvicorn runs in a thread of the node process with a socket we bind
ourselves (so a port clash is an error naming the address at start, and port 0 works).

Connections are bounded (``max_connections``: beyond it new requests get 503) and every
connection must send a complete request head within ``idle_timeout_seconds`` of opening
(or of its previous response): uvicorn's own keep-alive timeout only starts after a first
response, so a client that connects and says nothing, or trickles its headers, would
otherwise hold a slot for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from node.web.app import ASGIApp

log = logging.getLogger("idnode.http")


class BindError(OSError):
    """The HTTP address cannot be listened on; the message names it."""


def _protocol(head_timeout_seconds: float) -> type[HttpToolsProtocol]:
    class Protocol(HttpToolsProtocol):
        """httptools protocol with a deadline for each request head."""

        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._head_deadline is None:
                self._head_deadline = self.loop.call_later(head_timeout_seconds,
                                                           self._head_timed_out)

        def _head_timed_out(self) -> None:
            self._head_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def on_headers_complete(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request head, if any, has the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None
            super().connection_lost(exc)

    return Protocol


def bind(listen: str, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket on ``host:port`` (IPv6 in brackets); port 0 picks a free one."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets that say they are
    # TCP, and uvicorn writes head and body separately — with Nagle on, every keep-alive
    # answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, int(port_text)))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen for HTTP on {listen}: "
                                   f"{exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class HttpServer:
    """uvicorn in a background thread with its own event loop."""

    def __init__(self, listen: str, app: ASGIApp, *, max_connections: int = 1000,
                 idle_timeout_seconds: float = 10.0) -> None:
        self._sock = bind(listen)
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            app, http=_protocol(idle_timeout_seconds), lifespan="off", ws="none",
            interface="asgi3", log_config=None, access_log=False, server_header=False,
            proxy_headers=False,  # X-Forwarded-* is read where it matters (scan.py)
            date_header=False, limit_concurrency=max_connections,
            timeout_keep_alive=max(1, int(idle_timeout_seconds)), timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"http-{self.port}",
                                        daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except Exception:  # the node keeps serving gRPC; say why HTTP stopped
            log.exception("the HTTP server stopped")
        finally:
            loop.close()

    def start(self) -> None:
        self._thread.start()

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        with contextlib.suppress(OSError):
            self._sock.close()


__all__ = ["BindError", "HttpServer", "bind"]
