"""QR labels: the image that takes a phone from a part to its record.

A label encodes the **proxy URL** of an identifier, ``<base>/<handle>`` (for example
``https://id.example.com/88.118.8/PN-0001``); scanning it opens the scan-to-resolve page
(node.web.scan), which redirects to the record's URL value or shows the record. The URL
is the contract printed on metal and paper for years, so it is built in one place, here,
for both the HTTP endpoint (``GET /api/qr/{handle}.png|.svg``) and the bulk command
(``idnode qr``).

Choices, and why:

* **segno**, pure Python, typed, maintained, writes PNG and SVG itself (no Pillow).
* Error correction **M** at least (segno raises it further when the symbol has room for
  free): labels on parts get scratched and greasy; L recovers too little.
* Never **Micro QR**: many phone camera apps cannot read it.
* A quiet zone of 4 modules (the standard's minimum): scanners need it around a label.
* ``scale`` is the size of one module (pixels for PNG, user units for SVG), bounded to
  ``MIN_SCALE..MAX_SCALE`` so a request cannot ask for a huge image.
* The handle is percent-encoded in the URL path except ``/`` (suffixes may contain
  ``/``, and the proxy takes the raw form); ``%``, ``?``, ``#`` and non-ASCII suffix
  characters are encoded so the URL survives any scanner app.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.parse
from typing import Literal

import segno

Kind = Literal["png", "svg"]
KINDS: tuple[Kind, ...] = ("png", "svg")
CONTENT_TYPES: dict[Kind, str] = {"png": "image/png", "svg": "image/svg+xml"}

DEFAULT_SCALE = 8
MIN_SCALE = 1
MAX_SCALE = 40
BORDER = 4
ERROR_LEVEL = "m"

# 255 bytes is the file-name limit of every common file system; keep room for ".svg".
MAX_FILE_STEM_BYTES = 200

_SAFE_FILE_CHARS = re.compile(r"[0-9A-Za-z.\-]")


class LabelError(ValueError):
    """A label cannot be made as asked (bad scale, bad base URL); the message says why."""


def check_scale(scale: int) -> int:
    """``scale`` if it is within bounds, else :class:`LabelError` naming them."""
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise LabelError(f"scale must be an integer from {MIN_SCALE} to {MAX_SCALE}")
    return scale


def normalise_base_url(base: str) -> str:
    """``base`` without a trailing ``/``, after checking it is an absolute http(s) URL
    with a host and no query or fragment (a label URL is ``<base>/<handle>``)."""
    text = base.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LabelError(f"base URL {base!r} must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise LabelError(f"base URL {base!r} must not have a query or a fragment")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise LabelError(f"base URL {base!r} must not contain spaces or control characters")
    return text.rstrip("/")


def proxy_url(base: str, handle: str) -> str:
    """The URL a label encodes: ``base`` (already normalised) + ``/`` + the handle."""
    return f"{base}/{urllib.parse.quote(handle, safe='/')}"


def render(url: str, kind: Kind, *, scale: int = DEFAULT_SCALE) -> bytes:
    """The QR image of ``url`` as PNG or SVG bytes."""
    check_scale(scale)
    code = segno.make(url, error=ERROR_LEVEL, micro=False, boost_error=True)
    out = io.BytesIO()
    if kind == "svg":
        # The title makes the label readable to screen readers and in file browsers.
        code.save(out, kind="svg", scale=scale, border=BORDER, xmldecl=True, title=url)
    else:
        code.save(out, kind="png", scale=scale, border=BORDER)
    return out.getvalue()


def file_name(handle: str, kind: Kind) -> str:
    """A safe, readable file name for ``handle``'s label: ``88.118.8_PN-0001.png``.

    ``/`` becomes ``_``; ASCII letters, digits, ``.`` and ``-`` and non-ASCII letters and
    digits (Chinese suffixes stay readable) are kept; anything else, ``_`` and ``%``
    included, becomes ``%XX`` of its UTF-8 bytes, so two different handles never share a
    name (except spellings differing in case, which are the same identifier). Over-long
    names are cut and end in a digest of the whole handle."""
    out: list[str] = []
    for c in handle:
        if c == "/":
            out.append("_")
        elif _SAFE_FILE_CHARS.fullmatch(c) or (not c.isascii() and c.isalnum()):
            out.append(c)
        else:
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8")))
    stem = "".join(out)
    if len(stem.encode("utf-8")) > MAX_FILE_STEM_BYTES:
        digest = hashlib.sha256(handle.encode("utf-8")).hexdigest()[:16]
        cut = stem.encode("utf-8")[: MAX_FILE_STEM_BYTES - 17].decode("utf-8", "ignore")
        stem = f"{cut}~{digest}"
    return f"{stem}.{kind}"


__all__ = ["CONTENT_TYPES", "DEFAULT_SCALE", "KINDS", "MAX_SCALE", "MIN_SCALE", "Kind",
           "LabelError", "check_scale", "file_name", "normalise_base_url", "proxy_url",
           "render"]
