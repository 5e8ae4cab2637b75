"""L2: the Redis cache shared by every node process and host.

Redis is a cache, never the source of truth. Everything here fails open: a Redis error,
a timeout or an undecodable value is a miss (or a skipped write) for the caller, counted
in ``idnode_cache_redis_errors_total`` / ``idnode_cache_redis_up`` and logged once per
state change, never raised. A circuit breaker keeps a slow or dead Redis from costing
every request a timeout: after a failure Redis is skipped for ``retry_after`` and then
one request probes it.

Layout (all names versioned, so a format change is a new namespace, not a crash):

Every name starts with ``idnode:v1:<store id>:``: the store id is a random id a store
gets when it is created, so nodes that share one Redis but not one store never see
each other's answers (or invalidations); nodes on one store share one namespace.

* ``idnode:v1:<store id>:rec:<identifier key>`` — a HASH per identifier. Field ``""`` is the full
  public view, other fields are view ids (see :func:`node.service.resolve.view_id`); one DEL
  drops every view of an identifier. Field ``~seq`` is the *floor*: the change-log
  sequence of the newest write known for the identifier. An entry older than the floor
  is never stored and never served. The hash lives as long as its longest-lived field.
* ``idnode:v1:<store id>:invalidate`` — the pub/sub channel; each message is
  ``<origin>|<sequence>|<key>`` (an empty key means "drop everything").

Every command names one key (or the one channel), so the same layout works on a Redis
Cluster, where each identifier's hash lands in its own slot: no hash tags, no multi-key
command across slots. On a cluster the channel is a *sharded* channel (SPUBLISH /
SSUBSCRIBE, Redis 7): its messages stay inside the shard that owns the channel's slot
instead of being broadcast to every node of the cluster, and every process subscribes
to that one shard (see :mod:`node.cache.redis_url` for the URL forms).

Why a floor instead of a plain DEL: a reader that read the store just before a write
committed may try to store its (now old) answer just after the writer deleted the key.
The writer's invalidation leaves the floor behind, and the set script refuses an entry
whose sequence is below it (a compare-and-set inside one Lua script). A reader that took
longer than half the floor's lifetime between its store read and its set does not set
at all, so the floor always outlives the readers it guards against.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import secrets
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from node.cache import redis_url
from node.cache.l1 import Entry
from node.observe.metrics import Metrics

log = logging.getLogger("idnode.cache")

NAMESPACE = "idnode:v1:"


def key_prefix(store_id: str) -> str:
    """Where the entries of the store named ``store_id`` live."""
    return f"{NAMESPACE}{store_id}:rec:"


def channel(store_id: str) -> str:
    """Where invalidations of the store named ``store_id`` are published."""
    return f"{NAMESPACE}{store_id}:invalidate"

FLOOR_FIELD = "~seq"  # view ids never start with "~" (they are "", "a;..." or "p;...")
FORMAT_VERSION = 1
# Invalidations that could not reach Redis are kept (newest sequence per key) and
# retried; past this many, the whole namespace is purged on recovery instead.
MAX_PENDING_INVALIDATIONS = 10_000
_SUBSCRIBER_POLL_SECONDS = 0.25
_CONFIRM_SECONDS = 2.0
# Behind Sentinel, how often the subscriber asks whether the master moved.
_MASTER_CHECK_SECONDS = 1.0
# After losing Redis (a failover, a restart), writes acknowledged this long before the
# loss are invalidated again from the store's change log before L2 is read: their
# invalidations may have failed, or not yet reached the replica that is now the master.
REPAIR_WINDOW_SECONDS = 10.0
_POSITION_SAMPLE_SECONDS = 1.0
_CONFIRM_TYPES = ("subscribe", "ssubscribe")
_MESSAGE_TYPES = ("message", "smessage")

# version, flags, expiry (wall-clock seconds), sequence
_HEAD = struct.Struct("<BBdQ")
_LEN = struct.Struct("<I")
_FLAG_POSITIVE = 1
_STR_FIELDS = 7  # response, payload, signature, key_id, algorithm, etag, message

# KEYS[1] hash; ARGV: field, value, sequence, ttl seconds, positive ("1"/"0").
# Refuses entries older than the floor; a positive entry raises the floor to its own
# sequence (the record's last write), so an older answer cannot overwrite it later.
_SET_LUA = """
local floor = tonumber(redis.call('HGET', KEYS[1], '~seq') or '0')
local seq = tonumber(ARGV[3])
if seq < floor then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] == '1' and seq > floor then redis.call('HSET', KEYS[1], '~seq', ARGV[3]) end
local ttl = tonumber(ARGV[4])
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""

