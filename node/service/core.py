"""The application: one object every front door holds, and the only way in.

``Core`` owns no state of its own; it gives each use case the same collaborators
(store, caches, key ring, access policy, credentials, metrics) that the composition root
(:func:`node.app.build`) assembled once, so a resolve or a write behaves identically
through gRPC, HTTP or any later door.
"""

from __future__ import annotations

import base64
import dataclasses
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from node.cache.l1 import Entry
from node.security.signing import KeyRing, PublishedKey
from node.service.admission import Admission
from node.service.applications import Applications
from node.service.audit import Audit
from node.service.caller import Authenticate, Caller
from node.service.follow import Follow
from node.service.resolve import Resolver
from node.service.templates import Templates
from node.service.tokens import Tokens
from node.service.views import SignedChange
from node.service.writes import Writes
from registry.access.tokens import StoredToken
from registry.errors import IdnodeError, InvalidArgument
from registry.record import Change
from registry.registrar import Registrar

LOGIN_TOKEN_SECONDS = 24 * 3600  # SNMS: a token is valid for 24 h


@dataclass(frozen=True, slots=True)
class Stats:
    """What the node reports upward (GetStats)."""

    prefixes: int
    identifiers: int
    sequence: int


class Core:
    """Resolve, write, follow and administer (``audit``: QueryAudit), for any front door."""

    def __init__(self, registrar: Registrar, resolver: Resolver, writes: Writes,
                 follow: Follow, auth: Authenticate, keys: KeyRing, *,
                 tokens: Tokens, applications: Applications,
                 max_batch_handles: int = 100,
                 admission: Admission | None = None, audit: Audit | None = None,
                 templates: Templates | None = None) -> None:
        self.registrar = registrar
        self.resolver = resolver
        self.writes = writes
        self.follow = follow
        self.tokens = tokens
        self.applications = applications  # prefix applications and their review
        # Metadata templates: put, publish, withdraw, get, list.
        self.templates = templates if templates is not None else \
            Templates(registrar, writes, registrar.store)
        self.auth = auth
        self.keys = keys
        self.max_batch_handles = max_batch_handles
        # Rate limits and credentials, asked before every use case (node.service.admission).
        self.admission = admission if admission is not None else Admission(auth)
        self.audit = audit or Audit(registrar.store, registrar.policy, auth, writes.recorder)
        # The hot path, bound once: an anonymous, unfiltered resolve of one identifier.
        # ``public`` itself admits nothing: a door calls ``admit_public(peer)`` first when
        # it is not None (the per-address resolve limit is on).
        self.public = resolver.public
        self.admit_public = self.admission.public

    # --- logins ------------------------------------------------------------------------

    def login(self, caller: Caller, username: str, password: str, *,
              ttl_seconds: int = LOGIN_TOKEN_SECONDS,
              description: str = "login") -> tuple[StoredToken, str]:
        """A write-scoped bearer token for ``username`` (a principal such as
        ``300:88.118.8/ADMIN``) that just proved ``password`` (its secret), valid for
        ``ttl_seconds``: the SNMS ``/identity/token`` login. The proof is checked like any
        Basic credential (failed attempts limited per address and per identity); a
        refusal is audited (``create_token``), without the password."""
        user = urllib.parse.quote(username, safe="")
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        proving = dataclasses.replace(caller, authorization=header)
        try:
            self.admission.authenticate(proving)  # the per-address limit of failures
            return self.tokens.create(proving, "", "write", "",
                                      int(self.tokens.clock()) + ttl_seconds, description)
        except IdnodeError as exc:
            self.writes.refused(proving, "create-token", exc, handle=username)
            raise

    # --- reads -------------------------------------------------------------------------

    def resolve(self, caller: Caller, handle: str, *, types: Sequence[str] = (),
                indexes: Sequence[int] = ()) -> Entry:
        """The view ``caller`` may see, filtered by ``types``/``indexes`` (their union)."""
        principal = self.admission.reader(caller)
        return self.resolver.resolve(handle, principal=principal, types=types,
                                     indexes=indexes)

    def batch_resolve(self, caller: Caller,
                      handles: Sequence[str]) -> list[Entry | IdnodeError]:
        """Each identifier's answer or error, in request order (bounded)."""
        if len(handles) > self.max_batch_handles:
            raise InvalidArgument(f"BatchResolve takes at most {self.max_batch_handles} "
                                  f"handles, got {len(handles)}")
        principal = self.admission.reader(caller, max(1, len(handles)))
        out: list[Entry | IdnodeError] = []
        for text in handles:
            try:
                out.append(self.resolver.resolve(text, principal=principal))
            except IdnodeError as exc:
                out.append(exc)
        return out

    def with_nonce(self, entry: Entry, nonce: bytes) -> bytes:
        """``entry``'s answer with a fresh signature binding ``nonce`` to its payload."""
        return self.resolver.views.with_nonce(entry, nonce)

    def sign_change(self, change: Change) -> SignedChange:
        """A change-feed entry signed for followers (mirrors verify it)."""
        return self.resolver.views.sign_change(change, self.registrar.store.store_id())

    def list_handles(self, caller: Caller, prefix: str, page_size: int = 0,
             page_token: str = "") -> tuple[list[str], str]:
        principal = self.admission.reader(caller)
        return self.registrar.list(principal, prefix, page_size, page_token)

    def signing_keys(self) -> list[PublishedKey]:
        return self.keys.published()

    def stats(self) -> Stats:
        store = self.registrar.store
        counts = store.counts()
        return Stats(counts.prefixes, counts.identifiers, store.last_sequence())


__all__ = ["LOGIN_TOKEN_SECONDS", "Core", "Stats"]
