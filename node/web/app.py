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

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
    def json(cls, status: int, obj: object) -> Reply:
        return cls(status, json.dumps(obj, ensure_ascii=False).encode(), JSON)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: dict[bytes, bytes]


Handler = Callable[[Request], Reply]


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

    def routes(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {"/metrics": self.metrics, "/healthz": self.healthz,
                                     "/readyz": self.readyz}
        if not self.metrics_only and self.keys is not None:
            table["/api/keys"] = self.api_keys
        return table

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


def build_app(endpoints: Endpoints) -> ASGIApp:
    """The ASGI app: exact-path routes, GET and HEAD, JSON errors, request metrics."""
    routes = endpoints.routes()
    on_request = endpoints.on_request

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        handler = routes.get(path)
        route = path if handler is not None else "other"
        if handler is None:
            reply = Reply.json(404, {"responseCode": 2, "message": f"no such path {path}"})
        elif method not in ("GET", "HEAD"):
            reply = Reply.json(405, {"responseCode": 2,
                                     "message": f"{method} is not allowed on {path}"})
        else:
            request = Request(method, path, scope.get("query_string", b""),
                              dict(scope.get("headers") or ()))
            try:
                reply = handler(request)
            except Exception:  # nothing internal reaches the caller
                log.exception("unexpected error on %s", path)
                reply = Reply.json(500, {"responseCode": 2,
                                         "message": "internal error (logged on the node)"})
        headers = [(b"content-type", reply.content_type.encode()),
                   (b"content-length", str(len(reply.body)).encode()), *reply.headers]
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if method == "HEAD" else reply.body})
        if on_request is not None:
            on_request(route, reply.status)

    return app


__all__ = ["ASGIApp", "Endpoints", "Reply", "Request", "build_app"]
