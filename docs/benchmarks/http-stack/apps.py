"""The apps under test: a fixed 300-byte JSON ("empty") and a resolve-like dict lookup.

bare_app(handler)      -- plain ASGI callable, our own tiny router (for uvicorn and granian)
starlette_app(handler) -- same two handlers behind Starlette routing
raw_serve(...)         -- optional 4th: asyncio.Protocol + httptools parser, no ASGI at all
"""
import json

PREFIX = "/api/handles/"
N_BODIES = 20_000


def _pad(obj: dict, size: int = 300) -> bytes:
    raw = json.dumps(obj, separators=(",", ":"))
    obj["pad"] = "x" * (size - len(raw) - len(',"pad":""'))
    out = json.dumps(obj, separators=(",", ":")).encode()
    assert len(out) == size, len(out)
    return out


EMPTY_BODY = _pad({"responseCode": 1, "handle": "88.118.8/PN-0", "values": []})
BODIES = {
    f"88.118.8/PN-{n}": _pad({"responseCode": 1, "handle": f"88.118.8/PN-{n}",
                              "values": [{"index": 1, "type": "URL",
                                          "data": {"format": "string", "value": f"https://example.com/p/{n}"}}]})
    for n in range(N_BODIES)
}
NOT_FOUND = b'{"responseCode":100,"message":"Handle Not Found"}'
CT_JSON = b"application/json"


def resolve(path: str):
    """Resolve-like core: parse the path, dict lookup, ready bytes. Returns (status, body)."""
    if path.startswith(PREFIX):
        body = BODIES.get(path[len(PREFIX):])
        if body is not None:
            return 200, body
    return 404, NOT_FOUND


def bare_app(handler: str):
    hdr_empty = [(b"content-type", CT_JSON), (b"content-length", b"300")]

    async def lifespan(receive, send):
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    if handler == "empty":
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return await lifespan(receive, send)
            await send({"type": "http.response.start", "status": 200, "headers": hdr_empty})
            await send({"type": "http.response.body", "body": EMPTY_BODY})
    else:
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return await lifespan(receive, send)
            path = scope["path"]
            if path == "/healthz":
                status, body = 200, b"ok"
            else:
                status, body = resolve(path)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", CT_JSON), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
    return app


def starlette_app(handler: str):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def empty(request):
        return Response(EMPTY_BODY, media_type="application/json")

    async def handle(request):
        body = BODIES.get(request.path_params["handle"])
        if body is None:
            return Response(NOT_FOUND, status_code=404, media_type="application/json")
        return Response(body, media_type="application/json")

    async def healthz(request):
        return Response(b"ok", media_type="text/plain")

    routes = [Route("/healthz", healthz), Route("/api/handles/{handle:path}", handle)]
    if handler == "empty":
        routes.append(Route("/{rest:path}", empty))  # any path -> fixed body, through the router
    return Starlette(routes=routes)


def raw_protocol_factory(handler: str, loop, keepalive: float):
    """Minimal HTTP/1.1 keep-alive server on asyncio.Protocol + httptools (GET only, no bodies)."""
    import httptools

    def resp(status: int, body: bytes) -> bytes:
        reason = b"OK" if status == 200 else b"Not Found"
        return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % (status, reason, len(body))) + body

    fixed = resp(200, EMPTY_BODY)

    class P:
        __slots__ = ("t", "parser", "url", "timer")

        def connection_made(self, t):
            self.t = t
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.timer = loop.call_later(keepalive, t.close)

        def data_received(self, data):
            self.timer.cancel()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.t.close()
                return
            self.timer = loop.call_later(keepalive, self.t.close)

        def on_url(self, url):
            self.url = url

        def on_message_complete(self):
            if handler == "empty":
                self.t.write(fixed)
            else:
                path = httptools.parse_url(self.url).path.decode()
                if path == "/healthz":
                    self.t.write(resp(200, b"ok"))
                else:
                    self.t.write(resp(*resolve(path)))
            if not self.parser.should_keep_alive():
                self.t.close()

        def connection_lost(self, exc):
            self.timer.cancel()

        def eof_received(self):
            return False

        def pause_writing(self):
            pass

        def resume_writing(self):
            pass

    return P


def app_from_env():
    """Factory for the granian CLI (own worker process) reference run: HANDLER=empty|resolve."""
    import os
    return bare_app(os.environ.get("HANDLER", "resolve"))
