"""The node's HTTP side: ``/metrics``, ``/healthz``, ``/readyz`` and ``/api/keys``.

A small threaded server from the standard library: these endpoints are scraped and
probed, not on the resolution hot path (which is gRPC).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from node.security.signing import KeyRing

log = logging.getLogger("idnode.http")


class HttpEndpoints:
    """What the HTTP handler needs from the node."""

    def __init__(self, registry: CollectorRegistry, keys: KeyRing | None,
                 ready: Callable[[], tuple[bool, str]],
                 on_request: Callable[[str, int], None] | None = None,
                 metrics_only: bool = False) -> None:
        self.registry = registry
        self.keys = keys
        self.ready = ready
        self.on_request = on_request
        self.metrics_only = metrics_only


def _handler(endpoints: HttpEndpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "idnode"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Access logs are off; errors are logged by the node."""

        def _send(self, status: int, body: bytes, content_type: str, route: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            if endpoints.on_request is not None:
                endpoints.on_request(route, status)

        def _json(self, status: int, obj: object, route: str) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json", route)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(endpoints.registry), CONTENT_TYPE_LATEST,
                           "/metrics")
            elif path == "/healthz":
                self._json(200, {"status": "ok"}, "/healthz")
            elif path == "/readyz":
                ok, why = endpoints.ready()
                self._json(200 if ok else 503, {"status": "ready" if ok else why}, "/readyz")
            elif path == "/api/keys" and not endpoints.metrics_only and endpoints.keys:
                keys = [{"key_id": k.key_id, "algorithm": k.algorithm,
                         "public_key_der_hex": k.public_der.hex(),
                         "not_before": k.not_before, "not_after": k.not_after,
                         "active": k.active} for k in endpoints.keys.published()]
                self._json(200, {"responseCode": 1, "keys": keys}, "/api/keys")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"responseCode": 2,
                                                  "message": f"no such path {path}"}, "other")

        do_HEAD = do_GET  # noqa: N815

    return Handler


class HttpServer:
    """A background HTTP server on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, listen: str, endpoints: HttpEndpoints) -> None:
        host, _, port = listen.rpartition(":")
        self._server = ThreadingHTTPServer((host.strip("[]"), int(port)), _handler(endpoints))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        # A short poll interval keeps shutdown (and so node restarts) prompt.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"http-{self.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
