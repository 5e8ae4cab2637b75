"""The audit log in the core: refused attempts recorded within bounds, and QueryAudit.

Accepted writes need nothing here: the store commits one audit entry with each write, in
the write's own transaction (:mod:`registry.audit`), from the
:class:`~registry.record.AuditContext` that :class:`~node.service.writes.Writes` puts on it.

**Refused attempts** (wrong credentials, permission denied, bad input, stale etag...)
are recorded by a :class:`RefusalRecorder`, so that refusing stays cheap and can never be
blocked or failed by the audit:

1. a :class:`RefusalGate` admits at most :data:`ADDRESS_BURST` entries at once per client
   address (an IPv6 address counts by its /64), refilled at :data:`ADDRESS_PER_SECOND`,
   and at most :data:`TOTAL_BURST` / :data:`TOTAL_PER_SECOND` for all addresses together;
   the next admitted entry of an address says how many of its refusals were left out;
2. admitted entries go to a bounded queue (:data:`QUEUE_ENTRIES`; full: dropped) and the
   request goes on at once;
3. one background thread inserts what is queued in small transactions of their own
   (at most :data:`BATCH_ENTRIES` per transaction); a failed insert is logged, never
   raised to anyone.

Whatever is left out is counted in ``idnode_audit_refusals_dropped_total``, and every
refusal still gets its ``write refused`` log line (node/observe/logs.py). The bounds are
per process (``--workers N`` multiplies them by N).

**QueryAudit** is for the node admin only: filters by prefix, principal, time range and
outcome, newest first, paged with an opaque token bound to the filters.
"""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from node.errors import TABLE, mapping_for
from node.observe.logs import event
from node.observe.metrics import Metrics
from node.security.auth import parse_basic
from node.service.caller import Authenticate, Caller
from registry import audit, paging
from registry.access.policy import AccessPolicy
from registry.access.principals import Principal
from registry.audit import AuditEntry, AuditQuery
from registry.errors import IdnodeError, InvalidArgument
from registry.identifier import Prefix
from registry.store import AuditLog

log = logging.getLogger("idnode.audit")

ADDRESS_BURST = 30
ADDRESS_PER_SECOND = 0.5  # 30 a minute per address once its burst is spent
TOTAL_BURST = 200
TOTAL_PER_SECOND = 50.0
MAX_ADDRESSES = 4096  # buckets remembered; the least recently refused goes first
QUEUE_ENTRIES = 1000
BATCH_ENTRIES = 200
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
OUTCOMES = frozenset({audit.OUTCOME_OK, audit.OUTCOME_REFUSED,
                      *(m.status for _, m in TABLE), "INTERNAL"})


class _Bucket:
    __slots__ = ("left", "stamp", "suppressed")

    def __init__(self, capacity: float, now: float) -> None:
        self.left = capacity
        self.stamp = now
        self.suppressed = 0

    def refill(self, capacity: float, rate: float, now: float) -> None:
        self.left = min(capacity, self.left + (now - self.stamp) * rate)
        self.stamp = now


