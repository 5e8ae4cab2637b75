"""The Handle REST API (``/api/handles``), as Handle.net serves it and its clients expect.

Translation only: every call goes to the application core (:mod:`node.service`), so an
identifier written here resolves identically over gRPC and the other way round, with the
same rights, cache invalidation, signatures and audit lines.

What deployed clients (pyhandle, b2handle, curl scripts) depend on, and this door keeps:

- success is ``responseCode`` 1 with HTTP 200, or 201 when a PUT created the identifier;
  every error, 404 included, is JSON ``{"responseCode", "handle", "message"}`` with the
  HTTP status of the node's one error table (``node.errors``); a record that breaks
  its metadata template's rules adds ``violations`` (index, type, item, rule, value,
  detail per rule broken; the message lists them too);
- a ``?type=``/``?index=`` filter that matches nothing is HTTP 200 with ``responseCode``
  200 and ``"values": []``; deleting an index the record lacks is HTTP 400 with
  ``responseCode`` 200 (pyhandle's ``values_not_found``);
- the path takes the raw handle (``/api/handles/88.118.8/EQ/CNC-7``) or its
  percent-encoded form; bad percent-encoding or bytes that are not UTF-8 are 400 / 102;
- unknown query parameters (``auth``, ``pretty``) are ignored; nothing here redirects;
- ``?signed=true`` adds the signed record (``payload``, ``signature`` in base64,
  ``keyId``, ``algorithm``) without changing what plain clients receive.

PUT has no etag in the Handle REST API: ``overwrite=true`` (the default) replaces, and
with ``?index=`` only the listed values are added or replaced; ``overwrite=false``
refuses to replace an existing identifier (409 / 101) or, with ``?index=``, an existing
value. A request that also sends ``If-Match`` is not given etag semantics (yet): use
gRPC ``Update`` for compare-and-set.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from node.errors import UnsupportedMediaType, mapping_for, public_message, retry_after
from node.service.caller import Caller
from node.service.core import Core
from node.web.app import JSON, Reply, Request, Route, Routes
from node.web.handle_json import parse_body, record_json
from registry.errors import IdnodeError, InvalidArgument, InvalidIdentifier, ValuesNotFound

PREFIX = "/api/handles/"
_RAW_PREFIX = PREFIX.encode()
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
MAX_LIST_PAGE = 1000
MAX_LIST_OFFSET = 100_000
_UNAUTHENTICATED = ((b"www-authenticate", b'Basic realm="idnode"'),)


def handle_from_path(raw_path: bytes, prefix: bytes = _RAW_PREFIX) -> str:
    """The identifier in a request path, raw or percent-encoded, as text."""
    raw = raw_path[len(prefix):]
    if b"%" not in raw:  # the common case: nothing to decode
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidIdentifier("the identifier in the path is not UTF-8") from None
    if _BAD_PERCENT.search(raw):
        raise InvalidIdentifier("the path has a malformed percent-encoding")
    try:
        return urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidIdentifier("the identifier in the path is not UTF-8") from None


def query_ints(query: dict[str, list[str]], name: str) -> list[int]:
    """Every integer given as ``?name=`` (repeatable, or comma-separated)."""
    out = []
    for raw in query.get(name, ()):
        for part in raw.split(","):
            if not part.strip().isdigit():
                raise InvalidArgument(f"{name}={part[:40]!r} is not a positive integer")
            out.append(int(part))
    return out


def caller_of(request: Request) -> Caller:
    return Caller(request.header("authorization"), request.peer, "http", request.certificate)


def error_reply(exc: BaseException, handle: str = "") -> Reply:
    """A Handle-style error body with the status of the one error table."""
    mapping = mapping_for(exc)
    body: dict[str, Any] = {"responseCode": mapping.handle_code, "handle": handle,
                            "message": public_message(exc)}
    if isinstance(exc, InvalidArgument) and exc.violations:
        # Every rule a record broke against its metadata template, as a list too.
        body["violations"] = [{"index": v.index, "type": v.type, "item": v.item,
                               "rule": v.rule, "value": v.value, "detail": v.detail}
                              for v in exc.violations]
    return Reply.json(mapping.http_status, body,
                      _UNAUTHENTICATED if mapping.http_status == 401 else error_headers(exc))


def error_headers(exc: BaseException) -> tuple[tuple[bytes, bytes], ...]:
    """The headers an error answer carries whatever its body: ``Retry-After`` (seconds)
    when the error says when to try again."""
    seconds = retry_after(exc)
    return ((b"retry-after", str(seconds).encode()),) if seconds is not None else ()


def _rendition(entry: Any) -> bytes:
    """The plain Handle REST answer of a cached entry, encoded once per entry."""
    renditions = entry.renditions
    if renditions is None:
        renditions = entry.renditions = {}
    body: bytes | None = renditions.get("rest")
    if body is None:
        handle, values = record_json(entry.payload)
        body = json.dumps({"responseCode": 1, "handle": handle, "values": values},
                          ensure_ascii=False).encode()
        renditions["rest"] = body
    return body


def public_reply(core: Core, text: str, peer: str | Callable[[], str]) -> Reply:
    """The anonymous, unfiltered, unsigned resolve of ``text``: the hot path. ``peer``
    (the client address, or how to spell it) is used only by the per-address limit."""
    if core.admit_public is not None:  # the per-address resolve limit is on
        core.admit_public(peer if isinstance(peer, str) else peer())
    return Reply(200, _rendition(core.public(text)), JSON)


def resolve_reply(core: Core, request: Request, text: str) -> Reply:
    """``GET /api/handles/{text}`` (also what the scan proxy answers to JSON clients)."""
    types = request.query.get("type", [])
    indexes = query_ints(request.query, "index")
    signed = request.flag("signed")
    if not types and not indexes and not signed and b"authorization" not in request.headers \
            and request.certificate is None:
        return public_reply(core, text, request.peer)
    caller = caller_of(request)
    try:
        entry = core.resolve(caller, text, types=types, indexes=indexes)
    except ValuesNotFound:
        shown, _ = record_json(core.resolve(caller, text).payload)
        return Reply.json(200, {"responseCode": 200, "handle": shown, "values": []})
    if not signed:
        return Reply(200, _rendition(entry), JSON)
    handle, values = record_json(entry.payload)
    return Reply.json(200, {"responseCode": 1, "handle": handle, "values": values, "signed": {
        "payload": base64.b64encode(entry.payload).decode(),
        "signature": base64.b64encode(entry.signature).decode(),
        "keyId": entry.key_id, "algorithm": entry.algorithm}})


class HandleApi:
    """``/api/handles`` and ``/api/handles/{handle}`` over one core."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def add_to(self, routes: Routes) -> None:
        routes.exact["/api/handles"] = Route(self.list_handles)
        routes.exact["/api/handles/"] = Route(self.list_handles)
        # GET/HEAD answered directly by the server (node.web.app.App.direct): the hot path.
        routes.prefixes.append((PREFIX, Route(self.one, frozenset({"GET", "PUT", "DELETE"}),
                                              direct=True, plain=self.plain_get)))

    def one(self, request: Request) -> Reply:
        text = request.raw_path[len(_RAW_PREFIX):].decode("latin-1")  # echoed on errors
        try:
            text = handle_from_path(request.raw_path)
            if request.method == "PUT":
                return self.put(request, text)
            if request.method == "DELETE":
                return self.delete(request, text)
            return resolve_reply(self.core, request, text)
        except IdnodeError as exc:
            if request.method == "DELETE" and isinstance(exc, ValuesNotFound):
                # pyhandle's values_not_found(): HTTP 400 with responseCode 200.
                return Reply.json(400, {"responseCode": 200, "handle": text,
                                        "message": exc.message})
            return error_reply(exc, text)

    def plain_get(self, raw_path: bytes, client: tuple[str, int] | None) -> Reply:
        """What :meth:`one` answers to a GET with no query string, no Authorization and
        no client certificate (the server's direct path calls this without building a
        Request): the same steps, in the same order, with the same errors."""
        text = raw_path[len(_RAW_PREFIX):].decode("latin-1")  # echoed on errors
        try:
            text = handle_from_path(raw_path)
            return public_reply(self.core, text,
                                lambda: f"{client[0]}:{client[1]}" if client else "")
        except IdnodeError as exc:
            return error_reply(exc, text)

    def put(self, request: Request, text: str) -> Reply:
        caller = caller_of(request)
        try:
            kind = (request.header("content-type") or "application/json").split(";")[0]
            if kind.strip().lower() not in ("application/json", "text/json") \
                    and not kind.strip().lower().endswith("+json"):
                raise UnsupportedMediaType(f"content type {kind[:60]!r} is not JSON "
                                           "(send application/json)")
            values = parse_body(request.body)
            overwrite = request.query.get("overwrite", ["true"])[-1].lower() != "false"
            indexes = query_ints(request.query, "index")
        except IdnodeError as exc:
            self.core.writes.refused(caller, "put", exc, handle=text)
            raise
        result, created = self.core.writes.put(caller, text, values, overwrite=overwrite,
                                               indexes=indexes)
        return Reply.json(201 if created else 200,
                          {"responseCode": 1, "handle": result.handle},
                          ((b"etag", f'"{result.etag}"'.encode()),))

    def delete(self, request: Request, text: str) -> Reply:
        caller = caller_of(request)
        try:
            indexes = query_ints(request.query, "index")
        except IdnodeError as exc:
            self.core.writes.refused(caller, "delete", exc, handle=text)
            raise
        result = self.core.writes.delete(caller, text, None, indexes)
        return Reply.json(200, {"responseCode": 1, "handle": result.handle})

    def list_handles(self, request: Request) -> Reply:
        prefix = request.query.get("prefix", [""])[-1]
        try:
            if not prefix:
                raise InvalidArgument("listing needs ?prefix=, e.g. /api/handles?prefix=88.118.8")
            size = query_ints(request.query, "pageSize")[-1:] or [100]
            page = query_ints(request.query, "page")[-1:] or [0]
            if not 1 <= size[0] <= MAX_LIST_PAGE:
                raise InvalidArgument(f"pageSize is 1..{MAX_LIST_PAGE}")
            if page[0] * size[0] > MAX_LIST_OFFSET:
                raise InvalidArgument(f"page × pageSize is at most {MAX_LIST_OFFSET}; "
                                      "use pageToken to go further")
            token = request.query.get("pageToken", [""])[-1]
            caller = caller_of(request)
            handles, token = self.core.list_handles(caller, prefix, size[0], token)
            for _ in range(page[0]):  # Handle.net's numbered pages, walked with the cursor
                if not token:
                    handles = []
                    break
                handles, token = self.core.list_handles(caller, prefix, size[0], token)
        except IdnodeError as exc:
            return error_reply(exc)
        body: dict[str, Any] = {"responseCode": 1, "prefix": prefix, "handles": handles}
        if token:
            body["nextPageToken"] = token
        return Reply.json(200, body)


__all__ = ["HandleApi", "error_headers", "error_reply", "handle_from_path", "query_ints",
           "resolve_reply"]

