"""Bearer tokens: create, list, revoke (for any door; gRPC Admin and the CLI today).

Rules (docs/ARCHITECTURE.md, "Tokens"): a token is created with a secret or a client
certificate, never with another token; a principal creates tokens for itself, the node
admin for anyone; a token acts for an identity that exists (an HS_SECKEY or HS_PUBKEY at
that index), with scope ``resolve`` or ``write``, optionally only under one prefix the
node serves, until it expires or is revoked. The token text is returned once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from node.observe.logs import AUDIT, event
from node.service.caller import Authenticate, Caller
from registry.access.principals import Principal, Scope, identity_key, parse_identity
from registry.access.tokens import (
    MAX_DESCRIPTION_CHARS,
    StoredToken,
    hash_token_secret,
    new_token,
    parse_scope,
)
from registry.errors import (
    IdnodeError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.store import TokenStore

audit = logging.getLogger(AUDIT)


class Tokens:
    """The token use cases."""

    def __init__(self, store: TokenStore, registrar: Registrar, auth: Authenticate,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.registrar = registrar
        self.auth = auth
        self.clock = clock
        # Asked before a token is created or revoked (a mirror refuses: ReadOnly).
        self.writable: Callable[[], None] = lambda: None

    def _caller(self, caller: Caller, doing: str) -> Principal:
        principal = self.auth.principal(caller.authorization, caller.certificate)
        if principal is None:
            raise Unauthenticated(f"{doing} requires credentials (authorization metadata)")
        if principal.token_id:
            raise PermissionDenied(f"{doing} needs the identity's secret or certificate, "
                                   "not a token")
        return principal

    def _may_manage(self, principal: Principal, owner_key: str, doing: str) -> None:
        if principal.key != owner_key and not self.registrar.policy.is_node_admin(principal):
            raise PermissionDenied(f"{principal.id} may not {doing}: only the identity "
                                   "itself or the node admin may")

    def create(self, caller: Caller, identity: str, scope_text: str, prefix_text: str = "",
               expires_at: int | None = None, description: str = "") -> tuple[StoredToken, str]:
        """A new token and its text (shown only now)."""
        doing = "create tokens"
        try:
            self.writable()
            principal = self._caller(caller, doing)
            owner_key = identity_key(identity) if identity else principal.key
            self._may_manage(principal, owner_key, f"create tokens for {identity}")
            scope = parse_scope(scope_text or "resolve")
            index, handle = parse_identity(identity or principal.id)
            owner = self.registrar.credential(owner_key)
            view = self.registrar.rights.view(handle.key)
            if owner is None and (view is None or not view.names(index)):
                raise NotFound(f"{index}:{handle} is not a principal (no HS_SECKEY or "
                               "HS_PUBKEY at that index)")
            prefix = Prefix.parse(prefix_text) if prefix_text else None
            if prefix is not None and not self.registrar.serves(prefix.key):
                raise InvalidArgument(f"prefix {prefix.text} is not served by this node")
            now = int(self.clock())
            if expires_at is not None and expires_at <= now:
                raise InvalidArgument("expires_at must be in the future")
            if len(description) > MAX_DESCRIPTION_CHARS or not description.isprintable():
                raise InvalidArgument(f"description must be at most {MAX_DESCRIPTION_CHARS} "
                                      "printable characters")
            token_id, secret, text = new_token()
            token = StoredToken(token_id, hash_token_secret(secret),
                                owner.principal.id if owner else f"{index}:{handle}",
                                owner_key, scope, prefix.key if prefix else None,
                                prefix.text if prefix else "", now, expires_at, None,
                                principal.id, description)
            self.store.add_token(token)
        except IdnodeError as exc:
            event(audit, "token refused", logging.WARNING, action="create-token",
                  reason=exc.message, peer=caller.peer, door=caller.door)
            raise
        event(audit, "token created", token_id=token_id, for_principal=token.principal,
              scope=scope.value, prefix=token.prefix_text, principal=principal.id,
              door=caller.door)
        return token, text

    def list(self, caller: Caller, identity: str = "") -> list[StoredToken]:
        principal = self._caller(caller, "listing tokens")
        owner_key = identity_key(identity) if identity else principal.key
        self._may_manage(principal, owner_key, f"list the tokens of {identity}")
        return self.store.list_tokens(owner_key)

    def revoke(self, caller: Caller, token_id: str) -> StoredToken:
        self.writable()
        principal = self._caller(caller, "revoking tokens")
        token = self.store.get_token(token_id.strip())
        if token is None:
            raise NotFound(f"token {token_id!r} not found")
        self._may_manage(principal, token.principal_key, f"revoke token {token_id}")
        revoked = self.store.revoke_token(token.token_id, int(self.clock()))
        assert revoked is not None
        event(audit, "token revoked", token_id=token.token_id, principal=principal.id,
              door=caller.door)
        return revoked


SCOPE_NAMES = {Scope.RESOLVE: "resolve", Scope.WRITE: "write"}

__all__ = ["SCOPE_NAMES", "Tokens"]
