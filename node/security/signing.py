"""Signing keys: generation, the key directory, rotation, and the signers themselves.

The key directory holds one PKCS#8 PEM file per key (mode 0600, never logged) and
``keys.json`` with each key's validity. The newest active key signs; retired keys stay
published until every signature they made has expired.

Beside them, ``handle-rsa.pem`` is the Handle protocol's server key (RSA, as the Handle
System's site records and certified answers expect): made on first start, kept across
restarts, published in the node's HS_SITE (see :func:`open_handle_key`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ED25519 = "Ed25519"
ECDSA_P256 = "ECDSA-P256-SHA256"
ALGORITHMS = (ED25519, ECDSA_P256)
_META = "keys.json"
HANDLE_KEY_FILE = "handle-rsa.pem"
HANDLE_KEY_BITS = 2048

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class SigningKeyError(RuntimeError):
    """The key directory is missing, unreadable or inconsistent (a start-up error)."""


class Signer(Protocol):
    """Something that signs bytes under a published key."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_der(self) -> bytes: ...


def key_id_of(public_der: bytes) -> str:
    """Derived from the public key, so the same key always has the same id."""
    return hashlib.sha256(public_der).hexdigest()[:16]


class KeySigner:
    """A :class:`Signer` over an Ed25519 or ECDSA P-256 private key."""

    def __init__(self, private: PrivateKey) -> None:
        self._private = private
        if isinstance(private, ed25519.Ed25519PrivateKey):
            self._algorithm = ED25519
        elif isinstance(private.curve, ec.SECP256R1):
            self._algorithm = ECDSA_P256
        else:
            raise SigningKeyError(f"unsupported curve {private.curve.name}")
        self._public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._key_id = key_id_of(self._public_der)

    @classmethod
    def generate(cls, algorithm: str) -> KeySigner:
        if algorithm == ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        if algorithm == ECDSA_P256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise SigningKeyError(f"unknown signing algorithm {algorithm!r}")

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._private, ed25519.Ed25519PrivateKey):
            return self._private.sign(data)
        return self._private.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key_der(self) -> bytes:
        return self._public_der

    def private_pem(self) -> bytes:
        return self._private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())


@dataclass(frozen=True, slots=True)
class PublishedKey:
    key_id: str
    algorithm: str
    public_der: bytes
    not_before: int
    not_after: int | None
    active: bool


class KeyRing:
    """The node's keys: one active signer and every key that must stay published."""

    def __init__(self, active: Signer, published: list[PublishedKey],
                 source: Path | None = None) -> None:
        self.active = active
        self._published = published
        self._source = source
        self._stamp = _stamp(source)

    def reload_if_changed(self) -> bool:
        """Pick up a rotation made by ``idnode keys rotate`` while the node runs.

        True when the active key changed. A key directory that became unreadable keeps
        the keys in use (and raises, so the caller can report it)."""
        if self._source is None:
            return False
        stamp = _stamp(self._source)
        if stamp == self._stamp:
            return False
        fresh = KeyRing.open(self._source.parent, create=False)
        changed = fresh.active.key_id != self.active.key_id
        self.active, self._published, self._stamp = fresh.active, fresh._published, stamp
        return changed

    def published(self, now: float | None = None) -> list[PublishedKey]:
        at = time.time() if now is None else now
        return [k for k in self._published if k.not_after is None or k.not_after > at]

    @classmethod
    def ephemeral(cls, algorithm: str = ED25519) -> KeyRing:
        """A fresh in-memory key (tests, throw-away nodes)."""
        signer = KeySigner.generate(algorithm)
        return cls(signer, [PublishedKey(signer.key_id, signer.algorithm,
                                         signer.public_key_der(), int(time.time()), None, True)])

    # --- the key directory -----------------------------------------------------------------

    @classmethod
    def open(cls, key_dir: str | Path, *, algorithm: str = ED25519,
             create: bool = True) -> KeyRing:
        """Load the key directory; generate the first key when it is empty and ``create``."""
        folder = Path(key_dir)
        meta_path = folder / _META
        if not meta_path.exists():
            if not create:
                raise SigningKeyError(f"no signing keys in {folder} (run `idnode keys rotate`)")
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            rotate(folder, algorithm=algorithm, retire_after_seconds=0)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            entries = meta["keys"]
        except (OSError, ValueError, KeyError) as exc:
            raise SigningKeyError(f"cannot read {meta_path}: {exc}") from None
        published: list[PublishedKey] = []
        active: Signer | None = None
        for entry in entries:
            key_id = str(entry["key_id"])
            if entry.get("active"):
                active = _load_private(folder / f"{key_id}.pem", key_id)
            published.append(PublishedKey(
                key_id, str(entry["algorithm"]), bytes.fromhex(entry["public_key"]),
                int(entry["not_before"]), entry.get("not_after"), bool(entry.get("active"))))
        if active is None:
            raise SigningKeyError(f"{meta_path} names no active key")
        return cls(active, published, meta_path)


def _stamp(path: Path | None) -> int:
    try:
        return path.stat().st_mtime_ns if path is not None else 0
    except OSError:
        return 0


def _load_private(path: Path, key_id: str) -> KeySigner:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError(f"signing key {path} is not a PEM private key") from None
    if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"signing key {path} is neither Ed25519 nor ECDSA")
    signer = KeySigner(private)
    if signer.key_id != key_id:
        raise SigningKeyError(f"signing key {path} does not match its key_id {key_id}")
    return signer


def rotate(key_dir: str | Path, *, algorithm: str = ED25519,
           retire_after_seconds: int = 86400) -> str:
    """Make a new active key; the old active key stays published ``retire_after_seconds``
    (at least the signature validity, so what it signed still verifies). Returns the id."""
    folder = Path(key_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    meta_path = folder / _META
    now = int(time.time())
    entries: list[dict[str, object]] = []
    if meta_path.exists():
        entries = json.loads(meta_path.read_text(encoding="utf-8"))["keys"]
    signer = KeySigner.generate(algorithm)
    key_path = folder / f"{signer.key_id}.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signer.private_pem())
    for entry in entries:
        if entry.get("active"):
            entry["active"] = False
            entry["not_after"] = now + retire_after_seconds
    entries.append({"key_id": signer.key_id, "algorithm": signer.algorithm,
                    "public_key": signer.public_key_der().hex(), "not_before": now,
                    "not_after": None, "active": True})
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": entries}, indent=2), encoding="utf-8")
    os.replace(tmp, meta_path)
    return signer.key_id


def open_handle_key(key_dir: str | Path, *, create: bool = True) -> rsa.RSAPrivateKey:
    """The Handle protocol's RSA key, ``handle-rsa.pem`` in the key directory; made
    (2048 bits, mode 0600) when absent and ``create``.

    Made in a temporary file and linked into place, so processes starting together
    (``--workers``) never read half a key: the first link wins and the others load it."""
    folder = Path(key_dir)
    path = folder / HANDLE_KEY_FILE
    if not path.exists():
        if not create:
            raise SigningKeyError(f"no Handle protocol key {path}")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=HANDLE_KEY_BITS)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = folder / f".{HANDLE_KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use that one
            else:
                return key
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read Handle protocol key {path}: {exc.strerror}") \
            from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError(f"Handle protocol key {path} is not a PEM private key") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise SigningKeyError(f"Handle protocol key {path} is not an RSA key")
    if private.key_size < HANDLE_KEY_BITS:
        raise SigningKeyError(f"Handle protocol key {path} has {private.key_size} bits; "
                              f"at least {HANDLE_KEY_BITS} are needed")
    return private
