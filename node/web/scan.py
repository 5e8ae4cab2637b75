"""Scan-to-resolve: what a person holding a part meets after scanning its label.

A label encodes ``https://<node>/88.118.8/PN-0001`` (node.web.qr). ``GET /{handle}``
follows the Handle proxy conventions (hdl.handle.net):

* the record has a value of type ``URL`` (any case) holding an ``http``/``https`` URL →
  **302** to the first such value (lowest index). Other schemes (``javascript:``,
  ``ftp:``, ...) are never followed: the page is shown instead;
* ``?noredirect`` → the page, never a redirect;
* ``?index=N`` / ``?type=T`` (repeatable; their union, as the core filters) pick the
  values: the first URL among them is followed, otherwise the page shows only them;
* ``Accept: application/json`` (preferred over ``text/html``) → exactly what
  ``GET /api/handles/{handle}`` answers (node.web.handles), never a redirect;
* otherwise a mobile-first HTML page of the record the caller may see: product name,
  manufacturer, batch, dates, every other value as a labelled row, links, the
  signature **verified here, server-side**, against the node's published keys (a
  person with a phone cannot verify it; the page says honestly when it could not);
* a friendly not-found page (404), an error page for a malformed identifier (400) with
  the Handle code and the rule it breaks.

The handle is read from the raw path exactly as ``/api/handles`` reads it
(node.web.handles.handle_from_path: ``/`` and ``%2F`` are the same, a suffix may
contain ``/``, bad percent-encoding or bytes that are not UTF-8 are 400). Templates are Jinja2 with
autoescaping on for every template, so a value containing ``<script>`` is text; a
Content-Security-Policy without scripts guards the rest. Templates and the stylesheet
are read once at start and served by the node: no CDN, no external font.

QR labels: ``GET /api/qr/{handle}.png`` and ``.svg`` encode the proxy URL
``<base>/<handle>`` in the identifier's registered spelling. ``<base>`` is
``public_url`` when the node is configured with one (behind a reverse proxy that
rewrites ``Host``, set it); otherwise it is built from the request: the scheme from
``X-Forwarded-Proto`` (``http`` or ``https``; the node itself speaks plain HTTP, so
``http`` without it) and the ``Host`` header (which must be a plain ``host[:port]``).
An identifier that does not exist (or is malformed) gets **no** label: 404 (400) with a
Handle-style JSON error, so a factory printing labels in bulk finds its typos before
they are riveted to a machine. ``?scale=`` (module size, 1..40, default 8) bounds the
image; anything else is 400.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from idnode.v1 import record_pb2
from node.errors import mapping_for, public_message
from node.security.signing import PublishedKey
from node.service.core import Core
from node.verify import VerificationError, verify
from node.web.app import Reply, Request, Route, Routes
from node.web.handles import (
    caller_of,
    error_headers,
    error_reply,
    handle_from_path,
    query_ints,
    resolve_reply,
)
from node.web.qr import (
    CONTENT_TYPES,
    DEFAULT_SCALE,
    KINDS,
    Kind,
    LabelError,
    check_scale,
    file_name,
    normalise_base_url,
    proxy_url,
    render,
)
from registry.errors import (
    IdnodeError,
    InvalidIdentifier,
    NotFound,
    ValuesNotFound,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

HTML = "text/html; charset=utf-8"
QR_PREFIX = "/api/qr/"
STATIC_PREFIX = "/static/"

# No script may run on these pages: everything they show comes from registrants.
_PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; "
                                 b"img-src 'self' data:; form-action 'self'; "
                                 b"base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Records change; a phone must not show yesterday's page from its cache.
    (b"cache-control", b"no-cache"),
)

_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png", ".ico": "image/x-icon"}

# Handle response codes by number, for the person reading an error page.
_HANDLE_CODES = {1: "SUCCESS", 2: "ERROR", 100: "HANDLE_NOT_FOUND",
                 101: "HANDLE_ALREADY_EXISTS", 102: "INVALID_HANDLE", 200: "VALUES_NOT_FOUND",
                 301: "SERVER_NOT_RESPONSIBLE_FOR_HANDLE", 402: "AUTHENTICATION_NEEDED"}

# type (casefolded) → (English label, Chinese label). Unknown types get a label made
# from their name ("materialGrade" → "Material grade") and no Chinese one.
_LABELS: dict[str, tuple[str, str]] = {
    "productname": ("Product", "产品名称"),
    "manufacturer": ("Manufacturer", "制造商"),
    "manufacturername": ("Manufacturer", "制造商"),
    "brand": ("Brand", "品牌"),
    "model": ("Model", "型号"),
    "batchno": ("Batch", "批次号"),
    "lotno": ("Lot", "批号"),
    "serialno": ("Serial number", "序列号"),
    "productiondate": ("Production date", "生产日期"),
    "manufacturedate": ("Manufacture date", "生产日期"),
    "expirydate": ("Expiry date", "有效期至"),
    "inspectiondate": ("Inspection date", "检验日期"),
    "shipdate": ("Shipping date", "发货日期"),
    "desc": ("Description", "描述"),
    "url": ("Link", "链接"),
    "email": ("Email", "电子邮箱"),
}
# The facts shown first, in this order (dates follow them).
_FACTS = ("manufacturer", "manufacturername", "brand", "model", "batchno", "lotno",
          "serialno")

_HOST = re.compile(r"(?:[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?"
                   r"(?:\.[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


# --- what the templates see -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One value as the page shows it."""

    label: str
    label_zh: str
    type: str
    index: int
    text: str
    lang: str = ""
    href: str = ""


