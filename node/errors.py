"""The one table that maps domain errors to gRPC status, HTTP status and Handle
response codes. Every servicer and the HTTP gateway use it; nothing else decides."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from registry import errors as e


@dataclass(frozen=True, slots=True)
class Mapping:
    grpc_code: grpc.StatusCode
    http_status: int
    handle_code: int


INTERNAL = Mapping(grpc.StatusCode.INTERNAL, 500, 2)


class Unimplemented(e.IdnodeError):
    """A method of the contract that this node does not implement yet."""


# Most specific first: the first class an error is an instance of wins.
TABLE: tuple[tuple[type[e.IdnodeError], Mapping], ...] = (
    (e.InvalidIdentifier, Mapping(grpc.StatusCode.INVALID_ARGUMENT, 400, 102)),
    (e.InvalidArgument, Mapping(grpc.StatusCode.INVALID_ARGUMENT, 400, 2)),
    (e.ValuesNotFound, Mapping(grpc.StatusCode.NOT_FOUND, 404, 200)),
    (e.NotFound, Mapping(grpc.StatusCode.NOT_FOUND, 404, 100)),
    (e.AlreadyExists, Mapping(grpc.StatusCode.ALREADY_EXISTS, 409, 101)),
    (e.StaleEtag, Mapping(grpc.StatusCode.ABORTED, 409, 2)),
    (e.Unauthenticated, Mapping(grpc.StatusCode.UNAUTHENTICATED, 401, 402)),
    (e.PermissionDenied, Mapping(grpc.StatusCode.PERMISSION_DENIED, 403, 402)),
    (e.ResourceExhausted, Mapping(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, 2)),
    (e.Unavailable, Mapping(grpc.StatusCode.UNAVAILABLE, 503, 2)),
    (Unimplemented, Mapping(grpc.StatusCode.UNIMPLEMENTED, 501, 2)),
)


def mapping_for(exc: BaseException) -> Mapping:
    for cls, mapping in TABLE:
        if isinstance(exc, cls):
            if isinstance(exc, e.NotFound) and cls is e.NotFound and exc.referral_prefix:
                return Mapping(mapping.grpc_code, mapping.http_status, 301)
            return mapping
    return INTERNAL


def public_message(exc: BaseException) -> str:
    """What the caller may read: our own messages, never internals."""
    if isinstance(exc, e.IdnodeError):
        return exc.message
    return "internal error (logged on the node)"
