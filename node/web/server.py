"""The HTTP server: uvicorn (httptools) serving our own ASGI app, in a thread beside gRPC.

Chosen by measurement (docs/benchmarks/http-stack.md): a bare ASGI app on uvicorn costs
about 35–40 µs of CPU per request on one core, the same as granian and half of
Starlette's; uvicorn runs in a thread of the node process with a socket we bind
ourselves (so a port clash is an error naming the address at start, and port 0 works).

Connections are bounded (``max_connections``: beyond it new requests get 503) and every
connection must send a complete request head within ``idle_timeout_seconds`` of opening
(or of its previous response): uvicorn's own keep-alive timeout only starts after a first
response, so a client that connects and says nothing, or trickles its headers, would
otherwise hold a slot for ever. That deadline is one timer per connection, moved lazily,
and replaces uvicorn's keep-alive timer (two timers per request cost more than a resolve).

The hot GET skips ASGI. When the app has a ``direct`` hook (node.web.app.App), every
bodyless GET/HEAD whose connection has nothing in flight is offered to it as soon as the
head is parsed; its answer is written here, as uvicorn's ``send`` would write it, and
anything it declines goes through ASGI. Through ASGI (scope, request cycle, task, two
sends) the server cost ~2× what the direct path costs per request
(docs/benchmarks/http-stack.md); tests/e2e/test_http_direct.py holds both ways to the
same bytes.

With TLS (``tls``: node.security.tls.TlsFiles) uvicorn serves through an SSLContext we
build and keep (``ssl_context_factory``); a new certificate pair is loaded into that
context in place, on the server's event loop, so new handshakes get it and open
connections keep theirs. uvicorn (0.54) does not give the application the client
certificate, so the protocol below reads it from the connection's SSL object once and
adds the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``: the
PEM leaf; the verified chain is not available from Python's ssl module before 3.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from node.security.tls import KeyPair, TlsFiles, load_pair
from node.web.app import Answer, ASGIApp, DirectApp

log = logging.getLogger("idnode.http")


_DIRECT_METHODS = frozenset((b"GET", b"HEAD"))
_BODY_HEADERS = frozenset((b"content-length", b"transfer-encoding"))  # a request body


class BindError(OSError):
    """The HTTP address cannot be listened on; the message names it."""


class Tally:
    """How many requests a server answered directly (without ASGI): for tests that
    must know which way a request went, at the cost of one addition."""

    direct = 0


def _protocol(head_timeout_seconds: float, app: object, tally: Tally
              ) -> type[HttpToolsProtocol]:
    direct = app.direct if isinstance(app, DirectApp) else None
    heads: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, int]] = {}

    class Protocol(HttpToolsProtocol):
        """httptools protocol with a deadline for each request head, which offers
        bodyless requests to the app's ``direct`` answer before going through ASGI."""

        _head_due: float | None = None  # loop time by which a request head must be in
        _watch: asyncio.TimerHandle | None = None
        _tls: dict[str, Any] | None = None
        _direct = False  # the request being parsed was answered directly
        _scoped = False  # its ASGI scope was built (only for requests going to ASGI)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._tls = _tls_extension(transport)
            self._arm()

        def on_message_begin(self) -> None:
            # uvicorn's own starts the ASGI scope here; it is built in
            # on_headers_complete instead, and only when the request needs it.
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self._direct = self._scoped = False

        def _begin_scope(self) -> None:
            """uvicorn's ``on_message_begin`` for the request whose head was parsed."""
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers
            self._scoped = True
            if self._tls is not None:
                # uvicorn types extensions as dict[object, object]; the ASGI TLS
                # extension is a plain dict of str keys.
                self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]

        def _arm(self) -> None:
            """Start the deadline for the next request head. One timer per connection,
            moved lazily: a request costs two attribute writes, not a timer."""
            due = self._head_due = self.loop.time() + head_timeout_seconds
            if self._watch is None:
                self._watch = self.loop.call_at(due, self._check_head)

        def _check_head(self) -> None:
            self._watch = None
            due = self._head_due
            if due is None or self.transport.is_closing():
                return  # a request is in progress: its response arms the next deadline
            if self.loop.time() < due:
                self._watch = self.loop.call_at(due, self._check_head)
            else:
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._head_due = None
            if direct is not None and self._answer_directly():
                return
            if not self._scoped:
                self._begin_scope()
            super().on_headers_complete()

        def _answer_directly(self) -> bool:
            """Answer the request whose head was just parsed without ASGI, if the app
            has a direct answer for it and nothing about the connection needs uvicorn's
            request cycle; True if answered (or the connection closed on an error)."""
            assert direct is not None
            parser = self.parser
            cycle = self.cycle
            limit = self.limit_concurrency
            if (cycle is not None and not cycle.response_complete) or self.pipeline \
                    or self.flow.write_paused or self.expect_100_continue \
                    or parser.should_upgrade() \
                    or (limit is not None and (len(self.connections) >= limit
                                               or len(self.tasks) >= limit)):
                return False  # queued behind a request in flight, or uvicorn's 503, …
            method = parser.get_method()
            if method not in _DIRECT_METHODS:
                return False
            headers = self.headers
            for name, _ in headers:
                if name in _BODY_HEADERS:
                    return False  # a body to read past: uvicorn's cycle does that
            parsed = httptools.parse_url(self.url)
            raw_path: bytes = parsed.path
            try:
                path = raw_path.decode("ascii")
            except UnicodeDecodeError:
                return False  # uvicorn answers that one (400)
            if "%" in path:
                path = urllib.parse.unquote(path)
            verb = "GET" if method == b"GET" else "HEAD"
            try:
                answer = direct(verb, path, raw_path, parsed.query or b"", headers,
                                self.client, self._tls)
                if answer is None:
                    return False
                self._direct = True
                tally.direct += 1  # before the write: a client may look when it has read
                version = parser.get_http_version()
                keep_alive = parser.should_keep_alive() and version != "1.0"
                if self.access_log:  # uvicorn's access line, as its cycle writes it
                    scope: Any = {"client": self.client, "path": path,
                                  "query_string": parsed.query or b""}
                    self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(
                        scope), verb, get_path_with_query_string(scope), version, answer[0])
                self.transport.write(_response(answer, verb, self.server_state
                                               .default_headers, keep_alive, heads))
            except Exception:  # as uvicorn does when the app fails mid-answer
                log.exception("Exception in ASGI application (direct answer)")
                self._direct = True
                self.transport.close()
                return True
            if not keep_alive:
                self.transport.close()
            self.on_response_complete()
            return True

        def on_body(self, body: bytes) -> None:
            if not self._direct:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._direct:
                super().on_message_complete()

        def on_response_complete(self) -> None:
            # uvicorn's, with the head deadline in place of its keep-alive timer: no
            # complete head within the idle timeout closes the connection, which covers
            # "no data at all" (uvicorn's timer) too.
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:  # the next request's head is already in: start it
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
            else:
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_due = None
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            super().connection_lost(exc)

    return Protocol


