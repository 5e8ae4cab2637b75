"""The one exception tree of idnode.

Every failure a caller can cause or observe is one of these. Transports (gRPC, HTTP)
translate them with a single table in ``node.errors``; anything else escaping a handler
is an internal error and is reported to the caller without details.

    IdnodeError
    ├── InvalidArgument          malformed identifier, value or request
    │   ├── InvalidIdentifier
    │   └── InvalidValue
    ├── NotFound                 identifier unknown or not served here
    │   └── ValuesNotFound       no value matches the requested types/indexes
    ├── AlreadyExists            identifier (or prefix) already exists
    ├── StaleEtag                the etag does not match the current record
    ├── Unauthenticated          no or bad credentials
    ├── PermissionDenied         credentials without rights on the prefix
    ├── ResourceExhausted        over a limit, overloaded, rate-limited
    └── Unavailable              a dependency is down and there is no way to answer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class IdnodeError(Exception):
    """Base of every error idnode reports to a caller.

    ``message`` is safe to show to the caller: it names the problem and never carries
    internal details (SQL, paths, stack traces).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule broken, for callers that want a list rather than words: a value of a
    record checked against its metadata template (registry.templates), or a field of a
    template being put. Doors surface them beside the message (gRPC trailing metadata
    ``idnode-violations-bin``, the Handle REST error body's ``violations``, BulkRegister's
    per-row ``ItemError.violations``)."""

    index: int  # the value's index (an item's idIndex); 0 when it is about no one index
    type: str  # the item's idType, else the value's type ('' when neither)
    item: str  # the item's name ('' when no item of the template matches)
    rule: str  # e.g. required, idType, maxLength, number (registry.templates lists them)
    value: str  # the offending data, cut to 64 characters ('' when there is none)
    detail: str  # the reason in words

    def describe(self) -> str:
        """``index 2003 (batchNo): maxLength: '…' has 17 characters, at most 16``."""
        where = f"index {self.index}" if self.index else self.type
        if self.item:
            where += f" ({self.item})"
        elif self.index and self.type:
            where += f" ({self.type})"
        return f"{where}: {self.rule}: {self.detail}" if where else \
            f"{self.rule}: {self.detail}"


class InvalidArgument(IdnodeError):
    """A request, identifier or value breaks a rule; the message says which.

    ``violations`` lists every rule broken when there were several to report at once
    (the message lists them too, the first few in full)."""

    def __init__(self, message: str, *, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.violations = tuple(violations)


class InvalidIdentifier(InvalidArgument):
    """An identifier does not follow the grammar."""


class InvalidValue(InvalidArgument):
    """A value of a record breaks a rule (index, type, data, size)."""


class NotFound(IdnodeError):
    """The identifier does not exist, or its prefix is not served by this node."""

    def __init__(self, message: str, *, referral_prefix: str = "") -> None:
        super().__init__(message)
        self.referral_prefix = referral_prefix


class AlreadyExists(IdnodeError):
    """The identifier or prefix exists already."""


class StaleEtag(IdnodeError):
    """The caller's etag is not the record's current one: someone wrote in between."""


class Unauthenticated(IdnodeError):
    """Credentials are missing where required, malformed, or wrong."""


class PermissionDenied(IdnodeError):
    """The principal is known but has no rights on the identifier's prefix."""


class ReadOnly(PermissionDenied):
    """This node takes no writes at all (a mirror of another node): refused before any
    credential is checked, for everyone, with the same status as a missing right, since
    retrying here can never succeed. The message says where writes go."""


class ResourceExhausted(IdnodeError):
    """A size or rate limit was exceeded, or the node is overloaded.

    ``retry_after_seconds`` (> 0) is when trying again may succeed; every door sends it
    as its retry hint (gRPC ``retry-after`` trailing metadata, HTTP ``Retry-After``), in
    whole seconds rounded up. 0 means no hint.
    """

    def __init__(self, message: str, *, retry_after_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(IdnodeError):
    """A dependency needed to answer is down."""


class ValuesNotFound(NotFound):
    """The identifier exists but has no values matching the requested types or indexes."""
