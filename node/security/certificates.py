"""Client certificates (mutual TLS) → principals, the Handle way.

A client certificate names the identity it claims, and the identity's own record decides
whether the certificate may act as it:

* **the claim**: a subjectAltName URI ``hdl:<index>:<handle>`` (for example
  ``hdl:300:88.118.8/ADMIN``; percent-encoded where URI syntax needs it). Only when the
  certificate has no ``hdl:`` URI, a subject ``CN`` that is exactly an identity
  (``300:88.118.8/ADMIN``) is accepted instead. Two or more ``hdl:`` URIs claim nothing
  (a certificate acts as one identity or none).
* **the proof**: identifier ``<handle>`` holds, at ``<index>``, an ``HS_PUBKEY`` value
  whose data is the certificate's public key: the DER SubjectPublicKeyInfo as binary
  data, or the same key as PEM text (``-----BEGIN PUBLIC KEY-----``). So a certificate
  from the trusted CA acts only as an identity whose owner registered that very key.

A certificate that claims nothing, or whose claim is not proved, is **anonymous** (it
still got the caller through the TLS handshake, nothing more); an explicit
``authorization`` header or metadata always wins over the certificate.

The check is a record lookup, so verdicts (either way) are remembered for
``ttl_seconds`` (10 s): removing or replacing an HS_PUBKEY takes effect within that.
This module knows nothing of the principal model beyond ``principal_of(identity)``: the
composition root decides which identities are principals.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from node.observe.logs import event
from registry.access.principals import Principal, parse_identity
from registry.errors import IdnodeError
from registry.record import Record
from registry.values import ValueData

log = logging.getLogger("idnode.tls")

URI_SCHEME = "hdl:"
PUBKEY_TYPE = "HS_PUBKEY"
VERDICT_TTL_SECONDS = 10.0
MAX_VERDICTS = 10_000

Lookup = Callable[[str], Record | None]
PrincipalOf = Callable[[str], Principal | None]


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What the node uses of a verified client certificate: the identity it claims
    (None: none, or an ambiguous one), its public key (DER SubjectPublicKeyInfo) and its
    subject (for logs)."""

    identity: str | None
    public_key_der: bytes
    subject: str = ""


def claimed_identity(cert: x509.Certificate) -> str | None:
    """The ``index:handle`` identity ``cert`` claims (see the module docstring), or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
                if u[:len(URI_SCHEME)].lower() == URI_SCHEME]
    except (x509.ExtensionNotFound, ValueError):
        uris = []
    if len(uris) > 1:
        return None
    if uris:
        return _identity(urllib.parse.unquote(uris[0][len(URI_SCHEME):]))
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    if len(names) != 1:
        return None
    value = names[0].value
    return _identity(value if isinstance(value, str) else value.decode("utf-8", "replace"))


def _identity(text: str) -> str | None:
    try:
        parse_identity(text)
    except IdnodeError:
        return None
    return text


@functools.lru_cache(maxsize=1024)
def client_certificate(data: bytes) -> ClientCertificate | None:
    """A PEM or DER certificate as the node uses it; None when it does not parse.

    Cached by the certificate bytes: a door calls this per request with the bytes its
    TLS layer reports for the connection."""
    try:
        cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(data))
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        subject = cert.subject.rfc4514_string()
    except ValueError:
        return None
    return ClientCertificate(claimed_identity(cert), spki, subject)


def key_matches(data: ValueData, public_key_der: bytes) -> bool:
    """Whether HS_PUBKEY ``data`` is ``public_key_der``: the DER SubjectPublicKeyInfo as
    binary data, or the same key as PEM text."""
    if isinstance(data, bytes):
        return data == public_key_der
    if isinstance(data, str) and "-----BEGIN PUBLIC KEY-----" in data:
        try:
            key = serialization.load_pem_public_key(data.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return False
        return key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo) \
            == public_key_der
    return False


class CertificatePrincipals:
    """A client certificate → the principal it proves, or None (anonymous).

    ``lookup`` takes a normalised handle key and returns the stored record (or None);
    ``principal_of`` turns a proved identity into a principal (None: the node does not
    know it as one)."""

    def __init__(self, lookup: Lookup, principal_of: PrincipalOf, *,
                 ttl_seconds: float = VERDICT_TTL_SECONDS, max_entries: int = MAX_VERDICTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._principal_of = principal_of
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._verdicts: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()

    def principal(self, certificate: ClientCertificate) -> Principal | None:
        identity = certificate.identity
        if identity is None:
            return None
        key = hashlib.sha256(identity.encode("utf-8", "surrogatepass") + b"\0"
                             + certificate.public_key_der).digest()
        now = self._clock()
        with self._lock:
            cached = self._verdicts.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = self.check(certificate)
        with self._lock:
            self._verdicts[key] = (self._clock() + self._ttl, principal)
            self._verdicts.move_to_end(key)
            while len(self._verdicts) > self._max:
                self._verdicts.popitem(last=False)
        return principal

    def check(self, certificate: ClientCertificate) -> Principal | None:
        """The uncached check; says in the log why a claimed identity is not granted."""
        identity = certificate.identity
        if identity is None:
            return None
        index, handle = parse_identity(identity)
        record = self._lookup(handle.key)
        value = None if record is None else next(
            (v for v in record.values if v.index == index), None)
        if value is None or value.type.upper() != PUBKEY_TYPE:
            reason = f"{handle} holds no {PUBKEY_TYPE} at index {index}"
        elif not key_matches(value.data, certificate.public_key_der):
            reason = f"the {PUBKEY_TYPE} at index {index} of {handle} is another key"
        else:
            principal = self._principal_of(identity)
            if principal is not None:
                return principal
            reason = "the identity is not a principal of this node"
        event(log, "client certificate not mapped to its identity; anonymous",
              logging.WARNING, identity=identity, subject=certificate.subject, reason=reason)
        return None


class HeaderCredentials(Protocol):
    """The Authenticator's method: an authorization value → principal."""

    def principal(self, header: str | None) -> Principal | None: ...


class Credentials:
    """The core's credential step: the ``authorization`` value when there is one (it
    always wins), else the client certificate (when the door had one and mTLS is on)."""

    def __init__(self, headers: HeaderCredentials,
                 certificates: CertificatePrincipals | None = None) -> None:
        self.headers = headers
        self.certificates = certificates

    def principal(self, header: str | None,
                  certificate: ClientCertificate | None = None) -> Principal | None:
        if header or certificate is None or self.certificates is None:
            return self.headers.principal(header)
        return self.certificates.principal(certificate)


__all__ = ["CertificatePrincipals", "ClientCertificate", "Credentials", "claimed_identity",
           "client_certificate", "key_matches"]