# KEYS[1] hash; ARGV: sequence, floor ttl seconds, channel, message.
# Drops every view and leaves only the floor (never lowered), then tells every process
# (on a cluster the channel is empty: the client SPUBLISHes, since a script may only
# touch its own key's slot and the channel's slot is another).
_INVALIDATE_LUA = """
local floor = tonumber(redis.call('HGET', KEYS[1], '~seq') or '0')
local seq = tonumber(ARGV[1])
if seq < floor then seq = floor end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '~seq', seq)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
"""


class LoggedChange(Protocol):
    """One write of the store's change log, as the repair needs it."""

    @property
    def key(self) -> str: ...

    @property
    def sequence(self) -> int: ...


class ChangeLog(Protocol):
    """The store's ordered change log (``registry.store.Store`` is one): the source of
    truth that repairs the L2 after invalidations may have been lost."""

    def last_sequence(self) -> int: ...

    def changes_since(self, sequence: int, limit: int) -> Sequence[LoggedChange]: ...


class CodecError(ValueError):
    """Bytes that are not an entry in our format (corrupt, other version, foreign data)."""


def encode(entry: Entry, sequence: int, *, wall_now: float, mono_now: float) -> bytes:
    """Serialise ``entry``; its monotonic expiry becomes wall-clock seconds, the only
    clock that means the same thing in another process or on another host."""
    flags = _FLAG_POSITIVE if entry.response is not None else 0
    expires_at = wall_now + (entry.expires - mono_now)
    parts = [_HEAD.pack(FORMAT_VERSION, flags, expires_at, sequence)]
    for blob in (entry.response or b"", entry.payload, entry.signature,
                 entry.key_id.encode(), entry.algorithm.encode(), entry.etag.encode(),
                 entry.message.encode()):
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def decode(data: bytes, *, wall_now: float, mono_now: float) -> tuple[Entry, int]:
    """The entry and its sequence; CodecError for anything that is not exactly one
    well-formed entry of this format version. Expiry comes back on the monotonic clock."""
    if len(data) < _HEAD.size:
        raise CodecError("shorter than the header")
    version, flags, expires_at, sequence = _HEAD.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise CodecError(f"format version {version}, expected {FORMAT_VERSION}")
    if flags & ~_FLAG_POSITIVE:
        raise CodecError(f"unknown flags {flags:#x}")
    if not math.isfinite(expires_at):
        raise CodecError("expiry is not a finite number")
    offset = _HEAD.size
    blobs: list[bytes] = []
    for _ in range(_STR_FIELDS):
        if offset + _LEN.size > len(data):
            raise CodecError("truncated")
        (size,) = _LEN.unpack_from(data, offset)
        offset += _LEN.size
        if offset + size > len(data):
            raise CodecError("truncated")
        blobs.append(bytes(data[offset:offset + size]))
        offset += size
    if offset != len(data):
        raise CodecError("trailing bytes")
    response, payload, signature, key_id, algorithm, etag, message = blobs
    positive = bool(flags & _FLAG_POSITIVE)
    if positive and not (response and payload and signature):
        raise CodecError("positive entry without response, payload or signature")
    try:
        key_text, algorithm_text, etag_text, message_text = (
            b.decode() for b in (key_id, algorithm, etag, message))
    except UnicodeDecodeError:
        raise CodecError("text field is not UTF-8") from None
    entry = Entry(response if positive else None, mono_now + (expires_at - wall_now),
                  payload, signature, key_text, algorithm_text, etag_text, message_text)
    return entry, int(sequence)


