"""Admission: the rate limits the core applies before a use case runs, for every door.

Every door builds a :class:`~node.service.caller.Caller` (its ``peer`` carries the client
address) and calls the core; the core asks this object first, so a limit holds the same
way over gRPC, HTTP and the Handle protocol. The limiters themselves are in
:mod:`node.security.ratelimit`; this module decides which one a request meets:

* a **read** (resolve, batch resolve, list) takes a token from the caller's address
  (``resolve_address``), then, once authenticated, from its principal
  (``resolve_principal``); a BatchResolve takes one per identifier;
* a **write** (register, update, delete, put, bulk registration as one, prefix
  allocation) takes a token from the address (``write_address``) before the credentials
  are checked, then from the principal (``write_principal``);
* **authentication**: each failed one (wrong secret, unknown identity, malformed
  credentials) spends a token of its address (``auth_failures_address``; a check takes
  the token before it runs and a success gives it back). An address whose tokens are
  spent is refused RESOURCE_EXHAUSTED *before* any secret is hashed, also with a correct
  secret: it was not checked, so the caller is told to retry later, never that it is
  wrong. A login the Authenticator already remembers as good costs no check and passes.

The anonymous resolve hot path (``Core.public``) does not build a Caller: the doors call
:attr:`Admission.public` with the raw peer string first, and it is ``None`` when the
per-address resolve limit is off, so the hot path then pays one ``None`` check.
"""

from __future__ import annotations

from collections.abc import Callable

from node.security.ratelimit import NO_LIMITS, RateLimits
from node.service.caller import Authenticate, Caller
from registry.access.principals import Principal
from registry.errors import ReadOnly, Unauthenticated

Remembered = Callable[[str], Principal | None]


class Admission:
    """Authentication plus the rate limits, asked once per request by the core."""

    def __init__(self, auth: Authenticate, limits: RateLimits = NO_LIMITS, *,
                 remembered: Remembered | None = None, read_only: str = "") -> None:
        self.auth = auth
        # Non-empty on a mirror: why every write is refused (ReadOnly, PERMISSION_DENIED).
        self.read_only = read_only
        self.limits = limits
        self._remembered = remembered
        # The hot path's check: the raw peer string of an anonymous resolve; None: off.
        self.public: Callable[[str], None] | None = (
            limits.resolve_address.check if limits.resolve_address is not None else None)

    def authenticate(self, caller: Caller) -> Principal | None:
        """The caller's principal (None: anonymous), failed attempts limited per address.

        A check takes a token of its address *before* it runs and gives it back if it
        succeeds, so concurrent guesses from one address cannot all slip past an almost
        empty bucket while the first ones are still being hashed."""
        header = caller.authorization
        failures = self.limits.auth_failures_address
        if not header or failures is None:
            return self.auth.principal(header, caller.certificate)
        key = failures.key(caller.peer)
        if key is None:
            return self.auth.principal(header, caller.certificate)
        limiter = failures.limiter
        wait = limiter.take(key)
        if wait:
            known = self._remembered(header) if self._remembered is not None else None
            if known is not None:
                return known
            limiter.count_refusal()
            raise limiter.refusal(wait, "credentials were not checked")
        failed = False
        try:
            principal = self.auth.principal(header, caller.certificate)
        except Unauthenticated:
            failed = True
            raise
        finally:
            if not failed:  # a success, or the check did not run (busy, shutting down)
                limiter.give_back(key)
        return principal

    def reader(self, caller: Caller, cost: int = 1) -> Principal | None:
        """Admit a read of ``cost`` identifiers and authenticate its caller."""
        limits = self.limits
        if limits.resolve_address is not None:
            limits.resolve_address.check(caller.peer, cost)
        principal = self.authenticate(caller)
        if principal is not None and limits.resolve_principal is not None:
            limits.resolve_principal.check(principal.id, cost)
        return principal

    def writable(self) -> None:
        """ReadOnly when this node takes no writes (a mirror): asked before anything
        else of a write, so no credential is checked and no limit is spent."""
        if self.read_only:
            raise ReadOnly(self.read_only)

    def writer(self, caller: Caller) -> Principal | None:
        """Admit one write and authenticate its caller."""
        self.writable()
        limits = self.limits
        if limits.write_address is not None:
            limits.write_address.check(caller.peer)
        principal = self.authenticate(caller)
        if principal is not None and limits.write_principal is not None:
            limits.write_principal.check(principal.id)
        return principal


__all__ = ["Admission"]