@dataclass(frozen=True, slots=True)
class Signature:
    """The outcome of verifying the record's signature here, on the node."""

    verified: bool
    key_id: str
    algorithm: str
    signed_at: str
    expires_at: str
    reason: str = ""


@dataclass
class RecordView:
    """Everything the record page shows, already classified and formatted."""

    handle: str
    title: str
    title_lang: str
    facts: list[Row] = field(default_factory=list)
    links: list[Row] = field(default_factory=list)
    details: list[Row] = field(default_factory=list)
    technical: list[Row] = field(default_factory=list)


# --- helpers ----------------------------------------------------------------------------


def _utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds)) if seconds else ""


def text_lang(text: str) -> str:
    """A ``lang`` for text in Chinese, Japanese or Korean script, so the browser picks a
    matching font for it (Han characters are drawn differently per language)."""
    lang = ""
    for c in text:
        o = ord(c)
        if 0x3040 <= o <= 0x30FF:
            return "ja"  # kana: Japanese, whatever Han characters surround it
        if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
            return "ko"
        if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            lang = "zh"
    return lang


def _label(value_type: str) -> tuple[str, str]:
    known = _LABELS.get(value_type.casefold())
    if known is not None:
        return known
    words = _CAMEL.sub(" ", value_type).replace("_", " ").strip()
    return (words[:1].upper() + words[1:].lower() if words else value_type), ""


def _http_url(text: str) -> str:
    """``text`` as a URL safe to follow or link to, or "" when it is not http(s)."""
    candidate = text.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in candidate):
        return ""
    try:
        parts = urllib.parse.urlsplit(candidate)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    # Non-ASCII (an IRI) is percent-encoded: a Location header is ASCII.
    return urllib.parse.quote(candidate, safe=":/?#[]@!$&'()*+,;=%~")


def redirect_target(values: Iterable[record_pb2.Value]) -> str:
    """The first (lowest index) URL value holding an http(s) URL, or ""."""
    for value in sorted(values, key=lambda v: v.index):
        if value.type.casefold() == "url" and value.WhichOneof("data") == "text":
            url = _http_url(value.text)
            if url:
                return url
    return ""


