"""An in-memory store: the reference implementation of the contract, for tests and
throw-away nodes. Nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from registry.access.principals import StoredPrincipal, identity_key
from registry.errors import AlreadyExists, IdnodeError
from registry.identifier import Prefix
from registry.record import Change, Record, Write, WriteResult, etag_of
from registry.store import (
    REQUEST_RETENTION_SECONDS,
    Counts,
    check_precondition,
    replay_or_conflict,
)


class MemoryStore:
    """See :class:`registry.store.Store`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, Record] = {}
        self._changes: list[Change] = []
        self._requests: dict[tuple[str, str], tuple[str, WriteResult, int]] = {}
        self._principals: dict[str, StoredPrincipal] = {}
        self._prefixes: set[str] = set()
        self._seq = 0

    def get(self, key: str) -> Record | None:
        return self._records.get(key)

    def apply(self, write: Write, now: int) -> WriteResult:
        with self._lock:
            return self._apply(write, now)

    def apply_many(self, writes: Sequence[Write], now: int) -> list[WriteResult | IdnodeError]:
        out: list[WriteResult | IdnodeError] = []
        with self._lock:
            for write in writes:
                try:
                    out.append(self._apply(write, now))
                except IdnodeError as exc:
                    out.append(exc)
        return out

    def _apply(self, write: Write, now: int) -> WriteResult:
        if write.request is not None:
            seen = self._requests.get((write.request.scope, write.request.request_id))
            if seen is not None and seen[2] >= now - REQUEST_RETENTION_SECONDS:
                return replay_or_conflict(write, seen[0], seen[1])
        key = write.handle.key
        current = self._records.get(key)
        check_precondition(current, write)
        self._seq += 1
        seq = self._seq
        handle = current.handle if current is not None else write.handle
        if write.values is None:
            del self._records[key]
            result = WriteResult(str(handle), 0, "", seq, key=key)
        else:
            version = current.version + 1 if current is not None else 1
            self._records[key] = Record(handle, write.values, version, seq, now)
            result = WriteResult(str(handle), version, etag_of(seq), seq, key=key)
        self._changes.append(Change(
            seq, write.operation, str(handle), key, result.version, write.values or (), now,
            write.principal, write.request.request_id if write.request else ""))
        if write.request is not None:
            self._requests[(write.request.scope, write.request.request_id)] = (
                write.request.fingerprint, result, now)
        return result

    def list_keys(self, prefix_key: str, after_key: str, limit: int) -> list[tuple[str, str]]:
        with self._lock:
            keys = sorted(k for k, r in self._records.items()
                          if r.handle.prefix_key == prefix_key and k > after_key)
            return [(k, str(self._records[k].handle)) for k in keys[:limit]]

    def changes_since(self, sequence: int, limit: int) -> list[Change]:
        with self._lock:
            return [c for c in self._changes if c.sequence > sequence][:limit]

    def last_sequence(self) -> int:
        return self._seq

    def counts(self) -> Counts:
        return Counts(len(self._prefixes), len(self._records))

    def get_principal(self, identity_key: str) -> StoredPrincipal | None:
        return self._principals.get(identity_key)

    def add_principal(self, principal: StoredPrincipal) -> None:
        with self._lock:
            key = identity_key(principal.principal.id)
            if key in self._principals:
                raise AlreadyExists(f"principal {principal.principal.id} already exists")
            self._principals[key] = principal

    def allocate_prefix(self, prefix: Prefix, owner: StoredPrincipal, admin_record: Write,
                        now: int) -> WriteResult:
        with self._lock:
            if prefix.key in self._prefixes:
                raise AlreadyExists(f"prefix {prefix.text} is already allocated")
            key = identity_key(owner.principal.id)
            if key in self._principals:
                raise AlreadyExists(f"principal {owner.principal.id} already exists")
            if admin_record.handle.key in self._records:
                raise AlreadyExists(f"identifier {admin_record.handle} already exists")
            result = self._apply(admin_record, now)
            self._prefixes.add(prefix.key)
            self._principals[key] = owner
            return result

    def has_prefix(self, prefix_key: str) -> bool:
        return prefix_key in self._prefixes

    def close(self) -> None:
        pass
