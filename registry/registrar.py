"""The registry's use cases: register, update, delete, list, allocate prefixes.

Transport-neutral: servicers parse the wire into domain values, call one method here,
and translate the result (or the :mod:`registry.errors` exception) back.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import NamedTuple

from registry import paging
from registry.access.data_access import DataAccess
from registry.access.grants import EMPTY as EMPTY_ITEMS
from registry.access.grants import (
    GRANT_TYPE,
    check_grant_values,
    grant_changes,
    template_version,
)
from registry.access.policy import (
    ADMIN_BITS,
    ALL,
    WRITE_BITS,
    AccessPolicy,
    HandlePolicy,
    Permission,
    permission_string,
)
from registry.access.principals import (
    ADMIN_INDEX,
    ADMIN_SUFFIX,
    Principal,
    StoredPrincipal,
    admin_identity,
    check_new_secret,
    generate_secret,
    hash_secret,
    identity_key,
)
from registry.access.rights import (
    MAX_GROUP_DEPTH,
    AdminView,
    RightsBook,
    governed_prefix,
    is_secret,
    prefix_handle,
    ref_key,
    split_ref,
)
from registry.errors import (
    AlreadyExists,
    IdnodeError,
    InvalidArgument,
    InvalidValue,
    NotFound,
    PermissionDenied,
    StaleEtag,
    Unauthenticated,
    Unavailable,
    ValuesNotFound,
)
from registry.identifier import Handle, Prefix
from registry.record import (
    ABSENT,
    NO_AUDIT_CONTEXT,
    AuditContext,
    Operation,
    Precondition,
    Record,
    RequestKey,
    Write,
    WriteResult,
    parse_etag,
    values_to_json,
)
from registry.store import KeyListing, Store, UnitOfWork
from registry.templates import (
    TEMPLATE_INDEX,
    TemplateBook,
    TemplateState,
    check_record,
    record_error,
    template_reference,
)
from registry.values import (
    ADMIN_TYPE,
    DEFAULT_TTL_SECONDS,
    SECKEY_TYPE,
    VLIST_TYPE,
    AdminRef,
    Permissions,
    Value,
    ValueData,
    ValueList,
    ValueRef,
    stamp,
    validate_stamped,
    validate_values,
)
from registry.views import visible

MAX_REQUEST_ID_CHARS = 128
MAX_AUDIENCES = 100_000
_PUT_ATTEMPTS = 3
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
ADMIN_VALUE_INDEX = 100
ADMIN_GROUP_INDEX = 200
# Nobody reads a secret (answers omit HS_SECKEY whatever its permissions say); the bits
# say so to clients that look at them.
SECRET_PERMISSIONS = Permissions(admin_read=False, admin_write=True, public_read=False,
                                 public_write=False)


@dataclass(frozen=True, slots=True)
class Allocation:
    prefix: str
    owner: str
    generated_secret: str
    # The identifiers it created (``<prefix>/ADMIN`` and ``0.NA/<prefix>``), for caches.
    results: tuple[WriteResult, ...] = ()


class BulkRow(NamedTuple):
    handle: str
    values: tuple[Value, ...]


class Registrar:
    """Rules of writing: who may write where (asked of the policy), how values merge,
    secrets sealed, references checked, idempotency."""

    def __init__(self, store: Store, node_prefix: Prefix, policy: AccessPolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 rights: RightsBook | None = None,
                 templates: TemplateBook | None = None) -> None:
        self.store = store
        # Where listings read: the store, unless the node routes them (read replicas).
        self.listing: KeyListing = store
        self.node_prefix = node_prefix
        self.rights = rights or RightsBook(store.get)
        # The templates records are checked against, cached (registry.templates).
        self.templates = templates or TemplateBook(store.get_template)
        self.policy: AccessPolicy = policy or HandlePolicy(node_prefix, self.rights)
        # Field-level data authorisation (registry.access.grants).
        self.data = DataAccess(self.rights, self.templates.get)
        # audience() per (principal, identifier), valid for one rights-book generation.
        self._audiences: dict[tuple[Principal, str], tuple[int, bool, frozenset[int]]] = {}
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def _apply(self, write: Write, now: int) -> WriteResult:
        """Store one write; the rights book forgets the identifier at once (the node's
        coherence layer does too, for every process, after commit)."""
        try:
            return self.store.apply(write, now)
        finally:
            self.rights.forget((write.handle.key,))

    # --- who may do what -----------------------------------------------------------------

    def serves(self, prefix_key: str) -> bool:
        return self.node_prefix.contains(prefix_key)

    def check_served(self, handle: Handle) -> None:
        """Identifiers under the node prefix, and the prefix handles ``0.NA/<prefix>`` of
        those prefixes (the node prefix's own included)."""
        governed = governed_prefix(handle)
        if governed is not None:
            if self.serves(governed.key):
                return
            raise NotFound(f"prefix handle {handle} is not served by this node (it serves "
                           f"{self.node_prefix.text})", referral_prefix=handle.prefix)
        if not self.serves(handle.prefix_key):
            raise NotFound(f"prefix {handle.prefix} is not served by this node "
                           f"(it serves {self.node_prefix.text})", referral_prefix=handle.prefix)

    def _writer(self, principal: Principal | None, handle: Handle, doing: str) -> Principal:
        """Credentials first (an anonymous write is Unauthenticated wherever it aims), then
        whether this node serves the identifier, then *some* write right on it, before
        anything about the identifier is read; the exact bits are checked once the change
        is known. A caller without write bits passes only when it holds ``rw`` on some
        item of the identifier (field-level data authorisation), which reads its admin
        view; the refusal is the same either way."""
        if principal is None:
            raise Unauthenticated(f"{doing} requires credentials (authorization metadata)")
        self.check_served(handle)
        try:
            return self.policy.require_any(principal, WRITE_BITS, handle, doing=doing)
        except PermissionDenied:
            # A read+write grantee of some item may write that item's value (_changed
            # checks that the change touches nothing else).
            if self.data.writable(principal, handle):
                return principal
            raise

    def can_read_private(self, principal: Principal | None, handle: Handle) -> bool:
        """Whether ``principal`` sees values without public_read on ``handle``."""
        return principal is not None and self.policy.permits(
            principal, Permission.READ_VALUE, handle)

    def audience(self, principal: Principal | None,
                 handle: Handle) -> tuple[bool, frozenset[int]]:
        """What ``principal`` may read of ``handle``: everything readable (private values
        and every restricted item: read_value), or the public values plus the restricted
        items it is granted (the set; empty for most callers)."""
        if principal is None:
            return False, EMPTY_ITEMS
        key = (principal, handle.key)
        generation = self.rights.generation
        hit = self._audiences.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1], hit[2]
        # Both answers come from admin views (forgotten on every write, which bumps the
        # generation) and published templates (whose grants never change).
        private_ok = self.policy.permits(principal, Permission.READ_VALUE, handle)
        granted = EMPTY_ITEMS if private_ok else self.data.readable(principal, handle)
        if generation == self.rights.generation and self.data.settled(handle):
            if len(self._audiences) >= MAX_AUDIENCES:
                self._audiences.clear()
            self._audiences[key] = (generation, private_ok, granted)
        return private_ok, granted

    def credential(self, key: str) -> StoredPrincipal | None:
        """The secret hash that proves identity ``key`` (``index:handle key``): the
        HS_SECKEY value at that index of that identifier, else (stores from before
        HS_SECKEY values) a row of the principals table."""
        index, handle_key = split_ref(key)
        record = self.store.get(handle_key)
        if record is not None:
            for v in record.values:
                if v.index == index and is_secret(v) and isinstance(v.data, str):
                    return StoredPrincipal(
                        Principal(f"{index}:{record.handle}", key), v.data, record.updated_at)
        return self.store.get_principal(key)

    def ensure_node_admin(self, secret: str) -> list[WriteResult]:
        """Create the node admin ``300:<node prefix>/ADMIN`` with ``secret`` and the node
        prefix's handle ``0.NA/<node prefix>`` unless the admin exists; the writes made
        (empty when it existed)."""
        identity = admin_identity(self.node_prefix)
        if self.credential(identity_key(identity)) is not None:
            return []
        check_new_secret(secret)
        now = self._now()
        with self.store.unit_of_work() as unit:
            created = [unit.apply(w, now) for w in self._admin_records(
                self.node_prefix, secret, identity, now, admin_exists=self.store.get(
                    Handle.parse(f"{self.node_prefix.text}/{ADMIN_SUFFIX}").key) is not None)]
        self.rights.forget([r.key for r in created])
        return created

    def ensure_mirror_admin(self, secret: str) -> bool:
        """On a mirror: the node admin ``300:<node prefix>/ADMIN`` proved by ``secret``
        through a row of the principals table, not a record (the mirror's records are
        its primary's, which carry no HS_SECKEY on the feed, so the row is what counts;
        a record would be a write the primary never made). Whether it was created (an
        existing row is kept: the first secret stays until the row is removed)."""
        identity = admin_identity(self.node_prefix)
        key = identity_key(identity)
        if self.store.get_principal(key) is not None:
            return False
        check_new_secret(secret)
        self.store.add_principal(StoredPrincipal(Principal(identity, key),
                                                 hash_secret(secret), self._now()))
        return True

    def _admin_records(self, prefix: Prefix, secret: str, by: str, now: int, *,
                       admin_exists: bool = False,
                       audit: AuditContext | None = None) -> list[Write]:
        """``<prefix>/ADMIN`` (its own HS_ADMIN and the HS_SECKEY at 300) and the prefix
        handle ``0.NA/<prefix>`` (HS_ADMIN at 100 naming the group at 200, which holds
        ``300:<prefix>/ADMIN``)."""
        admin_handle = Handle.parse(f"{prefix.text}/{ADMIN_SUFFIX}")
        owner = AdminRef(str(admin_handle), ADMIN_INDEX, permission_string(ALL))
        admin_values = (
            Value(ADMIN_VALUE_INDEX, ADMIN_TYPE, owner, DEFAULT_TTL_SECONDS, now),
            Value(ADMIN_INDEX, SECKEY_TYPE, hash_secret(secret), DEFAULT_TTL_SECONDS, now,
                  SECRET_PERMISSIONS))
        handle = prefix_handle(prefix)
        group = AdminRef(str(handle), ADMIN_GROUP_INDEX, permission_string(ALL))
        members = ValueList((ValueRef(str(admin_handle), ADMIN_INDEX),))
        prefix_values = (
            Value(ADMIN_VALUE_INDEX, ADMIN_TYPE, group, DEFAULT_TTL_SECONDS, now),
            Value(ADMIN_GROUP_INDEX, VLIST_TYPE, members, DEFAULT_TTL_SECONDS, now))
        writes = []
        if not admin_exists:
            writes.append(Write(Operation.REGISTER, admin_handle, admin_values, ABSENT, by,
                                audit=audit))
        if self.store.get(handle.key) is None:
            writes.append(Write(Operation.REGISTER, handle, prefix_values, ABSENT, by,
                                audit=audit))
        return writes

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
        return RequestKey(principal.key, request_id, digest)

    def _may_register(self, principal: Principal, handle: Handle) -> None:
        """Whether ``principal`` may create ``handle`` (prefix handles are only allocated)."""
        if governed_prefix(handle) is not None:
            raise PermissionDenied(f"{handle} is a prefix handle: it is created by allocating "
                                   "its prefix, not registered")
        self.policy.require(principal, _ADD_HANDLE, handle, doing=f"register {handle}")

    def _new_record(self, handle: Handle, checked: tuple[Value, ...],
                    now: int) -> tuple[Value, ...]:
        """The values to store for a new identifier, from values that passed
        validate_values: stamped, then :meth:`_completed`."""
        return self._completed(handle, stamp(checked, now), plain=False)

    def _completed(self, handle: Handle, vals: tuple[Value, ...], *,
                   plain: bool) -> tuple[Value, ...]:
        """The checks and sealing every new record goes through, single or bulk: its
        template, its DATA_GRANT values, then (unless every value is plain: no secret to
        seal, no reference to check) sealed secrets and references."""
        self.check_template(handle, (), vals)
        check_grant_values(vals)
        if plain:
            return vals
        vals = _seal(vals)
        self._check_references(handle, (), vals)
        return vals

    def _may_add_under(self, principal: Principal | None, prefix_key: str) -> bool:
        """Whether ``principal`` may register any identifier under ``prefix_key`` on
        this node: served here and add_handle granted by the prefix handle (or the node
        admin). False says nothing (the row-by-row checks decide, and explain)."""
        return principal is not None and self.serves(prefix_key) and bool(
            self.policy.prefix_bits(principal, prefix_key) & _ADD_HANDLE)

    def _new_bulk_record(self, handle: Handle, values: Iterable[Value],
                         now: int) -> tuple[Value, ...]:
        """:meth:`_new_record` of ``validate_values(values)``, in fewer passes: plain
        values (the import case) have no secret to seal and no reference to check."""
        vals, plain = validate_stamped(values, now)
        return self._completed(handle, vals, plain=plain)

    def register(self, principal: Principal | None, handle_text: str,
                 values: Iterable[Value], request_id: str = "",
                 audit: AuditContext | None = None) -> WriteResult:
        handle = Handle.parse(handle_text)
        who = self._writer(principal, handle, f"register {handle}")
        incoming = validate_values(values)
        request = self._request_key(who, request_id, Operation.REGISTER, handle,
                                    _content(incoming))
        now = self._now()
        self._may_register(who, handle)
        vals = self._new_record(handle, incoming, now)
        return self._apply(Write(Operation.REGISTER, handle, vals,
                                 Precondition(absent=True), who.id, request,
                                 _audited(audit, (), vals)), now)

    def register_many(self, principal: Principal | None, rows: Sequence[BulkRow],
                      audit: AuditContext | None = None, *,
                      report_unchanged: bool = False) -> list[WriteResult | IdnodeError]:
        """Register rows in one transaction; a bad row fails alone, never the batch.

        ``report_unchanged`` (a re-import): a row whose identifier exists with exactly
        the values it would store, as ``principal`` may read them, comes back as a
        ``replayed`` WriteResult (nothing written) instead of AlreadyExists — so an
        importer need not read every existing row back to tell unchanged from
        conflicting. What it compares with is the caller's own view (:meth:`view_of`),
        so it answers nothing Resolve would not."""
        now = self._now()
        writes: list[Write] = []
        positions: list[int] = []
        out: list[WriteResult | IdnodeError] = [InvalidArgument("unprocessed")] * len(rows)
        # Prefix key -> whether the principal may add identifiers anywhere under it: then
        # a row needs no rights check of its own (its own HS_ADMIN could only add rights).
        cleared: dict[str, bool] = {}
        for i, row in enumerate(rows):
            try:
                handle = Handle.parse(row.handle)
                prefix_key = handle.prefix_key
                free = cleared.get(prefix_key)
                if free is None:
                    free = cleared[prefix_key] = self._may_add_under(principal, prefix_key)
                if not free:
                    who = self._writer(principal, handle, f"register {handle}")
                    self._may_register(who, handle)
                vals = self._new_bulk_record(handle, row.values, now)
            except IdnodeError as exc:
                out[i] = exc
                continue
            assert principal is not None  # _may_add_under or _writer said so
            writes.append(Write(Operation.REGISTER, handle, vals, ABSENT, principal.id,
                                audit=_audited(audit, (), vals)))
            positions.append(i)
        if writes:
            try:
                results = self.store.apply_many(writes, now)
            finally:
                self.rights.forget([w.handle.key for w in writes])
            for i, result in zip(positions, results, strict=True):
                out[i] = result
            if report_unchanged:
                self._report_unchanged(principal, out, dict(zip(positions, writes,
                                                                strict=True)))
        return out

    def _report_unchanged(self, principal: Principal | None,
                          out: list[WriteResult | IdnodeError], writes: dict[int, Write]) -> None:
        """Replace each AlreadyExists in ``out`` whose stored record the caller sees
        holding exactly the write's values (timestamps aside) by a replayed result."""
        existing = {i: w for i, w in writes.items() if isinstance(out[i], AlreadyExists)}
        stored = self.store.get_many([w.handle.key for w in existing.values()])
        for i, write in existing.items():
            record = stored.get(write.handle.key)
            if record is None or write.values is None or \
                    _unstamped(self.view_of(principal, record)) != _unstamped(write.values):
                continue
            out[i] = WriteResult(str(record.handle), record.version, record.etag,
                                 record.sequence, replayed=True, key=write.handle.key)

    def view_of(self, principal: Principal | None, record: Record) -> tuple[Value, ...]:
        """Every value of ``record`` that ``principal`` may read (Resolve's unfiltered
        view for it: public values, restricted items only as granted, everything with
        read_value)."""
        private_ok, granted = self.audience(principal, record.handle)
        return visible(record.values, private_ok=private_ok,
                       restricted=self.restricted_items(record, private_ok), granted=granted)

    def restricted_items(self, record: Record, private_ok: bool) -> frozenset[int]:
        """The indexes of ``record`` a caller without read_value sees only when granted
        (its template's restricted items); none for a caller with read_value."""
        if private_ok:
            return EMPTY_ITEMS
        return frozenset(self.data.table_for(record.handle.prefix_key, record.values,
                                             template_version(record.values)))

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

    def _changed(self, principal: Principal, current: Record, new_values: tuple[Value, ...],
                 doing: str) -> tuple[Value, ...]:
        """Check that ``principal`` may turn ``current`` into ``new_values`` (the bits the
        difference needs), that every new reference names a principal or group, that no
        group contains itself, and that a prefix keeps an admin."""
        handle = current.handle
        needed = change_bits(current.values, new_values)
        try:
            self.policy.require(principal, needed, handle, doing=doing)
        except PermissionDenied:
            self._granted_write(principal, current, new_values, needed)
        self.check_template(handle, current.values, new_values)
        check_grant_values(new_values)
        self._check_references(handle, current.values, new_values)
        return new_values

    def _granted_write(self, principal: Principal, current: Record,
                       new_values: tuple[Value, ...], needed: int) -> None:
        """Without the Handle bits a change needs, it is still allowed when every value
        it adds, changes or removes is at an item the principal holds ``rw`` on
        (registry.access.grants); otherwise the policy's refusal stands."""
        writable = self.data.writable(principal, current.handle)
        changed = changed_indexes(current.values, new_values)
        if writable and changed and not needed & ADMIN_BITS and changed <= writable:
            return
        self.policy.require(principal, needed, current.handle,
                            doing=f"write {current.handle}")  # raises the usual refusal

    def update(self, principal: Principal | None, handle_text: str, values: Iterable[Value],
               etag: str, *, merge: bool = False, request_id: str = "",
               audit: AuditContext | None = None) -> WriteResult:
        handle = Handle.parse(handle_text)
        doing = f"update {handle}"
        who = self._writer(principal, handle, doing)
        incoming = validate_values(values)
        request = self._request_key(who, request_id, Operation.UPDATE, handle,
                                    f"{merge}{etag}{_content(incoming)}")
        current, sequence = self._current(handle, etag)
        now = self._now()
        fresh = _seal(stamp(incoming, now))
        new_values = _merged(current.values, fresh) if merge else _replaced(current.values,
                                                                           fresh)
        self._changed(who, current, new_values, doing)
        return self._apply(Write(Operation.UPDATE, handle, new_values,
                                 Precondition(sequence=sequence), who.id, request,
                                 _audited(audit, current.values, new_values)), now)

    def delete(self, principal: Principal | None, handle_text: str, etag: str | None,
               indexes: Iterable[int] = (), request_id: str = "",
               audit: AuditContext | None = None) -> WriteResult:
        handle = Handle.parse(handle_text)
        doing = f"delete {handle}"
        who = self._writer(principal, handle, doing)
        drop = set(indexes)
        request = self._request_key(who, request_id, Operation.DELETE, handle,
                                    f"{etag}{sorted(drop)}")
        current, sequence = self._current(handle, etag)
        if not drop:
            if governed_prefix(handle) is not None:
                raise PermissionDenied(f"{current.handle} is a prefix handle: it goes only "
                                       "with its prefix")
            self.policy.require(who, Permission.DELETE_HANDLE, handle, doing=doing)
            return self._apply(Write(Operation.DELETE, handle, None,
                                          Precondition(sequence=sequence), who.id, request,
                                          audit), self._now())
        present = {v.index for v in current.values}
        missing = sorted(drop - present)
        if missing:
            raise ValuesNotFound(f"{current.handle} has no value at index {missing[0]}")
        kept = tuple(v for v in current.values if v.index not in drop)
        if not kept:
            raise InvalidArgument("deleting every value would leave an empty record; "
                                  "delete the identifier instead (no indexes)")
        self._changed(who, current, kept, f"delete values of {handle}")
        return self._apply(Write(Operation.UPDATE, handle, kept,
                                 Precondition(sequence=sequence), who.id, request,
                                 _audited(audit, current.values, kept)), self._now())

    def put(self, principal: Principal | None, handle_text: str, values: Iterable[Value], *,
            overwrite: bool = True, indexes: Iterable[int] = (),
            audit: AuditContext | None = None) -> tuple[WriteResult, bool]:
        """Create or replace, the Handle REST way (``PUT /api/handles/{handle}``); returns
        the result and whether the identifier was created.

        With ``indexes`` only the given values with those indexes are written (added or
        replaced) and the others are kept; ``overwrite=False`` refuses to replace an
        existing identifier (or, with ``indexes``, an existing value). There is no etag:
        the last writer wins, and a concurrent write in between is retried.
        """
        handle = Handle.parse(handle_text)
        who = self._writer(principal, handle, f"write {handle}")
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
                    return self.register(who, handle_text, picked, audit=audit), True
                continue
            with contextlib.suppress(StaleEtag, NotFound):
                return self._replace(who, current, picked, overwrite, bool(chosen),
                                     audit), False
        raise Unavailable(f"identifier {handle} is being written concurrently; retry")

    def _replace(self, principal: Principal, current: Record, values: tuple[Value, ...],
                 overwrite: bool, partial: bool,
                 audit: AuditContext | None = None) -> WriteResult:
        if not overwrite:
            if not partial:
                raise AlreadyExists(f"identifier {current.handle} already exists")
            taken = sorted({v.index for v in values} & {v.index for v in current.values})
            if taken:
                raise AlreadyExists(f"{current.handle} already has a value at index "
                                    f"{taken[0]} (overwrite=false)")
        now = self._now()
        fresh = _seal(stamp(values, now))
        new_values = _merged(current.values, fresh) if partial else _replaced(current.values,
                                                                             fresh)
        self._changed(principal, current, new_values, f"write {current.handle}")
        return self._apply(Write(Operation.UPDATE, current.handle, new_values,
                                 Precondition(sequence=current.sequence), principal.id,
                                 audit=_audited(audit, current.values, new_values)), now)

    # --- templates -----------------------------------------------------------------------

    def check_template(self, handle: Handle, old: Sequence[Value],
                       new: Sequence[Value]) -> None:
        """A record that names a template at index 1001 follows it: the template must be
        published (or withdrawn, for a record already based on that version), and every
        violation of its items is reported at once in one InvalidValue. ``old`` are the
        record's values before the write (empty for a new identifier). A record without
        index 1001 costs one scan of its indexes."""
        version = template_reference(new)
        if version is None:
            return
        template = self.templates.get(handle.prefix_key, version)
        if template is not None and template.state is TemplateState.PUBLISHED:
            violations = check_record(template, new, old)
            if violations:
                raise record_error(handle, template, violations)
            return
        named = f"template {handle.prefix} version {version}"
        if template is None:
            raise InvalidValue(f"{handle} names {named} at index {TEMPLATE_INDEX}, which "
                               "does not exist")
        if template.state is TemplateState.DRAFT:
            raise InvalidValue(f"{handle} names {named} at index {TEMPLATE_INDEX}, which is "
                               "a draft: records are based on published templates only")
        if template.state is TemplateState.WITHDRAWN and _reference(old) != version:
            raise InvalidValue(f"{handle} names {named} at index {TEMPLATE_INDEX}, which was "
                               "withdrawn: no new record may be based on it (records already "
                               "based on it stay writable)")
        violations = check_record(template, new, old)
        if violations:
            raise record_error(handle, template, violations)

    # --- references ----------------------------------------------------------------------

    def _check_references(self, handle: Handle, old: tuple[Value, ...],
                          new: tuple[Value, ...]) -> None:
        """New or changed HS_ADMIN and HS_VLIST values must name principals or groups
        that exist; an HS_VLIST may not contain itself; a prefix handle must keep an
        admin. Unchanged values are not re-checked (a principal deleted later does not
        block unrelated edits)."""
        before = {v.index: v for v in old}
        own = AdminView.of(new)
        for v in new:
            if v.type not in (ADMIN_TYPE, VLIST_TYPE) or _same(before.get(v.index), v):
                continue
            if isinstance(v.data, AdminRef):
                self._check_names(handle, own, v, ref_key(v.data.index, v.data.handle),
                                  f"{v.data.index}:{v.data.handle}")
            elif isinstance(v.data, ValueList):
                for r in v.data.refs:
                    self._check_names(handle, own, v, ref_key(r.index, r.handle),
                                      f"{r.index}:{r.handle}")
                self._check_loop(handle, own, v.index)
        if governed_prefix(handle) is not None and old and not self._keeps_admin(handle, own):
            raise InvalidArgument(f"this change would remove the last admin of {handle}: "
                                  "keep an HS_ADMIN value with add_admin or modify_admin "
                                  "that names an existing principal or group")

    def _view(self, handle: Handle, own: AdminView, key: str) -> AdminView | None:
        return own if key == handle.key else self.rights.view(key)

    def _check_names(self, handle: Handle, own: AdminView, value: Value, ref: str,
                     shown: str) -> None:
        index, key = split_ref(ref)
        view = self._view(handle, own, key)
        if view is None or not view.names(index):
            raise InvalidValue(f"{value.type} at index {value.index} names {shown}, which is "
                               "neither a principal nor a group (that identifier holds no "
                               f"HS_SECKEY, HS_PUBKEY or HS_VLIST at index {index})")

    def _check_loop(self, handle: Handle, own: AdminView, index: int) -> None:
        start = f"{index}:{handle.key}"
        frontier = [(m, 1) for m in own.groups.get(index, ())]
        seen: set[str] = set()
        while frontier:
            ref, depth = frontier.pop()
            if ref == start:
                raise InvalidValue(f"HS_VLIST at index {index} would contain itself "
                                   "(a group loop)")
            if ref in seen:
                continue
            seen.add(ref)
            member_index, key = split_ref(ref)
            view = self._view(handle, own, key)
            members = view.groups.get(member_index, ()) if view is not None else ()
            if members and depth >= MAX_GROUP_DEPTH:
                raise InvalidValue(f"HS_VLIST at index {index} nests groups deeper than "
                                   f"{MAX_GROUP_DEPTH} levels")
            frontier.extend((m, depth + 1) for m in members)

    def _keeps_admin(self, handle: Handle, own: AdminView) -> bool:
        admin = Permission.ADD_ADMIN | Permission.MODIFY_ADMIN
        return any(g.bits & admin and self._has_member(handle, own, g.ref_key, 0)
                   for g in own.grants)

    def _has_member(self, handle: Handle, own: AdminView, ref: str, depth: int) -> bool:
        index, key = split_ref(ref)
        view = self._view(handle, own, key)
        if view is None or depth > MAX_GROUP_DEPTH:
            return False
        if index in view.key_indexes:
            return True
        return any(self._has_member(handle, own, m, depth + 1)
                   for m in view.groups.get(index, ()))

    # --- reads ---------------------------------------------------------------------------

    def list(self, principal: Principal | None, prefix_text: str, page_size: int = 0,
             page_token: str = "") -> tuple[list[str], str]:
        """One page of identifiers under a prefix; listing needs rights on the prefix."""
        prefix = Prefix.parse(prefix_text)
        doing = f"list {prefix.text}"
        if principal is None:
            raise Unauthenticated(f"{doing} requires credentials (authorization metadata)")
        if not self.serves(prefix.key):
            raise NotFound(f"prefix {prefix.text} is not served by this node")
        self.policy.require_prefix(principal, Permission.LIST_HANDLES, prefix, doing=doing)
        if page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size is at most {MAX_PAGE_SIZE}")
        size = page_size or DEFAULT_PAGE_SIZE
        after = _decode_token(page_token, prefix.key) if page_token else ""
        rows = self.listing.list_keys(prefix.key, after, size + 1)
        handles = [display for _, display in rows[:size]]
        token = _encode_token(prefix.key, rows[size - 1][0]) if len(rows) > size else ""
        return handles, token

    # --- prefixes ------------------------------------------------------------------------

    def allocate_prefix(self, principal: Principal | None, prefix_text: str,
                        owner_secret: str = "",
                        audit: AuditContext | None = None) -> Allocation:
        """Allocate an enterprise prefix (node admin only): the prefix, its admin identity
        ``300:<prefix>/ADMIN`` and its prefix handle ``0.NA/<prefix>``, in one commit."""
        who = self.policy.require_node_admin(principal, doing="allocate prefixes")
        return self.allocate(who, prefix_text, owner_secret, audit)

    def allocate(self, by: Principal, prefix_text: str, owner_secret: str = "",
                 audit: AuditContext | None = None, *,
                 also: Callable[[UnitOfWork, int], object] | None = None) -> Allocation:
        """The allocation itself, for callers that already decided ``by`` may (the node
        admin's AllocatePrefix, a reviewer's approval of an application).

        ``also(unit, now)`` runs first inside the allocation's unit of work, so what it
        writes (an approval records its decision) commits with the allocation or not at
        all; an error it raises leaves nothing written."""
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
        if self.store.has_prefix(prefix.key):
            raise AlreadyExists(f"prefix {prefix.text} is already allocated")
        writes = self._admin_records(prefix, owner_secret, by.id, now, audit=audit)
        with self.store.unit_of_work() as unit:
            if also is not None:
                also(unit, now)
            unit.add_prefix(prefix, owner_id, now)
            results = tuple(unit.apply(w, now) for w in writes)
        self.rights.forget([r.key for r in results])
        return Allocation(prefix.text, owner_id, generated, results)


