"""The one table that maps domain errors to a status (gRPC's names and numbers), an
HTTP status, a Handle response code and an SNMS envelope status. Every door uses it;
nothing else decides.
No transport is imported here: the gRPC door turns ``status`` into its StatusCode."""

from __future__ import annotations

import math
from dataclasses import dataclass

from registry import errors as e


@dataclass(frozen=True, slots=True)
class Mapping:
    status: str  # the canonical status name (gRPC's), e.g. "INVALID_ARGUMENT"
    code: int  # its number on the gRPC wire
    http_status: int
    handle_code: int
    snms_status: int  # the SNMS envelope's status (node/web/snms.py)


INTERNAL = Mapping("INTERNAL", 13, 500, 2, -4)


class UnsupportedMediaType(e.InvalidArgument):
    """An HTTP body in a content type the route does not take (JSON routes)."""


# Most specific first: the first class an error is an instance of wins.
TABLE: tuple[tuple[type[e.IdnodeError], Mapping], ...] = (
    (UnsupportedMediaType, Mapping("INVALID_ARGUMENT", 3, 415, 2, -2)),
    (e.InvalidIdentifier, Mapping("INVALID_ARGUMENT", 3, 400, 102, -2)),
    (e.InvalidArgument, Mapping("INVALID_ARGUMENT", 3, 400, 2, -2)),
    (e.ValuesNotFound, Mapping("NOT_FOUND", 5, 404, 200, -2)),
    (e.NotFound, Mapping("NOT_FOUND", 5, 404, 100, -2)),
    (e.AlreadyExists, Mapping("ALREADY_EXISTS", 6, 409, 101, -2)),
    (e.StaleEtag, Mapping("ABORTED", 10, 409, 2, -2)),
    (e.Unauthenticated, Mapping("UNAUTHENTICATED", 16, 401, 402, -1)),
    (e.PermissionDenied, Mapping("PERMISSION_DENIED", 7, 403, 402, -3)),
    (e.ResourceExhausted, Mapping("RESOURCE_EXHAUSTED", 8, 429, 2, -2)),
    (e.Unavailable, Mapping("UNAVAILABLE", 14, 503, 2, -4)),
)


def mapping_for(exc: BaseException) -> Mapping:
    for cls, mapping in TABLE:
        if isinstance(exc, cls):
            if isinstance(exc, e.NotFound) and cls is e.NotFound and exc.referral_prefix:
                return Mapping(mapping.status, mapping.code, mapping.http_status, 301,
                               mapping.snms_status)
            return mapping
    return INTERNAL


def retry_after(exc: BaseException) -> int | None:
    """The retry hint of an error in whole seconds (rounded up, at least 1), or None.
    Doors send it as gRPC ``retry-after`` trailing metadata and HTTP ``Retry-After``."""
    if isinstance(exc, e.ResourceExhausted) and exc.retry_after_seconds > 0:
        return max(1, math.ceil(exc.retry_after_seconds))
    return None


def public_message(exc: BaseException) -> str:
    """What the caller may read: our own messages, never internals."""
    if isinstance(exc, e.IdnodeError):
        return exc.message
    return "internal error (logged on the node)"
