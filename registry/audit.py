"""The audit log: who did what to which identifier or prefix, from where, and how it ended.

Two kinds of entries, in one table of every backend:

- **accepted writes**: inserted by the store *in the write's own transaction* (an
  acknowledged write always has its entry, a rolled-back one never does): one entry per
  write that ``apply`` or a unit of work applies, with the change-log sequence it got,
  and for ``apply_many`` (bulk registration) one compact entry per prefix and caller
  (:func:`bulk_rows`). A replayed request id applies nothing and adds no entry (the first
  one stands).
- **refused attempts**: inserted by :meth:`registry.store.AuditLog.record_refusal` in a
  transaction of their own (the node bounds how many, see ``node/service/audit.py``);
  ``outcome`` is the status name (``PERMISSION_DENIED``...) and ``message`` the public
  error message. They are not changes: followers never see them.

Entries hold no values, so no secret (an HS_SECKEY's text, a password in an
authorization header) can reach one; messages are the public error messages, which never
echo value data. Text that came from a caller is cut to a bounded length.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from registry.access.principals import identity_key
from registry.access.rights import governed_prefix
from registry.errors import IdnodeError
from registry.identifier import Handle, Prefix
from registry.record import NO_AUDIT_CONTEXT, Write

OUTCOME_OK = "ok"
# A query filter only: any outcome but "ok".
OUTCOME_REFUSED = "refused"
MAX_TEXT_CHARS = 512  # principal, target, request id (as the log formatter cuts them)
MAX_MESSAGE_CHARS = 1024
MAX_SHORT_CHARS = 64  # action, outcome, door
MAX_ADDRESS_CHARS = 128


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log.

    ``prefix_key`` (the prefix the target belongs to: an identifier's prefix, the prefix a
    prefix handle ``0.NA/P`` governs, or the prefix itself) and ``principal_key`` (the
    normalised principal) are what the query filters compare; ``id`` is assigned by the
    store, increasing in insertion order; ``sequence`` is the change-log sequence of an
    accepted write (0 for a refused attempt).
    """

    at: int
    principal: str
    action: str
    target: str
    outcome: str = OUTCOME_OK
    request_id: str = ""
    client_address: str = ""
    door: str = ""
    message: str = ""
    sequence: int = 0
    prefix_key: str = ""
    principal_key: str = ""
    id: int = 0

    @property
    def accepted(self) -> bool:
        return self.outcome == OUTCOME_OK

    def row(self) -> tuple[object, ...]:
        """The columns every SQL backend inserts, in :data:`COLUMNS` order."""
        return (self.at, self.principal, self.principal_key, self.action, self.target,
                self.prefix_key, self.request_id, self.outcome, self.client_address,
                self.door, self.message, self.sequence)

    @classmethod
    def from_row(cls, row: tuple[object, ...] | list[object]) -> AuditEntry:
        """An entry from ``SELECT id, <COLUMNS>``."""
        (id_, at, principal, principal_key, action, target, prefix_key, request_id,
         outcome, client_address, door, message, sequence) = row
        return cls(int(str(at)), str(principal), str(action), str(target), str(outcome),
                   str(request_id), str(client_address), str(door), str(message),
                   int(str(sequence)), str(prefix_key), str(principal_key), int(str(id_)))


COLUMNS = ("at, principal, principal_key, action, target, prefix_key, request_id, outcome, "
           "client_address, door, message, seq")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


@functools.lru_cache(maxsize=1024)
def principal_key(principal: str) -> str:
    """The normalised principal (``300:88.118.8/admin``) that filters compare; text that
    is no ``index:handle`` identity (a token id) is compared as it is."""
    if not principal:
        return ""
    try:
        return identity_key(principal)
    except IdnodeError:
        return principal


def handle_prefix_key(handle: Handle) -> str:
    """The prefix an identifier's entries belong to: its own, or for a prefix handle
    ``0.NA/P`` the prefix P it governs."""
    governed = governed_prefix(handle)
    return governed.key if governed is not None else handle.prefix_key


def target_prefix_key(target: str) -> str:
    """:func:`handle_prefix_key` of a target as a caller sent it: an identifier, else a
    prefix (an allocation), else nothing (it did not parse)."""
    try:
        return handle_prefix_key(Handle.parse(target))
    except IdnodeError:
        pass
    try:
        return Prefix.parse(target).key
    except IdnodeError:
        return ""


def accepted_row(write: Write, target: str, sequence: int, now: int) -> tuple[object, ...]:
    """The row (in :data:`COLUMNS` order) a store commits with an applied ``write``
    (``target`` as registered). A plain tuple: the bulk path builds one per identifier;
    ``row[8]`` and ``row[9]`` are the client address and door the change row carries."""
    ctx = write.audit or NO_AUDIT_CONTEXT
    return (now, write.principal, principal_key(write.principal),
            ctx.action or write.operation.value, target, handle_prefix_key(write.handle),
            write.request.request_id if write.request is not None else "", OUTCOME_OK,
            ctx.peer[:MAX_ADDRESS_CHARS], ctx.door[:MAX_SHORT_CHARS],
            ctx.detail[:MAX_MESSAGE_CHARS], sequence)