def change_bits(old: Sequence[Value], new: Sequence[Value]) -> int:
    """The permission bits turning ``old`` values into ``new`` needs: add, modify or
    remove, of admin values (HS_ADMIN) or of any other value. Timestamps do not count; a
    write that changes nothing still needs modify_value."""
    before = {v.index: v for v in old}
    after = {v.index: v for v in new}
    bits = 0  # plain int: IntFlag arithmetic is slow
    for index in before.keys() | after.keys():
        was, now = before.get(index), after.get(index)
        admin = (was is not None and was.type in _RIGHTS_TYPES) or \
            (now is not None and now.type in _RIGHTS_TYPES)
        if was is None:
            bits |= _ADD_ADMIN if admin else _ADD_VALUE
        elif now is None:
            bits |= _REMOVE_ADMIN if admin else _REMOVE_VALUE
        elif not _same(was, now):
            bits |= _MODIFY_ADMIN if admin else _MODIFY_VALUE
    return bits or _MODIFY_VALUE


def _audited(audit: AuditContext | None, old: Sequence[Value],
             new: Sequence[Value]) -> AuditContext | None:
    """The write's audit context, naming a grant or revoke when it changes DATA_GRANT
    values (so the audit log shows who handed out or took back data access)."""
    if GRANT_TYPE not in [v[1] for v in new] and GRANT_TYPE not in [v[1] for v in old]:
        return audit  # the usual write: one pass over plain tuple fields
    action, detail = grant_changes(old, new)
    if not action:
        return audit
    return replace(audit or NO_AUDIT_CONTEXT, action=action, detail=detail)


