"""Page tokens: opaque to clients, a few fields to the node.

One codec for every paged listing (identifiers under a prefix, applications, the audit
log): the fields joined by newlines, URL-safe base64 without padding. The first field
names the listing, so a token is only accepted by the listing that issued it; anything
that does not decode to exactly the expected fields is the same clear error.
"""

from __future__ import annotations

import base64
import binascii

from registry.errors import InvalidArgument

MALFORMED = "page_token is malformed (not issued by this node)"


def encode(kind: str, *fields: str) -> str:
    raw = "\n".join((kind, *fields)).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(token: str, kind: str, count: int) -> list[str]:
    """The ``count`` fields after ``kind``; InvalidArgument for anything else."""
    try:  # validate=True: characters outside the URL-safe alphabet are an error
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_",
                               validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(MALFORMED) from None
    parts = raw.split("\n")
    if len(parts) != count + 1 or parts[0] != kind:
        raise InvalidArgument(MALFORMED)
    return parts[1:]


def positive_int(text: str) -> int:
    """A sequence or id field: a positive decimal integer."""
    if not text.isdigit() or int(text) <= 0:
        raise InvalidArgument(MALFORMED)
    return int(text)


__all__ = ["MALFORMED", "decode", "encode", "positive_int"]