def bulk_rows(applied: Sequence[tuple[Write, str, int]], now: int) -> list[tuple[object, ...]]:
    """The rows :meth:`~registry.store.RecordStore.apply_many` commits for the writes it
    applied (``(write, target as registered, sequence)`` in sequence order): **compact**,
    one row per group of writes that share prefix, principal, action, client address,
    door and request id. A group of one is the write's own row; a larger one names the
    prefix as its target, its first sequence as ``seq``, and in ``message`` how many
    identifiers from which to which (sequences included). The change log keeps each
    identifier's principal, request id, address and door, so nothing is lost; an import
    of a million identifiers adds a few hundred rows, not a million (see
    docs/ARCHITECTURE.md for the measured cost of one row per identifier)."""
    groups: dict[tuple[str, str, str, str, str, str], list[tuple[Write, str, int]]] = {}
    for item in applied:
        write = item[0]
        ctx = write.audit or NO_AUDIT_CONTEXT
        key = (handle_prefix_key(write.handle), write.principal,
               ctx.action or write.operation.value, ctx.peer, ctx.door,
               write.request.request_id if write.request is not None else "")
        groups.setdefault(key, []).append(item)
    rows: list[tuple[object, ...]] = []
    for members in groups.values():
        first_write, first_target, first_seq = members[0]
        row = accepted_row(first_write, first_target, first_seq, now)
        if len(members) > 1:
            governed = governed_prefix(first_write.handle)
            prefix = governed.text if governed is not None else first_write.handle.prefix
            _, last_target, last_seq = members[-1]
            summary = (f"{len(members)} identifiers in one transaction, sequences "
                       f"{first_seq} to {last_seq}: {first_target} to {last_target}")
            row = (*row[:4], prefix, *row[5:10], summary[:MAX_MESSAGE_CHARS], first_seq)
        rows.append(row)
    return rows


def accepted(write: Write, target: str, sequence: int, now: int) -> AuditEntry:
    """:func:`accepted_row` as an entry (id 0: the store assigns it)."""
    return AuditEntry.from_row((0, *accepted_row(write, target, sequence, now)))


def refused(*, at: int, principal: str, action: str, target: str, outcome: str,
            message: str, request_id: str = "", client_address: str = "",
            door: str = "") -> AuditEntry:
    """The entry of a refused attempt, with caller text cut to bounded lengths."""
    principal = _cut(principal, MAX_TEXT_CHARS)
    target = _cut(target, MAX_TEXT_CHARS)
    return AuditEntry(at, principal, _cut(action, MAX_SHORT_CHARS), target,
                      _cut(outcome, MAX_SHORT_CHARS), _cut(request_id, MAX_TEXT_CHARS),
                      _cut(client_address, MAX_ADDRESS_CHARS), _cut(door, MAX_SHORT_CHARS),
                      _cut(message, MAX_MESSAGE_CHARS), 0, target_prefix_key(target),
                      principal_key(principal))


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries to return, newest first.

    ``prefix_key``: entries about identifiers of exactly that prefix, its prefix handle
    and the prefix itself (derived prefixes belong to whoever they are allocated to);
    ``principal_key``: one principal (normalised); ``since`` (inclusive) and ``until``
    (exclusive): seconds since the epoch; ``outcome``: ``ok``, ``refused`` (anything but
    ok) or one status name; ``before_id``: only entries with a smaller id (paging; 0 from
    the newest); at most ``limit`` entries.
    """

    prefix_key: str = ""
    principal_key: str = ""
    since: int | None = None
    until: int | None = None
    outcome: str = ""
    before_id: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries newest first; ``next_before_id`` is the ``before_id`` of the next page
    (0 when there is none)."""

    entries: tuple[AuditEntry, ...]
    next_before_id: int = 0


def matches(entry: AuditEntry, query: AuditQuery) -> bool:
    """Whether ``entry`` passes ``query``'s filters (paging aside); the SQL backends say
    the same in :func:`sql_filter`."""
    if query.prefix_key and entry.prefix_key != query.prefix_key:
        return False
    if query.principal_key and entry.principal_key != query.principal_key:
        return False
    if query.since is not None and entry.at < query.since:
        return False
    if query.until is not None and entry.at >= query.until:
        return False
    if query.outcome == OUTCOME_REFUSED:
        return entry.outcome != OUTCOME_OK
    return not query.outcome or entry.outcome == query.outcome


def sql_filter(query: AuditQuery, mark: str) -> tuple[str, list[object]]:
    """``WHERE`` conditions (joined by AND; ``TRUE`` when none) and their parameters, with
    ``mark`` as the placeholder. ``outcome <> 'ok'`` is spelled literally so that the
    partial index of refused entries applies."""
    terms: list[str] = []
    params: list[object] = []
    if query.prefix_key:
        terms.append(f"prefix_key = {mark}")
        params.append(query.prefix_key)
    if query.principal_key:
        terms.append(f"principal_key = {mark}")
        params.append(query.principal_key)
    if query.since is not None:
        terms.append(f"at >= {mark}")
        params.append(query.since)
    if query.until is not None:
        terms.append(f"at < {mark}")
        params.append(query.until)
    if query.outcome == OUTCOME_REFUSED:
        terms.append(f"outcome <> '{OUTCOME_OK}'")
    elif query.outcome:
        terms.append(f"outcome = {mark}")
        params.append(query.outcome)
    if query.before_id > 0:
        terms.append(f"id < {mark}")
        params.append(query.before_id)
    return " AND ".join(terms) or "1 = 1", params


def page_of(rows: list[AuditEntry], limit: int) -> AuditPage:
    """A page from up to ``limit + 1`` entries, newest first (one more says there is a
    next page)."""
    if len(rows) > limit:
        kept = rows[:limit]
        return AuditPage(tuple(kept), kept[-1].id if kept else 0)
    return AuditPage(tuple(rows))


__all__ = ["COLUMNS", "OUTCOME_OK", "OUTCOME_REFUSED", "AuditEntry", "AuditPage",
           "AuditQuery", "accepted", "accepted_row", "bulk_rows", "handle_prefix_key",
           "matches", "page_of", "principal_key", "refused", "sql_filter",
           "target_prefix_key"]
