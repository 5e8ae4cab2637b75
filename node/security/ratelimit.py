"""Rate limits: token buckets per key (a client address or a principal), bounded in memory.

A :class:`RateLimiter` gives every key a bucket of ``burst`` tokens that refills at
``per_second``; a request takes one token (a BatchResolve one per identifier, at most
``burst``), and a request that finds too few is refused with
:class:`~registry.errors.ResourceExhausted` carrying ``retry_after_seconds`` (the time
until enough tokens are back), which every door turns into its retry hint (gRPC
``retry-after`` trailing metadata, HTTP ``Retry-After``). A refused request takes
nothing, so a client that retries after the hint succeeds.

**One float per key.** The bucket is kept as its *theoretical arrival time* (GCRA): the
moment the bucket will be full again. Taking ``n`` tokens moves it ``n / per_second``
later; the request is refused if that would put it more than ``burst / per_second``
ahead of now. A key whose time is in the past has a full bucket, exactly like a key
never seen, so forgetting it loses nothing.

**Bounded.** At most ``max_keys`` keys per limiter (``rate_limit_max_keys``, default
100,000; measured: ~12 MB of buckets, ~24 MB with the key strings and the peer cache for
an address limiter flooded by 200,000 distinct addresses; nothing when idle; a principal
limiter never holds more keys than there are principals). Keys are kept in order of
their last granted request and, when full, the least recently used key is dropped. A
dropped key comes back with a full bucket, so a flood of distinct keys can only make the
limiter more lenient for the keys it pushes out, never refuse anyone wrongly.

**Lock-cheap.** One lock per limiter, held for a dict lookup, two float operations and a
dict update (no I/O, no allocation but the first time a key is seen); the clock is read
outside it. Measured (docs/ARCHITECTURE.md, "Rate limits"): ~0.6 µs per check on the
resolve hot path, address lookup included; a disabled limiter is ``None`` and costs a
``None`` check.

**Addresses.** :class:`AddressKeys` turns a door's peer string (gRPC ``ipv4:1.2.3.4:5555``,
``ipv6:[::1]:5555``; HTTP and Handle ``host:port``) into the key: the IPv4 address, or
the IPv6 /64 network (one subscriber usually holds a whole /64, so a per-address limit
on single IPv6 addresses would be a limit on nothing). IPv4-mapped IPv6 addresses count
as their IPv4 address. Addresses inside ``exempt`` networks are not limited. An empty
peer (an in-process caller) is never limited by address. Limits are per process: with
``--workers N`` a client whose connections spread over the processes may get up to N
times the rate.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from registry.errors import ResourceExhausted

DEFAULT_MAX_KEYS = 100_000
# Peer strings (one per connection) remembered with their key; cleared when full.
MAX_PEER_CACHE = 65_536

Clock = Callable[[], float]


class Counter(Protocol):
    """The metric child a limiter counts its refusals in (``inc()``)."""

    def inc(self, amount: float = 1) -> None: ...


class _NoCounter:
    def inc(self, amount: float = 1) -> None:
        pass


def retry_seconds(wait: float) -> int:
    """A wait as the whole seconds a retry hint carries: rounded up, at least 1."""
    return max(1, math.ceil(wait))


class RateLimiter:
    """Token buckets per key: ``burst`` tokens, refilled at ``per_second``.

    ``name`` is the limiter's name in metrics (``resolve_address``); ``setting`` names
    the setting an operator changes, and ``what`` the thing limited (``resolves``), for
    the refusal message. ``clock`` is injectable (tests pass a fake one).
    """

    def __init__(self, name: str, per_second: float, burst: int, *, setting: str = "",
                 what: str = "requests", per: str = "key",
                 max_keys: int = DEFAULT_MAX_KEYS, clock: Clock = time.monotonic,
                 refused: Counter | None = None) -> None:
        if not per_second > 0 or burst < 1 or max_keys < 1:
            raise ValueError("per_second must be > 0, burst and max_keys >= 1")
        self.name = name
        self.per_second = per_second
        self.burst = burst
        self.max_keys = max_keys
        self._interval = 1.0 / per_second
        # How far ahead of now a bucket's time may run: burst tokens' worth, plus a
        # hair so that float rounding never refuses the last token of a burst.
        self._ahead = burst * self._interval * (1 + 1e-9)
        self._clock = clock
        self._refused = refused if refused is not None else _NoCounter()
        self._tat: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._message = f"over the rate limit {setting or name}: at most " \
            f"{_rate(per_second, setting)} {what} per {per} (burst {burst})"

    @property
    def tracked_keys(self) -> int:
        """Keys with a bucket in memory (at most ``max_keys``). Not ``__len__``: an idle
        limiter must not be falsy."""
        return len(self._tat)

    def take(self, key: str, cost: int = 1) -> float:
        """Take ``cost`` tokens (at most ``burst``) from ``key``'s bucket: 0.0 when
        taken, else the seconds until they would be there (nothing is taken, and
        nothing is counted: :meth:`check` counts its refusals)."""
        # The resolve hot path runs this: plain comparisons instead of min()/max() and
        # acquire/release instead of ``with`` save ~400 of ~700 ns (measured, 3.11).
        if cost > self.burst:  # noqa: PLR1730
            cost = self.burst
        now = self._clock()
        tat = self._tat
        lock = self._lock
        lock.acquire()
        try:
            due = tat.get(key, now)
            if due < now:  # noqa: PLR1730 (a full bucket)
                due = now
            due += cost * self._interval
            if due - now > self._ahead:
                return due - now - self._ahead
            tat[key] = due
            tat.move_to_end(key)
            if len(tat) > self.max_keys:
                tat.popitem(last=False)
        finally:
            lock.release()
        return 0.0

    def give_back(self, key: str, cost: int = 1) -> None:
        """Return tokens taken for something that turned out not to count (the
        failed-authentication limiter takes one before a check, and a check that
        succeeds gives it back)."""
        cost = min(cost, self.burst)
        with self._lock:
            due = self._tat.get(key)
            if due is not None:
                self._tat[key] = due - cost * self._interval

    def check(self, key: str, cost: int = 1) -> None:
        """:meth:`take`, raising ResourceExhausted (with the retry hint) when refused."""
        wait = self.take(key, cost)
        if wait:
            self._refused.inc()
            raise self.refusal(wait)

    def refusal(self, wait: float, detail: str = "") -> ResourceExhausted:
        """The error a refused caller gets: names the limit, says when to retry."""
        extra = f"; {detail}" if detail else ""
        return ResourceExhausted(f"{self._message}{extra}; retry in "
                                 f"{retry_seconds(wait)} s", retry_after_seconds=wait)

    def count_refusal(self) -> None:
        """Count a refusal decided from :meth:`take` (``check`` counts its own)."""
        self._refused.inc()


def _rate(per_second: float, setting: str) -> str:
    if setting.endswith("_per_minute"):
        return f"{per_second * 60:g}"
    return f"{per_second:g}"


def address_of(peer: str) -> str:
    """The host part of a door's peer string, without the port (``""`` if none)."""
    if peer.startswith(("ipv4:", "ipv6:")):
        peer = peer[5:]
    elif peer.startswith("unix:"):
        return "unix"
    if peer.startswith("["):  # [v6]:port
        end = peer.find("]")
        return peer[1:end] if end > 0 else peer
    host, sep, port = peer.rpartition(":")
    if sep and port.isdigit():
        return host
    return peer