def _row(value: record_pb2.Value) -> Row:
    label, label_zh = _label(value.type)
    kind = value.WhichOneof("data")
    if kind == "text":
        text = value.text
    elif kind == "binary":
        shown = value.binary[:32].hex()
        text = f"{len(value.binary)} bytes: {shown}{'…' if len(value.binary) > 32 else ''}"
    elif kind == "admin":
        text = (f"{value.admin.index}:{value.admin.handle} "
                f"(permissions {value.admin.permissions})")
    elif kind is None:
        text = ""
    else:  # a kind added to the contract later (HS_VLIST, ...): its fields as text
        text = str(getattr(value, kind)).strip().replace("\n", "; ")
    href = _http_url(text) if kind == "text" and value.type.casefold() == "url" else ""
    return Row(label, label_zh, value.type, value.index, text, text_lang(text), href)


def classify(record: record_pb2.Record) -> RecordView:
    """Sort the values into what the page shows where."""
    title = ""
    title_lang = ""
    facts: dict[str, list[Row]] = {}
    dates: list[Row] = []
    view = RecordView(record.handle, "", "")
    for value in sorted(record.values, key=lambda v: v.index):
        row = _row(value)
        folded = value.type.casefold()
        if folded == "productname" and not title and row.text:
            title, title_lang = row.text, row.lang
        elif value.type.upper().startswith("HS_") or value.WhichOneof("data") != "text":
            view.technical.append(row)
        elif folded == "url":
            (view.links if row.href else view.details).append(row)
        elif folded in _FACTS:
            facts.setdefault(folded, []).append(row)
        elif folded.endswith("date"):
            dates.append(row)
        else:
            view.details.append(row)
    view.title, view.title_lang = (title, title_lang) if title else (record.handle, "")
    view.facts = [row for name in _FACTS for row in facts.get(name, [])] + dates
    return view


def wants_json(accept: str | None) -> bool:
    """True when ``Accept`` prefers ``application/json`` to HTML.

    An explicit ``application/json`` wins over ``text/html`` reached only through a
    wildcard (``application/json, */*`` is a JSON client); browsers list ``text/html``
    first and get the page."""
    if not accept:
        return False
    json_q = 0.0
    html_q = {"text/html": -1.0, "text/*": -1.0, "*/*": -1.0}
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(number)))
                except ValueError:
                    q = 0.0
        if media == "application/json":
            json_q = max(json_q, q)
        elif media in html_q:
            html_q[media] = max(html_q[media], q)
    explicit_html = html_q["text/html"]
    html = explicit_html if explicit_html >= 0 else max(html_q["text/*"], html_q["*/*"])
    if json_q <= 0:
        return False
    return json_q > html or (json_q == html and explicit_html < 0)


def _filters(query: dict[str, list[str]]) -> tuple[list[str], list[int]]:
    """``?type=`` and ``?index=`` as /api/handles reads them (indexes may also be
    comma-separated), so the page and the JSON answer pick the same values."""
    return [t for t in query.get("type", []) if t], query_ints(query, "index")


# --- the routes -------------------------------------------------------------------------