def changed_indexes(old: Sequence[Value], new: Sequence[Value]) -> frozenset[int]:
    """Indexes whose value a write adds, changes or removes (timestamps aside)."""
    before = {v.index: v for v in old}
    after = {v.index: v for v in new}
    return frozenset(i for i in before.keys() | after.keys()
                     if after.get(i) is None or not _same(before.get(i), after[i]))


# Values that change who may do what: writing them needs the admin bits (add_admin…),
# HS_ADMIN as in Handle, DATA_GRANT because it hands out data access.
_RIGHTS_TYPES = frozenset({ADMIN_TYPE, GRANT_TYPE})
_ADD_HANDLE = int(Permission.ADD_HANDLE)
_ADD_VALUE, _REMOVE_VALUE, _MODIFY_VALUE = (int(Permission.ADD_VALUE),
                                            int(Permission.REMOVE_VALUE),
                                            int(Permission.MODIFY_VALUE))
_ADD_ADMIN, _REMOVE_ADMIN, _MODIFY_ADMIN = (int(Permission.ADD_ADMIN),
                                            int(Permission.REMOVE_ADMIN),
                                            int(Permission.MODIFY_ADMIN))


def _reference(values: Sequence[Value]) -> str | None:
    """The template a record was based on before this write (None: none, or a value at
    1001 from before templates that names none)."""
    try:
        return template_reference(values)
    except InvalidArgument:
        return None


