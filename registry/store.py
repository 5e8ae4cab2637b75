"""The storage interface every backend implements (see tests/contract/test_store_contract.py).

Backends are deliberately dumb: they apply one write atomically (precondition check,
values, version bump, change-log row, idempotency row) and answer lookups. Rules about
who may write what, and how values merge, live in :mod:`registry.registrar`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from registry.access.principals import StoredPrincipal
from registry.errors import (
    AlreadyExists,
    IdnodeError,
    InvalidArgument,
    NotFound,
    StaleEtag,
)
from registry.identifier import Prefix
from registry.record import Change, Record, Write, WriteResult

# Idempotency keys are kept at least this long (the contract says 24 h).
REQUEST_RETENTION_SECONDS = 48 * 3600


@dataclass(frozen=True, slots=True)
class Counts:
    prefixes: int
    identifiers: int


class Store(Protocol):
    """Durable state of the node. Every method is safe to call from several threads."""

    def get(self, key: str) -> Record | None:
        """The record whose normalised key is ``key``."""
        ...

    def apply(self, write: Write, now: int) -> WriteResult:
        """Apply one write atomically together with its change-log row.

        Raises AlreadyExists / NotFound / StaleEtag when the precondition fails, and
        InvalidArgument when ``write.request`` repeats a request id with other content.
        A repeat with the same content returns the first result with ``replayed=True``.
        """
        ...

    def apply_many(self, writes: Sequence[Write], now: int) -> list[WriteResult | IdnodeError]:
        """Apply independent writes in one transaction; a failed check fails that row only."""
        ...

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        """``(key, display handle)`` under ``prefix_key``, ordered by key, after ``after_key``."""
        ...

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        ...

    def last_sequence(self) -> int:
        ...

    def counts(self) -> Counts:
        ...

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        ...

    def add_principal(self, principal: StoredPrincipal) -> None:
        """Add a principal; AlreadyExists when its id is taken."""
        ...

    def allocate_prefix(self, prefix: Prefix, owner: StoredPrincipal, admin_record: Write,
                        now: int) -> WriteResult:
        """Create the prefix, its owner principal and its ADMIN record in one transaction."""
        ...

    def has_prefix(self, prefix_key: str) -> bool:
        ...

    def close(self) -> None:
        ...


def check_precondition(current: Record | None, write: Write) -> None:
    """Raise the error a backend reports when ``write`` may not apply to ``current``."""
    pre = write.precondition
    name = str(write.handle)
    if pre.absent:
        if current is not None:
            raise AlreadyExists(f"identifier {name} already exists")
        return
    if current is None:
        raise NotFound(f"identifier {name} not found")
    if pre.sequence is not None and current.sequence != pre.sequence:
        raise StaleEtag(
            f"etag is stale: {name} was changed since (now version {current.version}, "
            f"etag {current.etag})")


def replay_or_conflict(write: Write, fingerprint: str, result: WriteResult) -> WriteResult:
    """A request id seen before: the first result for the same content, else an error."""
    assert write.request is not None
    if fingerprint != write.request.fingerprint:
        raise InvalidArgument(
            f"request_id {write.request.request_id!r} was already used for a different request")
    return WriteResult(result.handle, result.version, result.etag, result.sequence,
                       replayed=True, key=write.handle.key)