class Breaker:
    """Closed (use Redis) until a failure; then open for ``retry_after_seconds``, after
    which exactly one caller probes. Closed costs one attribute read, so a healthy Redis
    pays nothing for the protection."""

    def __init__(self, retry_after_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after_seconds
        self.clock = clock
        self._open_until = 0.0  # 0.0: closed
        self._probing = False
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self._open_until == 0.0

    def allow(self) -> bool:
        """May this caller use Redis now? At most one probe while open."""
        if self._open_until == 0.0:
            return True
        with self._lock:
            if self._open_until == 0.0:
                return True
            if self._probing or self.clock() < self._open_until:
                return False
            self._probing = True
            return True

    def success(self) -> bool:
        """Record a success; True when this closed an open breaker."""
        if self._open_until == 0.0:
            return False
        with self._lock:
            was_open = self._open_until != 0.0
            self._open_until = 0.0
            self._probing = False
            return was_open

    def failure(self) -> bool:
        """Record a failure; True when this opened a closed breaker."""
        with self._lock:
            was_closed = self._open_until == 0.0
            self._open_until = self.clock() + self.retry_after
            self._probing = False
            return was_closed


class SharedCache(Protocol):
    """What the resolver needs from a shared (L2) cache. Implementations never raise."""

    @property
    def up(self) -> bool: ...

    def get(self, key: str, view: str) -> tuple[Entry, int] | None:
        """The entry and its sequence, or None (miss, error, corrupt, expired)."""
        ...

    def lookup(self, key: str, view: str) -> tuple[tuple[Entry, int] | None, int]:
        """:meth:`get`, and the key's floor read with it (the newest write of ``key`` the
        cache knows of; 0 when unknown): a read replica must have replayed it."""
        ...

    def set(self, key: str, view: str, entry: Entry, sequence: int,
            read_started: float) -> bool:
        """Store ``entry`` (built from a store read that began at monotonic time
        ``read_started`` and reflects change-log ``sequence``) unless a newer write is
        known. True when stored."""
        ...

    def invalidate(self, key: str, sequence: int) -> bool:
        """A write to ``key`` committed as ``sequence``: drop every view everywhere."""
        ...

    def invalidate_many(self, items: Sequence[tuple[str, int]]) -> bool:
        """:meth:`invalidate` for many keys in one round trip (bulk imports)."""
        ...

    def start(self, on_invalidate: Callable[[str, int], None],
              on_resync: Callable[[], None], changes: ChangeLog | None = None) -> None:
        """Start listening for other processes' invalidations (and, given the store's
        change log, repair the cache after losing Redis)."""
        ...

    def close(self) -> None: ...


class RedisL2:
    """The Redis implementation of :class:`SharedCache`."""

    def __init__(self, url: str, metrics: Metrics, *, store_id: str, timeout_ms: int,
                 retry_after_ms: int, floor_ttl_seconds: int, invalidate_timeout_ms: int = 1000,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.metrics = metrics
        self.key_prefix = key_prefix(store_id)
        self.channel = channel(store_id)
        self.timeout = timeout_ms / 1000
        self.floor_ttl = floor_ttl_seconds
        # A reader slower than this between store read and set might outlive the floor.
        self.max_write_delay = floor_ttl_seconds / 2
        self.clock = clock
        self.monotonic = monotonic
        self.breaker = Breaker(retry_after_ms / 1000, monotonic)
        self.origin = secrets.token_hex(6)
        self.target = redis_url.parse(url)
        self.cluster = self.target.kind == "cluster"
        # One view of the sentinels for every client of this cache: each new connection
        # asks them where the master is now, which is how the clients follow a failover.
        self.sentinel = (redis_url.sentinel_for(self.target, self.timeout)
                         if self.target.kind == "sentinel" else None)
        # No retries: one timeout per failure, then the breaker, never a storm.
        self.client: Any = self._connect(self.timeout)
        self._write_client: Any = self._connect(
            max(timeout_ms, invalidate_timeout_ms) / 1000)
        # Scripts as bytes: no encoder needed, so nothing connects before the first use.
        self._set_script: Any = Script(self.client, _SET_LUA.encode())
        self._invalidate_script: Any = Script(self.client, _INVALIDATE_LUA.encode())
        self._pending: dict[str, int] = {}
        self._pending_overflow = False
        self._pending_lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._corrupt_log_after = 0.0
        self.subscriptions = 0  # successful (re)subscriptions, for tests and the log
        self.repairs = 0  # completed repairs after a loss, for tests and the log
        self._changes: ChangeLog | None = None
        # (monotonic time, change-log position) sampled while Redis is healthy, so that
        # a repair starts from a position older than the loss by the repair window.
        self._positions: collections.deque[tuple[float, int]] = collections.deque()
        self._repair_from: int | None = None  # set while L2 is not trusted
        self.messages = 0  # invalidations received from other processes
        metrics.redis_up.set(1)

    def _connect(self, timeout: float, **options: Any) -> Any:
        return redis_url.connect(
            self.target, self.sentinel, socket_timeout=timeout,
            socket_connect_timeout=self.timeout, retry=Retry(NoBackoff(), 0),
            **({"health_check_interval": 0} | options))

    # --- state -----------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.breaker.up

    def _ok(self) -> None:
        if self.breaker.success():
            self.metrics.redis_up.set(1)
            log.warning("redis cache reachable again; L2 resumed")

    def _failed(self, what: str, exc: BaseException) -> None:
        self.metrics.redis_errors.inc()
        if self.breaker.failure():
            self.metrics.redis_up.set(0)
            log.warning("redis cache unavailable (%s: %s); resolving from L1 and the store",
                        what, type(exc).__name__)

    def _corrupt(self, why: str) -> None:
        """Count every undecodable value; log at most one a minute (never the value)."""
        self.metrics.l2_corrupt.inc()
        now = self.monotonic()
        if now >= self._corrupt_log_after:
            self._corrupt_log_after = now + 60
            log.warning("undecodable value in the redis cache ignored (%s)", why)

    # --- the cache -------------------------------------------------------------------------

    def get(self, key: str, view: str) -> tuple[Entry, int] | None:
        return self.lookup(key, view)[0]

    def lookup(self, key: str, view: str) -> tuple[tuple[Entry, int] | None, int]:
        if self._pending or self._repair_from is not None or not self.breaker.allow():
            return None, 0
        try:
            raw, floor = self.client.hmget(self.key_prefix + key, [view, FLOOR_FIELD])
        except Exception as exc:  # any Redis failure is a miss
            self._failed("get", exc)
            return None, 0
        self._ok()
        try:
            floor_seq = int(floor) if floor is not None else 0
        except ValueError as exc:
            self._corrupt(str(exc))
            return None, 0
        if raw is None:
            return None, floor_seq
        try:
            if not isinstance(raw, bytes):
                raise CodecError(f"unexpected reply type {type(raw).__name__}")
            entry, sequence = decode(raw, wall_now=self.clock(), mono_now=self.monotonic())
        except (CodecError, ValueError) as exc:
            self._corrupt(str(exc))
            return None, floor_seq
        if sequence < floor_seq:
            self.metrics.l2_stale.inc()
            return None, floor_seq
        if entry.expires <= self.monotonic():
            return None, floor_seq
        return (entry, sequence), floor_seq

    def set(self, key: str, view: str, entry: Entry, sequence: int,
            read_started: float) -> bool:
        mono = self.monotonic()
        ttl = math.ceil(entry.expires - mono)
        if ttl <= 0:
            return False
        if mono - read_started > self.max_write_delay:
            self.metrics.l2_stale.inc()
            return False
        if self._pending or self._repair_from is not None or not self.breaker.allow():
            return False
        value = encode(entry, sequence, wall_now=self.clock(), mono_now=mono)
        try:
            stored = self._set_script(
                keys=[self.key_prefix + key],
                args=[view, value, sequence, ttl, "1" if entry.response is not None else "0"])
        except Exception as exc:
            self._failed("set", exc)
            return False
        self._ok()
        if not stored:
            self.metrics.l2_stale.inc()
        return bool(stored)

    def invalidate(self, key: str, sequence: int) -> bool:
        """Drop ``key`` in Redis and tell every process.

        Writes are rare and a lost invalidation is the one way L2 could serve an old
        answer, so unlike reads this is tried even while the breaker is open, with a
        longer timeout and, when Redis looked healthy, a second attempt (the script is
        idempotent). If it still fails the invalidation is kept and retried in the
        background, and this process reads nothing from L2 until it went through."""
        return self.invalidate_many(((key, sequence),))

    def _queue_invalidation(self, client: Any, key: str, sequence: int,
                            publish: bool = True) -> None:
        message = f"{self.origin}|{sequence}|{key}"
        if self.cluster:
            # EVAL, not EVALSHA: a cluster pipeline cannot load a missing script on the
            # node that owns the key, and writes are rare enough to send the text.
            client.execute_command("EVAL", _INVALIDATE_LUA, 1, self.key_prefix + key,
                                   sequence, self.floor_ttl, "", "")
            if publish:
                client.spublish(self.channel, message)
            return
        self._invalidate_script(
            keys=[self.key_prefix + key],
            args=[sequence, self.floor_ttl, self.channel if publish else "", message],
            client=client)

    def invalidate_many(self, items: Sequence[tuple[str, int]]) -> bool:
        """:meth:`invalidate` for every ``(key, sequence)``, pipelined in one round trip,
        so a bulk import does not pay a Redis round trip per identifier."""
        if not items:
            return True
        last: Exception | None = None
        for _ in range(2 if self.breaker.up else 1):
            try:
                pipe = self._write_client.pipeline(transaction=False)
                for key, sequence in items:
                    self._queue_invalidation(pipe, key, sequence)
                pipe.execute()
            except Exception as exc:
                last = exc
                continue
            self._ok()
            return True
        assert last is not None
        self._failed("invalidate", last)
        for key, sequence in items:
            self._defer(key, sequence)
        return False

    def _defer(self, key: str, sequence: int) -> None:
        with self._pending_lock:
            if len(self._pending) >= MAX_PENDING_INVALIDATIONS and key not in self._pending:
                self._pending_overflow = True
                return
            self._pending[key] = max(sequence, self._pending.get(key, 0))
            self.metrics.l2_pending.set(len(self._pending))

    def flush_pending(self) -> bool:
        """Apply invalidations that could not reach Redis earlier; True when none remain."""
        if not self._pending and not self._pending_overflow:
            return True
        if not self.breaker.allow():
            return False
        with self._pending_lock:
            pending = dict(self._pending)
            overflow = self._pending_overflow
        try:
            if overflow:
                self._purge()
            for key, sequence in pending.items():
                self._queue_invalidation(self._write_client, key, sequence)
                with self._pending_lock:
                    if self._pending.get(key) == sequence:
                        del self._pending[key]
        except Exception as exc:
            self._failed("flush", exc)
            return False
        self._ok()
        with self._pending_lock:
            if overflow:
                self._pending_overflow = False
            self.metrics.l2_pending.set(len(self._pending))
            done = not self._pending and not self._pending_overflow
        if done:
            log.warning("deferred L2 invalidations applied")
        return done

    def _purge(self) -> None:
        """Too many invalidations were lost to track one by one: drop the namespace."""
        # scan_iter walks every master of a cluster; unlink splits its keys by slot.
        batch: list[bytes] = []
        for name in self.client.scan_iter(match=self.key_prefix + "*", count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)
        self._publish(f"{self.origin}|0|")

    def _publish(self, message: str) -> None:
        if self.cluster:
            self.client.spublish(self.channel, message)
        else:
            self.client.publish(self.channel, message)

    # --- invalidations from other processes ------------------------------------------------

    def start(self, on_invalidate: Callable[[str, int], None],
              on_resync: Callable[[], None], changes: ChangeLog | None = None) -> None:
        if self._thread is not None:
            return
        self._changes = changes
        self._sample_position()
        self._thread = threading.Thread(
            target=self._listen, args=(on_invalidate, on_resync), name="idnode-l2-subscriber",
            daemon=True)
        self._thread.start()

    def _listen(self, on_invalidate: Callable[[str, int], None],
                on_resync: Callable[[], None]) -> None:
        """Subscribe, apply messages, and after any disconnect resubscribe and resync
        (invalidations sent while we were away are lost, so L1 is dropped).

        Behind Sentinel the subscription is made on the master the sentinels name and is
        moved when they name another (a failover that left the old master reachable
        would otherwise keep us listening where nobody publishes any more). On a cluster
        it is a sharded subscription on the shard that owns the channel."""
        sub_client = self._connect(max(self.timeout, 2 * _SUBSCRIBER_POLL_SECONDS))
        connected_before = False
        lost = False
        while not self._closing.is_set():
            pubsub: Any = None
            try:
                pubsub = sub_client.pubsub()
                if self.cluster:
                    pubsub.ssubscribe(self.channel)
                else:
                    pubsub.subscribe(self.channel)
                self._await_confirmation(pubsub)
                # Subscribed first, so nothing published from now on is missed; then
                # the writes of the outage are invalidated again before L2 is read.
                self._repair()
                self.subscriptions += 1
                self._ok()
                if connected_before or lost:
                    on_resync()
                    log.warning("redis invalidation channel resubscribed; L1 dropped")
                connected_before = True
                lost = False
                check_master_at = time.monotonic() + _MASTER_CHECK_SECONDS
                sample_at = time.monotonic() + _POSITION_SAMPLE_SECONDS
                while not self._closing.is_set():
                    self._probe()
                    self.flush_pending()
                    if time.monotonic() >= sample_at:
                        sample_at = time.monotonic() + _POSITION_SAMPLE_SECONDS
                        self._sample_position()
                    message = self._receive(pubsub, _SUBSCRIBER_POLL_SECONDS)
                    if message is not None and message.get("type") in _MESSAGE_TYPES:
                        self._apply(message.get("data"), on_invalidate, on_resync)
                    if self.sentinel is not None and time.monotonic() >= check_master_at:
                        check_master_at = time.monotonic() + _MASTER_CHECK_SECONDS
                        self._check_master(pubsub)
            except Exception as exc:
                if self._closing.is_set():
                    break
                lost = True
                self._distrust()
                self._failed("subscribe", exc)
                on_resync()  # from now until we resubscribe, invalidations may be missed
                self._closing.wait(self.breaker.retry_after)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # a dead connection may not close
                        pubsub.close()
        sub_client.close()

    # --- repair after losing Redis ---------------------------------------------------------

    def _sample_position(self) -> None:
        """Remember where the change log is now (the repair starts from such a sample)."""
        if self._changes is None:
            return
        try:
            position = self._changes.last_sequence()
        except Exception:  # the store's own trouble is not ours to report
            return
        now = self.monotonic()
        self._positions.append((now, position))
        keep_after = now - REPAIR_WINDOW_SECONDS - 2 * _POSITION_SAMPLE_SECONDS
        while len(self._positions) > 1 and self._positions[1][0] <= keep_after:
            self._positions.popleft()

    def _distrust(self) -> None:
        """Redis was lost: read nothing from L2 until :meth:`_repair` ran. The repair
        starts from the newest position sampled at least the repair window before now
        (or the oldest known one), which covers writes whose invalidation failed during
        the outage and those that had not reached a replica promoted since."""
        if self._changes is None or self._repair_from is not None:
            return
        cutoff = self.monotonic() - REPAIR_WINDOW_SECONDS
        start = self._positions[0][1] if self._positions else 0
        for sampled_at, position in self._positions:
            if sampled_at <= cutoff:
                start = position
        self._repair_from = start

    def _repair(self) -> None:
        """Invalidate again (floors, no messages) every identifier written since the
        repair position, or drop the namespace when that is too many; then trust L2."""
        start = self._repair_from
        if start is None or self._changes is None:
            return
        changes = self._changes.changes_since(start, MAX_PENDING_INVALIDATIONS)
        if len(changes) >= MAX_PENDING_INVALIDATIONS:
            self._purge()
        else:
            newest: dict[str, int] = {}
            for change in changes:
                newest[change.key] = max(change.sequence, newest.get(change.key, 0))
            items = list(newest.items())
            for at in range(0, len(items), 1000):
                pipe = self._write_client.pipeline(transaction=False)
                for key, sequence in items[at:at + 1000]:
                    self._queue_invalidation(pipe, key, sequence, publish=False)
                pipe.execute()
        self._repair_from = None
        self.repairs += 1
        log.warning("redis cache repaired after an outage: %d writes since change %d "
                    "invalidated again", len(changes), start)

    def _receive(self, pubsub: Any, timeout: float) -> Any:
        if self.cluster:
            return pubsub.get_sharded_message(timeout=timeout)
        return pubsub.get_message(timeout=timeout)

    def _check_master(self, pubsub: Any) -> None:
        """Raise (so the caller resubscribes and repairs) when the sentinels name a
        master other than the server this subscription is on. No answer from the sentinels is not a
        reason to move: a dead master breaks the subscription by itself."""
        assert self.sentinel is not None
        connection = pubsub.connection
        if connection is None:
            return
        try:
            discover: Any = self.sentinel.discover_master  # untyped in redis-py
            host, port = discover(self.target.service)
        except redis.RedisError:
            return
        if (str(host), int(port)) != (str(connection.host), int(connection.port)):
            # The cache's own connections may still reach the old master too (it keeps
            # accepting writes until the sentinels demote it): drop them, so the next
            # command asks the sentinels again.
            for client in (self.client, self._write_client):
                with contextlib.suppress(Exception):
                    client.connection_pool.disconnect()
            raise redis.ConnectionError(
                f"sentinel names master {host}:{port}, subscribed on "
                f"{connection.host}:{connection.port}")

    def _probe(self) -> None:
        """While the breaker is open, probe from here too, so recovery (and the
        ``redis_up`` gauge) does not wait for the next cache miss."""
        if self.breaker.up or not self.breaker.allow():
            return
        try:
            self.client.ping()
        except Exception as exc:
            self._failed("ping", exc)
        else:
            self._ok()

    def _await_confirmation(self, pubsub: Any) -> None:
        """Only once Redis confirmed the subscription is nothing published later missed."""
        deadline = time.monotonic() + _CONFIRM_SECONDS
        while time.monotonic() < deadline:
            message = self._receive(pubsub, 0.1)
            if message is not None and message.get("type") in _CONFIRM_TYPES:
                return
        raise redis.TimeoutError("no subscribe confirmation from redis")

    def _apply(self, data: object, on_invalidate: Callable[[str, int], None],
               on_resync: Callable[[], None]) -> None:
        if not isinstance(data, bytes):
            return
        try:
            origin, seq_text, key = data.decode().split("|", 2)
            sequence = int(seq_text)
        except ValueError:
            self._corrupt("malformed invalidation message")
            return
        if origin == self.origin:
            return  # our own write: already applied before it was acknowledged
        self.messages += 1
        if key:
            on_invalidate(key, sequence)
        else:
            on_resync()

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.client.close()
        self._write_client.close()
        if self.sentinel is not None:
            self.sentinel.close()