class AddressKeys:
    """Peer string → rate-limit key (None: not limited by address). Remembered per peer
    string, so the hot path pays one dict lookup for a connection it has seen."""

    def __init__(self, exempt: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
                 ) -> None:
        self.exempt = tuple(exempt)
        self._cache: dict[str, str | None] = {}

    def key(self, peer: str) -> str | None:
        try:
            return self._cache[peer]
        except KeyError:
            pass
        key = self._compute(peer)
        cache = self._cache
        if len(cache) >= MAX_PEER_CACHE:
            cache.clear()
        cache[peer] = key
        return key

    def _compute(self, peer: str) -> str | None:
        host = address_of(peer)
        if not host:
            return None
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
                host.partition("%")[0])  # a scope id (fe80::1%eth0) is not the address
        except ValueError:
            return host  # a name or a unix socket: limited by what it is called
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.exempt):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
        return str(ip)


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``"10.0.0.0/8, ::1"`` → networks (ValueError names the bad one)."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for raw in text.split(","):
        part = raw.strip()
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or network") from None
    return out


class AddressLimiter:
    """A :class:`RateLimiter` keyed by the client address of a peer string."""

    def __init__(self, limiter: RateLimiter, keys: AddressKeys) -> None:
        self.limiter = limiter
        self._key = keys.key
        self._take = limiter.take

    def check(self, peer: str, cost: int = 1) -> None:
        """Raise ResourceExhausted if ``peer``'s address is over the limit."""
        key = self._key(peer)
        if key is not None:
            wait = self._take(key, cost)
            if wait:
                self.limiter.count_refusal()
                raise self.limiter.refusal(wait)

    def key(self, peer: str) -> str | None:
        return self._key(peer)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Every limiter of a node; None where the setting is 0 (disabled)."""

    resolve_address: AddressLimiter | None = None
    resolve_principal: RateLimiter | None = None
    write_address: AddressLimiter | None = None
    write_principal: RateLimiter | None = None
    auth_failures_address: AddressLimiter | None = None


NO_LIMITS = RateLimits()


def build_limits(*, resolve_per_address_per_second: float,
                 resolve_per_principal_per_second: float, resolve_burst: int,
                 write_per_address_per_second: float,
                 write_per_principal_per_second: float, write_burst: int,
                 auth_failures_per_address_per_minute: float, auth_failures_burst: int,
                 max_keys: int = DEFAULT_MAX_KEYS, exempt_networks: str = "",
                 refused: Callable[[str], Counter] | None = None,
                 clock: Clock = time.monotonic) -> RateLimits:
    """The limiters the settings ask for (a rate of 0 disables one)."""
    keys = AddressKeys(parse_networks(exempt_networks))

    def limiter(name: str, rate: float, burst: int, what: str, per: str,
                setting: str, scale: float = 1.0) -> RateLimiter | None:
        if rate <= 0:
            return None
        return RateLimiter(name, rate / scale, burst, setting=setting, what=what, per=per,
                           max_keys=max_keys, clock=clock,
                           refused=refused(name) if refused is not None else None)

    def by_address(made: RateLimiter | None) -> AddressLimiter | None:
        return AddressLimiter(made, keys) if made is not None else None

    return RateLimits(
        resolve_address=by_address(limiter(
            "resolve_address", resolve_per_address_per_second, resolve_burst, "resolves",
            "second from one client address", "rate_resolve_per_address_per_second")),
        resolve_principal=limiter(
            "resolve_principal", resolve_per_principal_per_second, resolve_burst,
            "resolves", "second by one principal", "rate_resolve_per_principal_per_second"),
        write_address=by_address(limiter(
            "write_address", write_per_address_per_second, write_burst, "writes",
            "second from one client address", "rate_write_per_address_per_second")),
        write_principal=limiter(
            "write_principal", write_per_principal_per_second, write_burst, "writes",
            "second by one principal", "rate_write_per_principal_per_second"),
        auth_failures_address=by_address(limiter(
            "auth_failures_address", auth_failures_per_address_per_minute,
            auth_failures_burst, "failed authentications", "minute from one client address",
            "rate_auth_failures_per_address_per_minute", scale=60.0)),
    )


__all__ = ["NO_LIMITS", "AddressKeys", "AddressLimiter", "RateLimiter",
           "RateLimits", "address_of", "build_limits", "parse_networks", "retry_seconds"]