#: Header lines uvicorn would write unchanged: a lowercase token name (its HEADER_RE
#: refused, upper case left out so that nothing needs lowering) and a value free of the
#: control characters its HEADER_VALUE_RE refuses.
_PLAIN_LINES = re.compile(rb'(?:[^\x00-\x20\x7f()<>@,;:\[\]={}\\"A-Z]+: '
                          rb'[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*')
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_MAX_HEADS = 1024  # distinct header blocks remembered per server (content lengths, mostly)


def _response(answer: Answer, method: str, default_headers: list[tuple[bytes, bytes]],
              keep_alive: bool, heads: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, int]]
              ) -> bytes:
    """The bytes uvicorn's ``RequestResponseCycle.send`` writes for ``answer`` (status
    line, default and app headers, ``connection: close`` when the connection ends, the
    body unless HEAD), with the same checks on names and values. A direct answer frames
    itself with exactly one content-length (no transfer-encoding, no connection).
    ``heads`` remembers checked header blocks: hot answers repeat the same few."""
    status, headers, body = answer
    key = tuple(default_headers + headers) if default_headers else tuple(headers)
    known = heads.get(key)
    if known is None:
        if len(heads) >= _MAX_HEADS:
            heads.clear()
        known = heads[key] = _head(list(key))
    head, length = known
    if method == "HEAD":
        body = b""
    elif length != len(body):
        raise RuntimeError("Response content length differs from Content-Length")
    return b"".join((STATUS_LINE[status], head,
                     b"" if keep_alive else b"connection: close\r\n", b"\r\n", body))


