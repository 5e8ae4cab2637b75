"""Credentials from the ``authorization`` header/metadata, checked against the registry.

``Basic base64(urlencode("300:88.118.8/ADMIN") + ":" + secret)`` (Handle style; the user
part is percent-decoded, so ``%2F`` and ``/`` both work, and an unencoded ``300:...`` user
is accepted too). Verifying a scrypt hash costs tens of milliseconds, so successful
checks are remembered for a few minutes (keyed by a SHA-256 of the header, never the
secret itself) and failures for a few seconds, which also blunts brute force.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
import urllib.parse
from collections.abc import Callable

from registry.access.principals import Principal
from registry.errors import IdnodeError, Unauthenticated
from registry.registrar import Registrar

MAX_HEADER_CHARS = 4096


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


class Authenticator:
    """Turns an authorization value into a :class:`Principal` (or raises Unauthenticated)."""

    def __init__(self, registrar: Registrar, *, ttl_seconds: float = 300,
                 failure_ttl_seconds: float = 5, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._registrar = registrar
        self._ttl = ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._seen: dict[bytes, tuple[float, Principal | str]] = {}
        self._lock = threading.Lock()

    def principal(self, header: str | None) -> Principal | None:
        """None for an anonymous caller (no header)."""
        if not header:
            return None
        if len(header) > MAX_HEADER_CHARS:
            raise Unauthenticated("authorization value is too long")
        digest = hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        seen = self._seen.get(digest)
        if seen is not None and seen[0] > now:
            if isinstance(seen[1], Principal):
                return seen[1]
            raise Unauthenticated(seen[1])
        try:
            principal = self._check(header)
        except IdnodeError as exc:
            self._remember(digest, now + self._failure_ttl, exc.message)
            raise Unauthenticated(exc.message) from None
        self._remember(digest, now + self._ttl, principal)
        return principal

    def _check(self, header: str) -> Principal:
        scheme = header[:7].lower()
        if scheme.startswith("basic "):
            identity, secret = parse_basic(header)
            return self._registrar.authenticate(identity, secret)
        if scheme == "bearer ":
            raise Unauthenticated("bearer tokens are not enabled on this node; use Basic")
        raise Unauthenticated("authorization must be 'Basic <credentials>'")

    def _remember(self, digest: bytes, until: float, what: Principal | str) -> None:
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen.clear()
            self._seen[digest] = (until, what)

    def forget(self) -> None:
        """Drop remembered checks (after a secret changed)."""
        with self._lock:
            self._seen.clear()