def address_key(address: str) -> str:
    """Whose budget a refusal spends: the address, or for IPv6 its /64 (one host easily
    holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RefusalGate:
    """Token buckets per client address and for everyone; pure logic (clock injected)."""

    def __init__(self, *, address_burst: float = ADDRESS_BURST,
                 address_per_second: float = ADDRESS_PER_SECOND,
                 total_burst: float = TOTAL_BURST, total_per_second: float = TOTAL_PER_SECOND,
                 max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._address = (float(address_burst), float(address_per_second))
        self._total_limits = (float(total_burst), float(total_per_second))
        self._max = max_addresses
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._total = _Bucket(total_burst, clock())

    def admit(self, address: str) -> int | None:
        """None when this refusal is not to be recorded; else how many refusals of the
        same address were left out since its last recorded one."""
        key = address_key(address)
        now = self._clock()
        capacity, rate = self._address
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(capacity, now)
                if len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.refill(capacity, rate, now)
            self._total.refill(*self._total_limits, now)
            if bucket.left < 1 or self._total.left < 1:
                bucket.suppressed += 1
                return None
            bucket.left -= 1
            self._total.left -= 1
            suppressed, bucket.suppressed = bucket.suppressed, 0
            return suppressed


def claimed_identity(authorization: str | None) -> str:
    """The identity a Basic credential names (never its secret), as registered spelling
    goes; empty when there is none or it is not an ``index:handle`` identity."""
    if not authorization or authorization[:6].lower() != "basic ":
        return ""
    try:
        identity, _ = parse_basic(authorization)
        return Principal.of(identity).id
    except IdnodeError:
        return ""


class RefusalRecorder:
    """Records refused attempts in the audit log without ever slowing or failing the
    request that was refused (see the module docstring for the bounds)."""

    def __init__(self, store: AuditLog, metrics: Metrics, *, gate: RefusalGate | None = None,
                 max_queue: int = QUEUE_ENTRIES, batch: int = BATCH_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.metrics = metrics
        self.gate = gate or RefusalGate()
        self._max_queue = max_queue
        self._batch = batch
        self._clock = clock
        self._queue: collections.deque[AuditEntry] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def record(self, caller: Caller, action: str, exc: IdnodeError, *, target: str = "",
               request_id: str = "", principal: Principal | None = None,
               message: str | None = None) -> None:
        """Queue the entry of one refused attempt, if the bounds admit it (``message``:
        instead of the error's). Never raises."""
        try:
            address = caller.address
            suppressed = self.gate.admit(address)
            if suppressed is None:
                self.metrics.audit_refusals_dropped.inc()
                return
            message = exc.message if message is None else message
            if suppressed:
                message += (f" [+{suppressed} earlier refusals from this address not recorded:"
                            " audit rate limit]")
            entry = audit.refused(
                at=int(self._clock()),
                principal=principal.id if principal else claimed_identity(caller.authorization),
                action=action, target=target, outcome=mapping_for(exc).status,
                message=message, request_id=request_id, client_address=address,
                door=caller.door)
            with self._cond:
                if self._closed or len(self._queue) >= self._max_queue:
                    self.metrics.audit_refusals_dropped.inc()
                    return
                self._queue.append(entry)
                self._start()
                self._cond.notify_all()
        except Exception:  # the audit must never fail a request
            log.exception("could not queue a refused attempt for the audit log")

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-refusals",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft()
                         for _ in range(min(self._batch, len(self._queue)))]
                self._busy = True
            try:
                self.store.record_refusal(*batch)
            except Exception as exc:
                self.metrics.audit_refusals_dropped.inc(len(batch))
                event(log, "audit entries of refused attempts not stored", logging.ERROR,
                      entries=len(batch),
                      reason=exc.message if isinstance(exc, IdnodeError) else repr(exc))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout_seconds: float = 5.0) -> bool:
        """Wait until everything queued so far is stored (or given up); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy,
                                       timeout_seconds)

    def close(self, timeout_seconds: float = 2.0) -> None:
        """Store what is queued (within ``timeout_seconds``), then stop; later refusals
        are only logged."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_seconds)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """QueryAudit's filters as a caller gives them; see :class:`registry.audit.AuditQuery`
    for their meaning. ``since``/``until`` are seconds since the epoch."""

    prefix: str = ""
    principal: str = ""
    since: int | None = None
    until: int | None = None
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class AuditAnswer:
    entries: tuple[AuditEntry, ...]
    next_page_token: str = ""


class Audit:
    """QueryAudit (node admin only), and the recorder of refused attempts."""

    def __init__(self, store: AuditLog, policy: AccessPolicy, auth: Authenticate,
                 recorder: RefusalRecorder | None = None) -> None:
        self.store = store
        self.policy = policy
        self.auth = auth
        self.recorder = recorder

    def query(self, caller: Caller, filters: AuditFilter, page_size: int = 0,
              page_token: str = "") -> AuditAnswer:
        principal = self.auth.principal(caller.authorization)
        self.policy.require_node_admin(principal, doing="read the audit log")
        query = self._query(filters)
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size is at most {MAX_PAGE_SIZE}")
        digest = _digest(query)
        before = _decode_token(page_token, digest) if page_token else 0
        page = self.store.audit_entries(AuditQuery(
            query.prefix_key, query.principal_key, query.since, query.until, query.outcome,
            before, page_size or DEFAULT_PAGE_SIZE))
        token = _encode_token(digest, page.next_before_id) if page.next_before_id else ""
        return AuditAnswer(page.entries, token)

    @staticmethod
    def _query(filters: AuditFilter) -> AuditQuery:
        outcome = filters.outcome.strip()
        outcome = outcome.lower() if outcome.lower() in (
            audit.OUTCOME_OK, audit.OUTCOME_REFUSED) else outcome.upper()
        if outcome and outcome not in OUTCOMES:
            raise InvalidArgument(f"outcome {filters.outcome!r} is not ok, refused or a "
                                  "status name such as PERMISSION_DENIED")
        if filters.since is not None and filters.until is not None \
                and filters.until <= filters.since:
            raise InvalidArgument("until must be after since")
        prefix_key = Prefix.parse(filters.prefix).key if filters.prefix else ""
        return AuditQuery(prefix_key, audit.principal_key(filters.principal.strip()),
                          filters.since, filters.until, outcome)


def _digest(query: AuditQuery) -> str:
    text = "\n".join((query.prefix_key, query.principal_key, str(query.since),
                      str(query.until), query.outcome))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _encode_token(digest: str, before_id: int) -> str:
    return paging.encode("audit", digest, str(before_id))


def _decode_token(token: str, digest: str) -> int:
    token_digest, before = paging.decode(token, "audit", 2)
    before_id = paging.positive_int(before)
    if token_digest != digest:
        raise InvalidArgument("page_token belongs to a query with other filters")
    return before_id


__all__ = ["Audit", "AuditAnswer", "AuditFilter", "RefusalGate", "RefusalRecorder",
           "address_key", "claimed_identity"]