def _head(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    """(the header lines, the content-length) of a direct answer, checked."""
    head = b"".join([b"%s: %s\r\n" % pair for pair in headers])
    if _PLAIN_LINES.fullmatch(head) is None:
        headers = _checked(headers)
        head = b"".join([b"%s: %s\r\n" % pair for pair in headers])
    length = b""
    for name, value in headers:
        if name in _FRAMING:
            if length or name != b"content-length" or not value.isdigit():
                raise RuntimeError("a direct answer needs exactly one content-length and "
                                   "no transfer-encoding or connection header")
            length = value
    if not length:
        raise RuntimeError("a direct answer needs a content-length")
    return head, int(length)


def _checked(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers as uvicorn checks and writes them, one by one (names lowered)."""
    out = []
    for name, value in headers:
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        out.append((name.lower(), value))
    return out


def _tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a TLS connection (None for plaintext). asyncio calls
    ``connection_made`` after the handshake, so the peer certificate is known."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    return {"server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None, "client_cert_error": None,
            "tls_version": {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(version or ""),
            "cipher_suite": None}


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


def _keep(context: ssl.SSLContext) -> Callable[[uvicorn.Config, Any], ssl.SSLContext]:
    """uvicorn's ssl_context_factory answering our one context (kept for reloads)."""
    def factory(config: uvicorn.Config, default: Any) -> ssl.SSLContext:
        return context
    return factory


class HttpServer:
    """uvicorn in a background thread with its own event loop."""

    def __init__(self, listen: str, app: ASGIApp, *, max_connections: int = 1000,
                 idle_timeout_seconds: float = 10.0, tls: TlsFiles | None = None,
                 client_auth: str = "none", direct: bool = True) -> None:
        """``direct=False`` sends every request through ASGI, even where the app has a
        direct answer (for comparing the two ways, and as a switch if ever needed)."""
        self._sock = bind(listen)
        self.app = app
        self.tally = Tally()
        self.port = int(self._sock.getsockname()[1])
        self._head_timeout = idle_timeout_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ssl_context: ssl.SSLContext | None = None
        self._tls = tls
        factory: Callable[[uvicorn.Config, Any], ssl.SSLContext] | None = None
        if tls is not None:
            try:
                context = self.ssl_context = tls.server_context(client_auth)
            except Exception:
                self._sock.close()
                raise
            tls.add_listener(self._new_pair)
            factory = _keep(context)
        config = uvicorn.Config(
            app, http=_protocol(idle_timeout_seconds, app if direct else None, self.tally),
            lifespan="off", ws="none",
            interface="asgi3", log_config=None, access_log=False, server_header=False,
            proxy_headers=False,  # X-Forwarded-* is read where it matters (scan.py)
            date_header=False, limit_concurrency=max_connections,
            # The protocol closes idle connections itself (the request-head deadline).
            timeout_keep_alive=max(1, int(idle_timeout_seconds)), timeout_graceful_shutdown=2,
            ssl_context_factory=factory)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"http-{self.port}",
                                        daemon=True)

    def _new_pair(self, pair: KeyPair) -> None:
        """On the TLS watcher's thread: load the newest pair (``pair`` or a later one) on
        the event loop, between handshakes (an SSLContext is not changed while the loop
        may be using it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._load_current()  # not serving yet (or any more): nothing races
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._load_current)

    def _load_current(self) -> None:
        if self.ssl_context is not None and self._tls is not None:
            try:
                load_pair(self.ssl_context, self._tls.current)
            except (OSError, ssl.SSLError):
                log.exception("the HTTP door could not load the new TLS certificate; "
                              "it keeps the previous one")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        if self.ssl_context is not None:
            # uvicorn passes no handshake timeout (asyncio's default is 60 s), and a
            # connection counts against max_connections only once its handshake is done:
            # one that never completes it must not hold a socket longer than a silent
            # plaintext connection may (the request-head deadline).
            loop.create_server = functools.partial(  # type: ignore[method-assign]
                loop.create_server, ssl_handshake_timeout=self._head_timeout)
        self._loop = loop
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


__all__ = ["BindError", "HttpServer", "Tally", "bind"]
