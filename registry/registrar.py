"""The registry's use cases: register, update, delete, list, allocate prefixes.

Transport-neutral: servicers parse the wire into domain values, call one method here,
and translate the result (or the :mod:`registry.errors` exception) back.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from registry.access.policy import AccessPolicy, Action, PrefixRolePolicy, Target
from registry.access.principals import (
    ADMIN_INDEX,
    ADMIN_SUFFIX,
    Principal,
    Role,
    StoredPrincipal,
    admin_identity,
    check_new_secret,
    generate_secret,
    hash_secret,
    identity_key,
)
from registry.errors import (
    AlreadyExists,
    IdnodeError,
    InvalidArgument,
    NotFound,
    StaleEtag,
    Unavailable,
    ValuesNotFound,
)
from registry.identifier import Handle, Prefix
from registry.record import (
    ABSENT,
    Operation,
    Precondition,
    Record,
    RequestKey,
    Write,
    WriteResult,
    parse_etag,
    values_to_json,
)
from registry.store import Store
from registry.values import (
    DEFAULT_TTL_SECONDS,
    AdminRef,
    Value,
    stamp,
    validate_values,
)

MAX_REQUEST_ID_CHARS = 128
_PUT_ATTEMPTS = 3
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
ADMIN_VALUE_INDEX = 100


@dataclass(frozen=True, slots=True)
class Allocation:
    prefix: str
    owner: str
    generated_secret: str


class BulkRow(NamedTuple):
    handle: str
    values: tuple[Value, ...]


class Registrar:
    """Rules of writing: who may write where, how values merge, idempotency."""

    def __init__(self, store: Store, node_prefix: Prefix, policy: AccessPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.node_prefix = node_prefix
        self.policy: AccessPolicy = policy or PrefixRolePolicy(node_prefix)
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    # --- who may do what -----------------------------------------------------------------

    def serves(self, prefix_key: str) -> bool:
        return self.node_prefix.contains(prefix_key)

    def check_served(self, handle: Handle) -> None:
        if not self.serves(handle.prefix_key):
            raise NotFound(f"prefix {handle.prefix} is not served by this node "
                           f"(it serves {self.node_prefix.text})", referral_prefix=handle.prefix)

    def _authorize(self, principal: Principal | None, action: Action,
                   handle: Handle) -> Principal:
        """Credentials first (an anonymous write is Unauthenticated wherever it aims), then
        whether this node serves the prefix, then the policy's verdict."""
        if principal is None:
            return self.policy.check(None, action, Target(handle.prefix_key))
        self.check_served(handle)
        return self.policy.check(principal, action,
                                 Target(handle.prefix_key, handle.prefix))

    def can_read_private(self, principal: Principal | None, handle: Handle) -> bool:
        """Whether ``principal`` sees values without public_read on ``handle``."""
        return principal is not None and self.policy.allows(
            principal, Action.READ_PRIVATE, Target(handle.prefix_key, handle.prefix))

    def ensure_node_admin(self, secret: str) -> bool:
        """Create ``300:<node prefix>/ADMIN`` with ``secret`` unless it exists; True if created."""
        identity = admin_identity(self.node_prefix)
        if self.store.get_principal(identity_key(identity)) is not None:
            return False
        check_new_secret(secret)
        principal = Principal(identity, Role.NODE_ADMIN, self.node_prefix.key)
        self.store.add_principal(StoredPrincipal(principal, hash_secret(secret), self._now()))
        return True

    # --- writes --------------------------------------------------------------------------

    @staticmethod
    def _request_key(principal: Principal, request_id: str, op: Operation, handle: Handle,
                     content: str) -> RequestKey | None:
        if not request_id:
            return None
        if len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
            raise InvalidArgument(
                f"request_id must be 1..{MAX_REQUEST_ID_CHARS} printable characters")
        digest = hashlib.sha256(f"{op.value}\n{handle.key}\n{content}".encode()).hexdigest()
        return RequestKey(identity_key(principal.id), request_id, digest)

    def register(self, principal: Principal | None, handle_text: str,
                 values: Iterable[Value], request_id: str = "") -> WriteResult:
        handle = Handle.parse(handle_text)
        who = self._authorize(principal, Action.REGISTER, handle)
        vals = validate_values(values)
        request = self._request_key(who, request_id, Operation.REGISTER, handle,
                                    _content(vals))
        return self.store.apply(Write(Operation.REGISTER, handle, stamp(vals, self._now()),
                                      Precondition(absent=True), who.id, request), self._now())

    def register_many(self, principal: Principal | None,
                      rows: Sequence[BulkRow]) -> list[WriteResult | IdnodeError]:
        """Register rows in one transaction; a bad row fails alone, never the batch."""
        now = self._now()
        writes: list[Write] = []
        positions: list[int] = []
        out: list[WriteResult | IdnodeError] = [InvalidArgument("unprocessed")] * len(rows)
        for i, row in enumerate(rows):
            try:
                handle = Handle.parse(row.handle)
                who = self._authorize(principal, Action.REGISTER, handle)
                vals = stamp(validate_values(row.values), now)
            except IdnodeError as exc:
                out[i] = exc
                continue
            writes.append(Write(Operation.REGISTER, handle, vals, ABSENT, who.id))
            positions.append(i)
        if writes:
            for i, result in zip(positions, self.store.apply_many(writes, now), strict=True):
                out[i] = result
        return out

    def _current(self, handle: Handle, etag: str | None) -> tuple[Record, int]:
        """The current record and the sequence the write must find. ``etag=None`` means
        "whatever is current" (the Handle REST API has no etags)."""
        if etag is None:
            found = self.store.get(handle.key)
            if found is None:
                raise NotFound(f"identifier {handle} not found")
            return found, found.sequence
        if not etag:
            raise InvalidArgument("etag is required (take it from Register, Update or Resolve)")
        sequence = parse_etag(etag)
        if sequence is None:
            raise InvalidArgument(f"etag {etag!r} is malformed (not issued by this node)")
        current = self.store.get(handle.key)
        if current is None:
            raise NotFound(f"identifier {handle} not found")
        if current.sequence != sequence:
            raise StaleEtag(f"etag is stale: {current.handle} was changed since "
                            f"(now version {current.version}, etag {current.etag})")
        return current, sequence

    def update(self, principal: Principal | None, handle_text: str, values: Iterable[Value],
               etag: str, *, merge: bool = False, request_id: str = "") -> WriteResult:
        handle = Handle.parse(handle_text)
        who = self._authorize(principal, Action.UPDATE, handle)
        incoming = validate_values(values)
        request = self._request_key(who, request_id, Operation.UPDATE, handle,
                                    f"{merge}{etag}{_content(incoming)}")
        current, sequence = self._current(handle, etag)
        now = self._now()
        fresh = stamp(incoming, now)
        if merge:
            by_index = {v.index: v for v in current.values}
            by_index.update((v.index, v) for v in fresh)
            new_values = validate_values(by_index.values())
        else:
            new_values = fresh
        return self.store.apply(Write(Operation.UPDATE, handle, new_values,
                                      Precondition(sequence=sequence), who.id, request), now)

    def delete(self, principal: Principal | None, handle_text: str, etag: str | None,
               indexes: Iterable[int] = (), request_id: str = "") -> WriteResult:
        handle = Handle.parse(handle_text)
        who = self._authorize(principal, Action.DELETE, handle)
        drop = set(indexes)
        request = self._request_key(who, request_id, Operation.DELETE, handle,
                                    f"{etag}{sorted(drop)}")
        current, sequence = self._current(handle, etag)
        if not drop:
            return self.store.apply(Write(Operation.DELETE, handle, None,
                                          Precondition(sequence=sequence), who.id, request),
                                    self._now())
        present = {v.index for v in current.values}
        missing = sorted(drop - present)
        if missing:
            raise ValuesNotFound(f"{current.handle} has no value at index {missing[0]}")
        kept = tuple(v for v in current.values if v.index not in drop)
        if not kept:
            raise InvalidArgument("deleting every value would leave an empty record; "
                                  "delete the identifier instead (no indexes)")
        return self.store.apply(Write(Operation.UPDATE, handle, kept,
                                      Precondition(sequence=sequence), who.id, request),
                                self._now())

    def put(self, principal: Principal | None, handle_text: str, values: Iterable[Value], *,
            overwrite: bool = True, indexes: Iterable[int] = ()) -> tuple[WriteResult, bool]:
        """Create or replace, the Handle REST way (``PUT /api/handles/{handle}``); returns
        the result and whether the identifier was created.

        With ``indexes`` only the given values with those indexes are written (added or
        replaced) and the others are kept; ``overwrite=False`` refuses to replace an
        existing identifier (or, with ``indexes``, an existing value). There is no etag:
        the last writer wins, and a concurrent write in between is retried.
        """
        handle = Handle.parse(handle_text)
        if principal is None:
            self._authorize(None, Action.REGISTER, handle)
        incoming = validate_values(values)
        chosen = set(indexes)
        picked = tuple(v for v in incoming if v.index in chosen) if chosen else incoming
        if chosen and len(picked) != len(chosen):
            missing = sorted(chosen - {v.index for v in picked})
            raise InvalidArgument(f"index {missing[0]} is named in the query but no value in "
                                  "the body has it")
        for _ in range(_PUT_ATTEMPTS):  # someone may write in between: then look again
            current = self.store.get(handle.key)
            if current is None:
                with contextlib.suppress(AlreadyExists):
                    return self.register(principal, handle_text, picked), True
                continue
            with contextlib.suppress(StaleEtag, NotFound):
                return self._replace(principal, handle, current, picked, overwrite,
                                     bool(chosen)), False
        raise Unavailable(f"identifier {handle} is being written concurrently; retry")

    def _replace(self, principal: Principal | None, handle: Handle, current: Record,
                 values: tuple[Value, ...], overwrite: bool, partial: bool) -> WriteResult:
        who = self._authorize(principal, Action.UPDATE, handle)
        if not overwrite:
            if not partial:
                raise AlreadyExists(f"identifier {current.handle} already exists")
            taken = sorted({v.index for v in values} & {v.index for v in current.values})
            if taken:
                raise AlreadyExists(f"{current.handle} already has a value at index "
                                    f"{taken[0]} (overwrite=false)")
        now = self._now()
        fresh = stamp(values, now)
        if partial:
            by_index = {v.index: v for v in current.values}
            by_index.update((v.index, v) for v in fresh)
            fresh = validate_values(by_index.values())
        return self.store.apply(Write(Operation.UPDATE, handle, fresh,
                                      Precondition(sequence=current.sequence), who.id), now)

    # --- reads ---------------------------------------------------------------------------

    def list(self, principal: Principal | None, prefix_text: str, page_size: int = 0,
             page_token: str = "") -> tuple[list[str], str]:
        """One page of identifiers under a prefix; listing needs rights on the prefix."""
        prefix = Prefix.parse(prefix_text)
        if principal is None:
            self.policy.check(None, Action.LIST, Target.prefix(prefix))
        if not self.serves(prefix.key):
            raise NotFound(f"prefix {prefix.text} is not served by this node")
        self.policy.check(principal, Action.LIST, Target.prefix(prefix))
        if page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size is at most {MAX_PAGE_SIZE}")
        size = page_size or DEFAULT_PAGE_SIZE
        after = _decode_token(page_token, prefix.key) if page_token else ""
        rows = self.store.list_keys(prefix.key, after, size + 1)
        handles = [display for _, display in rows[:size]]
        token = _encode_token(prefix.key, rows[size - 1][0]) if len(rows) > size else ""
        return handles, token

    # --- prefixes ------------------------------------------------------------------------

    def allocate_prefix(self, principal: Principal | None, prefix_text: str,
                        owner_secret: str = "") -> Allocation:
        principal = self.policy.check(principal, Action.ALLOCATE_PREFIX, Target.node())
        prefix = Prefix.parse(prefix_text)
        if prefix.key == self.node_prefix.key or not self.node_prefix.contains(prefix.key):
            raise InvalidArgument(
                f"prefix {prefix.text} is not under the node prefix {self.node_prefix.text}")
        generated = ""
        if owner_secret:
            check_new_secret(owner_secret)
        else:
            owner_secret = generated = generate_secret()
        owner_id = admin_identity(prefix)
        now = self._now()
        owner = StoredPrincipal(Principal(owner_id, Role.PREFIX_OWNER, prefix.key),
                                hash_secret(owner_secret), now)
        admin_handle = Handle.parse(f"{prefix.text}/{ADMIN_SUFFIX}")
        admin_value = Value(ADMIN_VALUE_INDEX, "HS_ADMIN",
                            AdminRef(str(admin_handle), ADMIN_INDEX, "111111111111"),
                            DEFAULT_TTL_SECONDS, now)
        write = Write(Operation.REGISTER, admin_handle, (admin_value,),
                      Precondition(absent=True), principal.id)
        self.store.allocate_prefix(prefix, owner, write, now)
        return Allocation(prefix.text, owner_id, generated)


def _content(values: Sequence[Value]) -> str:
    return values_to_json(tuple(values))


def _encode_token(prefix_key: str, last_key: str) -> str:
    raw = f"{prefix_key}\n{last_key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, prefix_key: str) -> str:
    try:  # validate=True: characters outside the URL-safe alphabet are an error
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_",
                               validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is malformed (not issued by this node)") from None
    token_prefix, sep, last = raw.partition("\n")
    if not sep:
        raise InvalidArgument("page_token is malformed (not issued by this node)")
    if token_prefix != prefix_key:
        raise InvalidArgument("page_token belongs to another listing")
    return last


__all__ = ["Allocation", "BulkRow", "Registrar"]