def _same(a: Value | None, b: Value) -> bool:
    return a is not None and (a.type, a.data, a.ttl, a.permissions) == \
        (b.type, b.data, b.ttl, b.permissions)


def _seal(values: tuple[Value, ...]) -> tuple[Value, ...]:
    """Incoming HS_SECKEY values carry a secret: keep only its salted slow hash."""
    if not any(is_secret(v) for v in values):
        return values
    return tuple(_sealed(v) if is_secret(v) else v for v in values)


def _sealed(v: Value) -> Value:
    """``v`` passed validate_values, so its data is a good secret as text or UTF-8."""
    data = v.data.decode("utf-8") if isinstance(v.data, bytes) else v.data
    assert isinstance(data, str)
    return Value(v.index, SECKEY_TYPE, hash_secret(data), v.ttl, v.timestamp,
                 SECRET_PERMISSIONS)


def _merged(current: tuple[Value, ...], fresh: tuple[Value, ...]) -> tuple[Value, ...]:
    by_index = {v.index: v for v in current}
    by_index.update((v.index, v) for v in fresh)
    return validate_values(by_index.values())


def _replaced(current: tuple[Value, ...], fresh: tuple[Value, ...]) -> tuple[Value, ...]:
    """A whole-record replace keeps the secrets it does not name: nobody can read them
    back to resend, so dropping them would lock their owner out. Removing one takes an
    explicit delete of its index."""
    named = {v.index for v in fresh}
    kept = tuple(v for v in current if is_secret(v) and v.index not in named)
    return validate_values(fresh + kept) if kept else fresh


def _content(values: Sequence[Value]) -> str:
    """What a request id's fingerprint covers: secrets enter only as a placeholder, so
    no fast hash of a secret is ever stored."""
    return values_to_json(tuple(
        Value(v.index, v.type, "<secret>", v.ttl, v.timestamp, v.permissions)
        if is_secret(v) else v for v in values))


def _encode_token(prefix_key: str, last_key: str) -> str:
    return paging.encode("keys", prefix_key, last_key)


def _decode_token(token: str, prefix_key: str) -> str:
    token_prefix, last = paging.decode(token, "keys", 2)
    if token_prefix != prefix_key:
        raise InvalidArgument("page_token belongs to another listing")
    return last


__all__ = ["Allocation", "BulkRow", "Registrar"]


def _unstamped(values: Iterable[Value]) -> list[tuple[int, str, ValueData, int, Permissions]]:
    """Values as compared by a re-import: all but the timestamp, in index order."""
    return sorted(((v.index, v.type, v.data, v.ttl, v.permissions) for v in values),
                  key=itemgetter(0))
