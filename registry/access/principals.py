"""Principals: Handle identities ``index:handle`` such as ``300:88.118.8/ADMIN``.

An identity exists because that identifier holds, at that index, an HS_SECKEY (a secret,
stored only as a salted scrypt hash) or an HS_PUBKEY (a public key). What a principal
may do is decided by :mod:`registry.access.policy` from HS_ADMIN values, never here.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from registry.errors import InvalidArgument
from registry.identifier import Handle, Prefix

ADMIN_INDEX = 300
ADMIN_SUFFIX = "ADMIN"
# scrypt parameters: ~16 MiB and tens of milliseconds per verification; the node caches
# successful verifications so a client pays this once, not per request.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MIN_SECRET_CHARS = 12
MAX_SECRET_CHARS = 1024


class Scope(enum.Enum):
    """How much of its identity's rights a credential carries.

    A secret or a client certificate carries all of them (``FULL``). A token carries
    ``WRITE`` (everything but changing rights, managing tokens and reviewing) or
    ``RESOLVE`` (reading only: private values, listing, following).
    """

    FULL = "full"
    WRITE = "write"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the identity ``index:handle`` it proved, and how much of
    that identity's rights the credential carries.

    ``id`` is the identity as registered (for display and logs), ``key`` its normalised
    form (for comparisons). ``prefix_key`` narrows a token to identifiers under exactly
    one prefix; ``token_id`` names the token (never the token itself).
    """

    id: str
    key: str
    scope: Scope = Scope.FULL
    prefix_key: str | None = None
    token_id: str = ""

    @classmethod
    def of(cls, identity: str, *, scope: Scope = Scope.FULL, prefix_key: str | None = None,
           token_id: str = "") -> Principal:
        """The principal for ``identity`` (validated and normalised)."""
        index, handle = parse_identity(identity)
        return cls(f"{index}:{handle}", f"{index}:{handle.key}", scope, prefix_key, token_id)


@dataclass(frozen=True, slots=True)
class StoredPrincipal:
    """A row of the principals table that stores before HS_SECKEY values kept secrets
    in; still honoured when the identity's record holds no HS_SECKEY at that index."""

    principal: Principal
    secret_hash: str
    created_at: int


def admin_identity(prefix: Prefix) -> str:
    """The owner identity of a prefix, e.g. ``300:88.118.8/ADMIN``."""
    return f"{ADMIN_INDEX}:{prefix.text}/{ADMIN_SUFFIX}"


def parse_identity(identity: str) -> tuple[int, Handle]:
    """Split ``index:handle`` into its parts, validating both."""
    index_text, sep, handle_text = identity.partition(":")
    if not sep or not index_text.isdigit():
        raise InvalidArgument("identity must look like <index>:<handle>, e.g. 300:88.118.8/ADMIN")
    return int(index_text), Handle.parse(handle_text)


def identity_key(identity: str) -> str:
    """The normalised form of an identity, used to look principals up."""
    index, handle = parse_identity(identity)
    return f"{index}:{handle.key}"


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


# A well-formed hash with the current parameters that no secret is expected to match
# (an all-zero digest). The node verifies against it when an identity is unknown or
# unparsable, so that such an attempt costs one scrypt like a known identity's does and
# the answer time does not tell which identities exist. Never grants anything: callers
# refuse an unknown identity whatever the comparison says.
DUMMY_SECRET_HASH = f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${'5a' * 16}${'00' * 32}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(secret.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(digest) // 2)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def check_new_secret(secret: str) -> None:
    if len(secret) < MIN_SECRET_CHARS:
        raise InvalidArgument(f"a secret needs at least {MIN_SECRET_CHARS} characters")
    if len(secret) > MAX_SECRET_CHARS:
        # Longer would not fit an authorization header, so it could never log in.
        raise InvalidArgument(f"a secret has at most {MAX_SECRET_CHARS} characters")
    if not secret.isprintable():
        raise InvalidArgument("a secret may not contain control characters")


def generate_secret() -> str:
    return secrets.token_urlsafe(24)
