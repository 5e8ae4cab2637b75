"""Credentials from the ``authorization`` header/metadata, checked against stored principals.

``Basic base64(urlencode("300:88.118.8/ADMIN") + ":" + secret)`` (Handle style; the user
part is percent-decoded, so ``%2F`` and ``/`` both work, and an unencoded ``300:...`` user
is accepted too).

Verifying a scrypt hash costs tens of milliseconds of CPU, so an attacker who sends wrong
secrets could otherwise keep every request thread hashing and starve resolves. Hence:

* verifications run on a small dedicated executor (``hash_threads``) behind a bounded
  queue (``queue``); when it is full a new check is refused at once with
  ``ResourceExhausted`` instead of tying up one more request thread;
* successful checks are remembered for a few minutes and failures for a few seconds
  (keyed by a SHA-256 of the header, never the secret itself), in two separate bounded
  caches, so a flood of distinct bad headers never evicts the good logins;
* after ``max_failures`` consecutive failures for one identity within
  ``failure_window_seconds``, further attempts for that identity are refused for
  ``backoff_seconds`` without hashing;
* an unknown or unparsable identity is verified against a dummy hash with the same
  parameters, and refused with the same message as a wrong secret, so neither the answer
  nor its time tells which identities exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from registry.access.principals import (
    DUMMY_SECRET_HASH,
    Principal,
    StoredPrincipal,
    identity_key,
    verify_secret,
)
from registry.access.tokens import StoredToken, split_token
from registry.errors import IdnodeError, ResourceExhausted, Unauthenticated, Unavailable

MAX_HEADER_CHARS = 4096
BUSY_MESSAGE = "too many credential checks in progress, retry later"

Lookup = Callable[[str], StoredPrincipal | None]
TokenLookup = Callable[[str], StoredToken | None]
Verify = Callable[[str, str], bool]

_T = TypeVar("_T")


def parse_basic(header: str) -> tuple[str, str]:
    """``(identity, secret)`` from a Basic authorization value."""
    token = header[6:].strip()
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthenticated("Basic credentials are not valid base64 of UTF-8") from None
    user, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthenticated("Basic credentials must be <identity>:<secret>")
    if user.isdigit():  # an unencoded "300:88.118.8/ADMIN:secret"
        handle, sep, secret = secret.partition(":")
        if not sep:
            raise Unauthenticated("Basic credentials must be <identity>:<secret>")
        user = f"{user}:{handle}"
    identity = urllib.parse.unquote(user)
    if not identity or not secret:
        raise Unauthenticated("Basic credentials need both an identity and a secret")
    return identity, secret


class _Memory(Generic[_T]):
    """At most ``max_entries`` values with an expiry; when full the oldest insertion goes.

    Not thread-safe on its own: the Authenticator holds its lock around every call.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[bytes, tuple[float, _T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: bytes, now: float) -> _T | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._items[key]
            return None
        return item[1]

    def drop(self, key: bytes) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def put(self, key: bytes, until: float, value: _T) -> None:
        self._items[key] = (until, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


@dataclass(slots=True)
class _Strikes:
    """Consecutive failures of one identity since ``first``, and a refusal deadline."""

    first: float
    count: int = 0
    blocked_until: float = 0.0


class Authenticator:
    """Turns an authorization value into a :class:`Principal` (or raises).

    ``lookup`` takes a normalised identity key (``registry.access.principals.identity_key``)
    and returns the stored principal or None; this class parses the credentials,
    equalises unknown identities with a dummy hash and verifies the secret itself.

    Raises ``Unauthenticated`` for malformed or wrong credentials, and
    ``ResourceExhausted`` (429 / RESOURCE_EXHAUSTED) when the check was not attempted:
    the verification queue is full, or the identity is in its back-off after
    ``max_failures`` consecutive failures. The back-off is ResourceExhausted rather than
    Unauthenticated because the secret was *not* checked: a legitimate caller with the
    right secret must not be told it is wrong (and change or distrust a good secret), but
    told to retry later, which is what 429 means to clients and proxies. It does not tell
    an attacker anything new: unknown identities are throttled exactly like known ones,
    and a caller whose good header is already remembered is not affected at all.
    """

    def __init__(self, lookup: Lookup, *, hash_threads: int = 1, queue: int = 4,
                 ttl_seconds: float = 300, failure_ttl_seconds: float = 5,
                 max_entries: int = 10_000, max_failures: int = 5,
                 failure_window_seconds: float = 60, backoff_seconds: float = 10,
                 verify: Verify = verify_secret,
                 clock: Callable[[], float] = time.monotonic,
                 tokens: TokenLookup | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if hash_threads < 1 or queue < 0 or max_entries < 1 or max_failures < 1:
            raise ValueError("hash_threads, max_entries and max_failures must be >= 1, "
                             "queue >= 0")
        self._lookup = lookup
        self._tokens = tokens
        self._wall_clock = wall_clock
        self._verify = verify
        self._clock = clock
        self._ttl = ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._max_failures = max_failures
        self._window = failure_window_seconds
        self._backoff = backoff_seconds
        self.hash_threads = hash_threads
        self.queue = queue
        self._lock = threading.Lock()
        self._granted: _Memory[Principal] = _Memory(max_entries)
        # Which remembered headers prove an identity of each identifier, so a write to
        # that identifier (a new secret, a removed one) forgets them at once.
        self._granted_by_handle: dict[str, set[bytes]] = {}
        self._refused: _Memory[str] = _Memory(max_entries)
        self._strikes: OrderedDict[bytes, _Strikes] = OrderedDict()
        self._max_strikes = max_entries
        self._slots = threading.BoundedSemaphore(hash_threads + queue)
        self._executor = ThreadPoolExecutor(max_workers=hash_threads,
                                             thread_name_prefix="idnode-auth")
        # Counters for tests and diagnostics (read without the lock: ints are atomic).
        self.checks_run = 0          # hash verifications started
        self.checks_refused_busy = 0  # checks refused because the queue was full
        self.pending_checks = 0      # checks admitted (running or queued)
        self.max_concurrent_checks = 0  # most verifications ever running at once
        self._running = 0

    def principal(self, header: str | None) -> Principal | None:
        """None for an anonymous caller (no header)."""
        if not header:
            return None
        if len(header) > MAX_HEADER_CHARS:
            raise Unauthenticated("authorization value is too long")
        if header[:7].lower() == "bearer ":
            # Never remembered: a revoked or expired token is refused from the next
            # request on. One indexed read and one SHA-256; nothing slow to protect.
            return self._bearer(header[7:])
        digest = hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        with self._lock:
            granted = self._granted.get(digest, now)
            refused = None if granted is not None else self._refused.get(digest, now)
        if granted is not None:
            return granted
        if refused is not None:
            raise Unauthenticated(refused)
        try:
            principal = self._check(header)
        except Unauthenticated as exc:
            with self._lock:
                self._refused.put(digest, self._clock() + self._failure_ttl, exc.message)
            raise
        with self._lock:
            self._granted.put(digest, self._clock() + self._ttl, principal)
            handle_key = principal.key.partition(":")[2]
            self._granted_by_handle.setdefault(handle_key, set()).add(digest)
            if len(self._granted_by_handle) > 2 * self._max_strikes:
                self._granted_by_handle.clear()  # a bound; only loses early forgetting
                self._granted.clear()
        return principal

    def forget(self, keys: Iterable[str]) -> None:
        """Identifiers ``keys`` were written: credentials they prove are checked anew."""
        with self._lock:
            if not self._granted_by_handle:
                return
            for key in keys:
                for digest in self._granted_by_handle.pop(key, ()):
                    self._granted.drop(digest)

    def clear(self) -> None:
        """Writes may have been missed: check every credential anew."""
        with self._lock:
            self._granted_by_handle.clear()
            self._granted.clear()

    def remembered(self, header: str) -> Principal | None:
        """The principal of a header whose check succeeded recently, without checking
        anything now (None: it would need a check). The per-address limit of failed
        authentications lets such a login through: it costs no hashing."""
        if not header or len(header) > MAX_HEADER_CHARS:
            return None
        digest = hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            return self._granted.get(digest, self._clock())

    def close(self) -> None:
        """Stop the verification threads (checks after this are Unavailable)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _check(self, header: str) -> Principal:
        scheme = header[:7].lower()
        if scheme.startswith("basic "):
            identity, secret = parse_basic(header)
            return self._basic(identity, secret)
        raise Unauthenticated("authorization must be 'Basic <credentials>' or "
                              "'Bearer <token>'")

    def _bearer(self, text: str) -> Principal:
        if self._tokens is None:
            raise Unauthenticated("bearer tokens are not enabled on this node; use Basic")
        token_id, secret = split_token(text)
        token = self._tokens(token_id)
        if token is None:
            raise Unauthenticated("bearer token is not valid")
        return token.check(secret, self._wall_clock())

    def _basic(self, identity: str, secret: str) -> Principal:
        try:
            key: str | None = identity_key(identity)
        except IdnodeError:
            key = None
        # Unparsable identities are throttled by their text, hashed to bound the memory.
        text = key if key is not None else "\0" + identity.casefold()
        strike_key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        wait = self._blocked_for(strike_key, self._clock())
        if wait > 0:
            raise ResourceExhausted(f"too many failed attempts for this identity, retry in "
                                    f"{math.ceil(wait)} s", retry_after_seconds=wait)
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.checks_refused_busy += 1
            raise ResourceExhausted(BUSY_MESSAGE)
        try:
            with self._lock:
                self.pending_checks += 1
            stored = self._lookup(key) if key is not None else None
            stored_hash = stored.secret_hash if stored is not None else DUMMY_SECRET_HASH
            try:
                future = self._executor.submit(self._run, secret, stored_hash)
            except RuntimeError:  # closed: the node is stopping
                raise Unavailable("the node is shutting down") from None
            try:
                ok = future.result() and stored is not None
            except CancelledError:  # queued when close() ran
                raise Unavailable("the node is shutting down") from None
        finally:
            with self._lock:
                self.pending_checks -= 1
            self._slots.release()
        self._record(strike_key, ok, self._clock())
        if not ok or stored is None:
            raise Unauthenticated(f"wrong identity or secret for {identity!r}")
        return stored.principal

    def _run(self, secret: str, stored_hash: str) -> bool:
        with self._lock:
            self.checks_run += 1
            self._running += 1
            self.max_concurrent_checks = max(self.max_concurrent_checks, self._running)
        try:
            return self._verify(secret, stored_hash)
        finally:
            with self._lock:
                self._running -= 1

    def _blocked_for(self, strike_key: bytes, now: float) -> float:
        with self._lock:
            strikes = self._strikes.get(strike_key)
            return strikes.blocked_until - now if strikes is not None else 0.0

    def _record(self, strike_key: bytes, ok: bool, now: float) -> None:
        with self._lock:
            if ok:
                self._strikes.pop(strike_key, None)
                return
            strikes = self._strikes.get(strike_key)
            if strikes is None:
                strikes = self._strikes[strike_key] = _Strikes(now)
            elif now - strikes.first >= self._window:
                strikes.first, strikes.count = now, 0
            strikes.count += 1
            if strikes.count >= self._max_failures:
                strikes.blocked_until = now + self._backoff
                strikes.first, strikes.count = now, 0
            self._strikes.move_to_end(strike_key)
            while len(self._strikes) > self._max_strikes:
                self._strikes.popitem(last=False)