class ScanProxy:
    """The scan-to-resolve page (the fallback route), QR labels and static assets.

    ``public_url`` (for example ``https://id.example.com``), when set, is the base every
    label encodes; when empty it is derived from each request (see the module docstring).
    """

    def __init__(self, core: Core, *, node_id: str = "", public_url: str = "",
                 templates: Path = TEMPLATES, static: Path = STATIC) -> None:
        self.core = core
        self.node_id = node_id
        self.public_url = normalise_base_url(public_url) if public_url else ""
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)),
                                      autoescape=True, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True)
        self.env.filters["urlpath"] = lambda text: urllib.parse.quote(str(text), safe="/")
        # Loaded now: a broken template stops the node at start, not a visitor later.
        self.templates = {name: self.env.get_template(name) for name in
                          ("home.html", "record.html", "not_found.html", "error.html")}
        self._redirect_page = self.env.from_string(
            '<!doctype html><title>Redirect</title><a href="{{ u }}">{{ u }}</a>\n')
        self.assets: dict[str, tuple[bytes, str]] = {}
        for path in sorted(static.iterdir()) if static.is_dir() else ():
            if path.is_file() and path.suffix in _STATIC_TYPES:
                self.assets[path.name] = (path.read_bytes(), _STATIC_TYPES[path.suffix])
        css = self.assets.get("scan.css", (b"", ""))[0]
        # A content-addressed URL: the stylesheet can be cached for a year and a new
        # release is still picked up at once.
        self.css_url = f"{STATIC_PREFIX}scan.css?v={hashlib.sha256(css).hexdigest()[:12]}"

    def add_to(self, routes: Routes) -> None:
        routes.fallback = Route(self.page)
        routes.prefixes.append((QR_PREFIX, Route(self.qr)))
        routes.prefixes.append((STATIC_PREFIX, Route(self.static)))

    # --- GET /{handle} ------------------------------------------------------------------

    def page(self, request: Request) -> Reply:
        if request.path == "/":
            return self._home(request)
        if wants_json(request.header("accept")):
            return self._json(request)
        try:
            text = handle_from_path(request.raw_path, b"/")
            types, indexes = _filters(request.query)
        except IdnodeError as exc:
            return self._error(request.path[1:], exc)
        caller = caller_of(request)
        try:
            entry = self.core.resolve(caller, text, types=types, indexes=indexes)
        except IdnodeError as exc:
            return self._error(text, exc, filtered=bool(types or indexes))
        record = record_pb2.Record.FromString(entry.payload)
        if not request.flag("noredirect"):
            target = redirect_target(record.values)
            if target:
                return self._redirect(target)
        signature = self._signature(entry.payload, entry.signature, entry.key_id,
                                    entry.algorithm)
        return self._render(200, "record.html", view=classify(record), record=record,
                            etag=entry.etag, signature=signature,
                            filtered=bool(types or indexes), types=types, indexes=indexes,
                            updated=_utc(max((v.timestamp.seconds for v in record.values),
                                             default=0)))

    def _json(self, request: Request) -> Reply:
        """Exactly what ``GET /api/handles/{handle}`` answers, errors included."""
        text = request.raw_path[1:].decode("latin-1")  # echoed if it cannot be decoded
        try:
            text = handle_from_path(request.raw_path, b"/")
            return resolve_reply(self.core, request, text)
        except IdnodeError as exc:
            return error_reply(exc, text)

    def _home(self, request: Request) -> Reply:
        # Leading slashes dropped: "//host" would be a redirect to another site.
        wanted = (request.query.get("handle") or [""])[-1].strip().lstrip("/")
        if wanted:  # the form on the page: go to the identifier's own URL
            return self._redirect("/" + urllib.parse.quote(wanted, safe="/"))
        return self._render(200, "home.html")

    def _redirect(self, location: str) -> Reply:
        body = self._redirect_page.render(u=location).encode()
        return Reply(302, body, HTML, ((b"location", location.encode("ascii")),
                                       (b"cache-control", b"no-cache"),
                                       (b"referrer-policy", b"no-referrer")))

    def _error(self, handle: str, exc: IdnodeError, *, filtered: bool = False) -> Reply:
        mapping = mapping_for(exc)
        context = {"handle": handle, "message": public_message(exc),
                   "code": mapping.handle_code,
                   "code_name": _HANDLE_CODES.get(mapping.handle_code, "ERROR")}
        if isinstance(exc, NotFound):
            return self._render(mapping.http_status, "not_found.html",
                                values_missing=isinstance(exc, ValuesNotFound) and filtered,
                                referral=exc.referral_prefix, **context)
        page = self._render(mapping.http_status, "error.html",
                            invalid=isinstance(exc, InvalidIdentifier), **context)
        extra = error_headers(exc)  # Retry-After on a 429
        return Reply(page.status, page.body, page.content_type, page.headers + extra) \
            if extra else page

    def _render(self, status: int, template: str, **context: object) -> Reply:
        body = self.templates[template].render(css_url=self.css_url, node_id=self.node_id,
                                               **context)
        return Reply(status, body.encode("utf-8"), HTML, _PAGE_HEADERS)

    def _signature(self, payload: bytes, signature: bytes, key_id: str,
                   algorithm: str) -> Signature:
        """Verify with the same code partners use (node.verify), so "verified" on the page
        means what it means for them."""
        keys = [_key_message(k) for k in self.core.signing_keys()]
        signed = record_pb2.SignedRecord(payload=payload, signature=signature, key_id=key_id,
                                         algorithm=algorithm)
        try:
            record = verify(signed, keys)
        except VerificationError as exc:
            return Signature(False, key_id, algorithm, "", "", exc.reason)
        return Signature(True, key_id, algorithm, _utc(record.signed_at.seconds),
                         _utc(record.expires_at.seconds))

    # --- GET /api/qr/{handle}.png|.svg --------------------------------------------------

    def qr(self, request: Request) -> Reply:
        rest = request.raw_path[len(QR_PREFIX):]
        stem, dot, ext = rest.rpartition(b".")
        kind_text = ext.decode("latin-1").lower()
        if not dot or not stem or kind_text not in KINDS:
            return Reply.json(404, {"responseCode": 2, "handle": "",
                                    "message": "QR labels are /api/qr/{handle}.png or "
                                               "/api/qr/{handle}.svg"})
        kind: Kind = "png" if kind_text == "png" else "svg"
        try:
            handle = handle_from_path(stem, b"")
        except IdnodeError as exc:
            return error_reply(exc, stem.decode("latin-1"))
        try:
            scale = self._scale(request.query.get("scale", []))
            base = self._base_url(request)
        except LabelError as exc:
            return Reply.json(400, {"responseCode": 2, "handle": handle, "message": str(exc)})
        try:
            entry = self.core.resolve(caller_of(request), handle)
            registered = record_pb2.Record.FromString(entry.payload).handle or handle
        except ValuesNotFound:  # it exists; the caller just sees none of its values
            registered = handle
        except IdnodeError as exc:
            return error_reply(exc, handle)
        url = proxy_url(base, registered)
        name = file_name(registered, kind)
        disposition = (f'inline; filename="{urllib.parse.quote(name, safe="._-%")}"; '
                       f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}")
        return Reply(200, render(url, kind, scale=scale), CONTENT_TYPES[kind], (
            (b"cache-control", b"public, max-age=300"),
            (b"vary", b"host, x-forwarded-proto"),
            (b"content-disposition", disposition.encode("ascii")),
            (b"x-content-type-options", b"nosniff"),
            # An SVG opened directly must not run anything (it has no script anyway).
            (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'")))

    @staticmethod
    def _scale(values: Sequence[str]) -> int:
        if not values:
            return DEFAULT_SCALE
        text = values[-1].strip()
        if not text.isascii() or not text.isdigit():
            raise LabelError("scale must be an integer from 1 to 40")
        return check_scale(int(text))

    def _base_url(self, request: Request) -> str:
        if self.public_url:
            return self.public_url
        host = (request.header("host") or "").strip()
        if not host or _HOST.fullmatch(host) is None:
            raise LabelError("cannot build the label URL: the request has no valid Host "
                             "header (or configure the node's public URL)")
        proto = (request.header("x-forwarded-proto") or "http").split(",")[0].strip().lower()
        return f"{proto if proto in ('http', 'https') else 'http'}://{host}"

    # --- GET /static/{name} -------------------------------------------------------------

    def static(self, request: Request) -> Reply:
        asset = self.assets.get(request.path[len(STATIC_PREFIX):])
        if asset is None:
            return Reply(404, b"not found\n", "text/plain; charset=utf-8")
        body, content_type = asset
        return Reply(200, body, content_type, (
            (b"cache-control", b"public, max-age=31536000, immutable"),
            (b"x-content-type-options", b"nosniff")))


def _key_message(key: PublishedKey) -> record_pb2.SigningKey:
    message = record_pb2.SigningKey(key_id=key.key_id, algorithm=key.algorithm,
                                    public_key=key.public_der, active=key.active)
    message.not_before.seconds = key.not_before
    if key.not_after is not None:
        message.not_after.seconds = key.not_after
    return message


__all__ = ["RecordView", "Row", "ScanProxy", "Signature", "classify", "redirect_target",
           "text_lang", "wants_json"]
