"""The HTTP front door as one ASGI callable, with no framework.

Routes are looked up in a dict by exact path (the ops endpoints); the Handle REST API,
the scan page and the SNMS-compatible API add their routes here and call the same
application core as gRPC. Handlers are plain functions returning a :class:`Reply`; the
app does the ASGI plumbing once. A framework would double the CPU per request
(docs/benchmarks/http-stack.md) and give us nothing these routes need.

Handlers run on the server's event loop thread and may call the synchronous core
directly: a cache hit costs microseconds, an embedded-store read about 100 µs.
"""

from __future__ import annotations

import functools
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from node.security.certificates import ClientCertificate, client_certificate
from node.security.signing import KeyRing

log = logging.getLogger("idnode.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())

    @classmethod
    def json(cls, status: int, obj: object,
             headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
        return cls(status, json.dumps(obj, ensure_ascii=False).encode(), JSON, headers)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as handlers see it. ``path`` is percent-decoded (ASGI),
    ``raw_path`` is what the client sent; ``query`` keeps repeated and blank keys;
    ``certificate`` is the client certificate the TLS handshake verified, if any."""

    method: str
    path: str
    raw_path: bytes
    query: dict[str, list[str]]
    headers: dict[bytes, bytes]
    body: bytes = b""
    peer: str = ""
    certificate: ClientCertificate | None = None

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.encode("latin-1"))
        return value.decode("latin-1") if value is not None else None

    def flag(self, name: str) -> bool:
        """A query flag: present without a value, or true/1/yes."""
        values = self.query.get(name)
        if values is None:
            return False
        return values[-1].lower() in ("", "true", "1", "yes")


Handler = Callable[[Request], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    """A handler and the methods it takes; HEAD is answered wherever GET is."""

    handler: Handler
    methods: frozenset[str] = frozenset({"GET"})
    #: GET/HEAD without a body may be answered by :meth:`App.direct` (same handler and
    #: headers, no ASGI); only for handlers whose headers are fixed, safe byte strings.
    direct: bool = False
    #: The handler's own answer to the plainest request — a GET or HEAD with no query
    #: string, no Authorization header and no client certificate — from the raw path and
    #: the client address alone, without a :class:`Request`; it must answer exactly what
    #: ``handler`` answers to such a request (the hot anonymous resolve).
    plain: Callable[[bytes, Any], Reply] | None = None


@dataclass
class Routes:
    """Exact paths first, then path prefixes in the order added, then the fallback (the
    scan-to-resolve proxy answers ``/{handle}``)."""

    exact: dict[str, Route] = field(default_factory=dict)
    prefixes: list[tuple[str, Route]] = field(default_factory=list)
    fallback: Route | None = None

    def find(self, path: str) -> tuple[str, Route] | None:
        """(the route's name for metrics, the route) or None."""
        route = self.exact.get(path)
        if route is not None:
            return path, route
        for prefix, candidate in self.prefixes:
            if path.startswith(prefix):
                return prefix + "*", candidate
        if self.fallback is not None:
            return "/*", self.fallback
        return None


MAX_BODY_BYTES = 4 * 1024 * 1024


class Endpoints:
    """What the ops routes need from the node."""

    def __init__(self, registry: CollectorRegistry, keys: KeyRing | None,
                 ready: Callable[[], tuple[bool, str]],
                 on_request: Callable[[str, int], None] | None = None,
                 metrics_only: bool = False) -> None:
        self.registry = registry
        self.keys = keys
        self.ready = ready
        self.on_request = on_request
        self.metrics_only = metrics_only

    def add_to(self, routes: Routes) -> None:
        routes.exact.update({"/metrics": Route(self.metrics), "/healthz": Route(self.healthz),
                             "/readyz": Route(self.readyz)})
        if not self.metrics_only and self.keys is not None:
            routes.exact["/api/keys"] = Route(self.api_keys)

    def metrics(self, request: Request) -> Reply:
        return Reply(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def healthz(self, request: Request) -> Reply:
        return Reply.json(200, {"status": "ok"})

    def readyz(self, request: Request) -> Reply:
        ok, why = self.ready()
        return Reply.json(200 if ok else 503, {"status": "ready" if ok else why})

    def api_keys(self, request: Request) -> Reply:
        assert self.keys is not None
        keys = [{"key_id": k.key_id, "algorithm": k.algorithm,
                 "public_key_der_hex": k.public_der.hex(), "not_before": k.not_before,
                 "not_after": k.not_after, "active": k.active}
                for k in self.keys.published()]
        return Reply.json(200, {"responseCode": 1, "keys": keys})


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""A complete answer: (status, headers, body) — what the ASGI app sends, in that order."""


@runtime_checkable
class DirectApp(Protocol):
    """An ASGI app that can also answer some requests without ASGI.

    The HTTP server (node.web.server) offers every bodyless request to ``direct`` first;
    ``None`` means "not one of mine", and the request goes through ASGI as usual. An
    answer is written by the server exactly as its ASGI ``send`` would have written it.
    ``direct`` must have no side effect when it answers ``None``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def direct(self, method: str, path: str, raw_path: bytes, query_string: bytes,
               headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
               tls: dict[str, Any] | None) -> Answer | None: ...


class App:
    """The ASGI app: routes, JSON errors, a bounded body, request metrics.

    Routes marked ``direct`` (the hot ``GET /api/handles/{handle}``) are also answered
    through :meth:`direct`, which the HTTP server calls for bodyless GET and HEAD
    requests before building an ASGI scope: the same lookup, the same handler and the
    same headers, without the per-request ASGI machinery (a task, a scope, two sends),
    which costs more CPU than the resolve itself (docs/benchmarks/http-stack.md)."""

    def __init__(self, endpoints: Endpoints, routes: Routes | None = None, *,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.table = routes or Routes()
        endpoints.add_to(self.table)
        self.on_request = endpoints.on_request
        self.max_body_bytes = max_body_bytes

    def _reply(self, found: tuple[str, Route] | None, method: str, path: str,
               make_request: Callable[[], Request]) -> Reply:
        if found is None:
            return Reply.json(404, {"responseCode": 2, "message": f"no such path {path}"})
        if method not in found[1].methods and not (method == "HEAD"
                                                   and "GET" in found[1].methods):
            return Reply.json(405, {"responseCode": 2,
                                    "message": f"{method} is not allowed on {path}"},
                              headers=((b"allow", ", ".join(sorted(found[1].methods))
                                        .encode()),))
        return _call(found[1].handler, make_request())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        found = self.table.find(path)
        route_name = found[0] if found is not None else "other"
        body, too_big = b"", False
        if found is not None and method not in ("GET", "HEAD") and method in found[1].methods:
            # A GET or HEAD has no body worth reading (uvicorn discards one if sent).
            body, too_big = await _read_body(receive, self.max_body_bytes)
        if too_big:
            reply = Reply.json(413, {"responseCode": 2, "message":
                                     f"request body over {self.max_body_bytes} bytes"})
        else:
            reply = self._reply(found, method, path,
                                lambda: _request(scope, method, path, body))
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": head_of(reply)})
        await send({"type": "http.response.body",
                    "body": b"" if method == "HEAD" else reply.body})
        if self.on_request is not None:
            self.on_request(route_name, reply.status)

    def direct(self, method: str, path: str, raw_path: bytes, query_string: bytes,
               headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
               tls: dict[str, Any] | None) -> Answer | None:
        """The answer to a bodyless GET or HEAD on a direct route, else None (nothing
        done). The body is the full body, also for HEAD: the server leaves it out."""
        if method not in ("GET", "HEAD"):
            return None
        found = self.table.find(path)
        if found is None or not found[1].direct:
            return None
        plain = found[1].plain
        if query_string or tls is not None:
            plain = None  # the handler reads the query and the certificate
        elif plain is not None:
            for name, _ in headers:
                if name == b"authorization":
                    plain = None  # nor is the caller anonymous
                    break
        if plain is not None:
            try:
                reply = plain(raw_path, client)
            except Exception:  # as _call: nothing internal reaches the caller
                log.exception("unexpected error on %s", path)
                reply = _INTERNAL_ERROR
        else:
            reply = self._reply(found, method, path, lambda: request_of(
                method, path, raw_path, query_string, headers, client,
                _tls_certificate(tls) if tls is not None else None, b""))
        if self.on_request is not None:
            self.on_request(found[0], reply.status)
        return reply.status, head_of(reply), reply.body


def build_app(endpoints: Endpoints, routes: Routes | None = None, *,
              max_body_bytes: int = MAX_BODY_BYTES) -> App:
    """The node's HTTP app (see :class:`App`)."""
    return App(endpoints, routes, max_body_bytes=max_body_bytes)


def head_of(reply: Reply) -> list[tuple[bytes, bytes]]:
    """The response headers of ``reply``, in the order they are written."""
    return [(b"content-type", _content_type(reply.content_type)),
            (b"content-length", str(len(reply.body)).encode()), *reply.headers]


@functools.lru_cache(maxsize=64)
def _content_type(value: str) -> bytes:
    return value.encode()


def _request(scope: Scope, method: str, path: str, body: bytes) -> Request:
    return request_of(method, path, scope.get("raw_path") or path.encode(),
                      scope.get("query_string", b""), scope.get("headers") or (),
                      scope.get("client"), _certificate(scope), body)


def request_of(method: str, path: str, raw_path: bytes, raw_query: bytes,
               headers: Iterable[tuple[bytes, bytes]], client: Any,
               certificate: ClientCertificate | None, body: bytes) -> Request:
    """The :class:`Request` handlers see, from what the server parsed (ASGI or direct)."""
    query = urllib.parse.parse_qs(raw_query.decode("latin-1"), keep_blank_values=True) \
        if raw_query else {}
    return Request(method, path, raw_path, query, dict(headers), body,
                   f"{client[0]}:{client[1]}" if client else "", certificate)


def _certificate(scope: Scope) -> ClientCertificate | None:
    """The client certificate of the ASGI TLS extension (node.web.server adds it)."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if extensions else None
    return _tls_certificate(tls) if tls else None


def _tls_certificate(tls: dict[str, Any]) -> ClientCertificate | None:
    chain = tls.get("client_cert_chain")
    if not chain:
        return None
    pem = chain[0]
    return client_certificate(pem.encode("ascii") if isinstance(pem, str) else pem)


_INTERNAL_ERROR = Reply.json(500, {"responseCode": 2,
                                   "message": "internal error (logged on the node)"})


def _call(handler: Handler, request: Request) -> Reply:
    try:
        return handler(request)
    except Exception:  # nothing internal reaches the caller
        log.exception("unexpected error on %s", request.path)
        return _INTERNAL_ERROR


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


__all__ = ["ASGIApp", "Answer", "App", "DirectApp", "Endpoints", "Handler", "Reply", "Request",
           "Route", "Routes", "build_app", "head_of", "request_of"]
