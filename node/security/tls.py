"""The node's TLS certificate and key, read from files and reloaded when they change.

One pair (``tls_cert_file``: the PEM certificate chain, leaf first; ``tls_key_file``: its
unencrypted PEM private key) serves both the gRPC and the HTTP door. The files are read
and checked at start (an error names the setting), then re-read every
``tls_reload_interval_seconds``: when their content changed and the new pair is whole
(both parse, and the key belongs to the leaf certificate) it replaces the current one,
and every listener (the HTTP door's SSLContext; the gRPC door asks for ``current`` on
each new connection) picks it up for new handshakes. A half-written or mismatched pair
is never used: the current one keeps serving and one warning is logged per distinct bad
content, so writing the certificate and then the key (in either order) is safe.

``tls_client_ca_file`` (the CAs client certificates must chain to) is read at start
only: a CA removed from the file must stop being trusted, which an SSLContext cannot
do in place, so changing it needs a restart.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from node.observe.logs import event

log = logging.getLogger("idnode.tls")

CLIENT_AUTH_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                     "require": ssl.CERT_REQUIRED}


class TlsError(ValueError):
    """A TLS file is missing, unreadable or inconsistent; the message names the setting."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A checked certificate chain and its key, as PEM bytes, and what logs show of it."""

    cert_chain_pem: bytes
    key_pem: bytes
    serial: int
    not_after: str
    subject: str
    generation: int = 0  # 1 for the pair read at start, +1 per reload


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"setting {setting}: cannot read {path}: "
                       f"{exc.strerror or exc}") from None


def check_pair(cert_pem: bytes, key_pem: bytes) -> KeyPair:
    """The pair if it is whole (raises TlsError naming the setting otherwise)."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsError("setting tls_cert_file: no PEM certificate in the file") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsError("setting tls_key_file: the key is encrypted; give an unencrypted "
                       "PEM key (protect the file with permissions instead)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsError("setting tls_key_file: no PEM private key in the file") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != chain[0].public_key().public_bytes(der, spki):
        raise TlsError("setting tls_key_file: the key does not belong to the first "
                       "certificate in tls_cert_file")
    leaf = chain[0]
    return KeyPair(cert_pem, key_pem, leaf.serial_number,
                   leaf.not_valid_after_utc.isoformat(), leaf.subject.rfc4514_string())


def read_client_ca(path: str) -> bytes:
    """The PEM CA bundle client certificates must chain to (checked to parse)."""
    data = _read("tls_client_ca_file", path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"setting tls_client_ca_file: no PEM certificate in {path}") from None
    return data


class TlsFiles:
    """The current key pair, re-read from its files by :meth:`check` (and a watcher
    thread, once :meth:`start` ran)."""

    def __init__(self, cert_file: str, key_file: str, *, client_ca_file: str = "",
                 reload_interval_seconds: float = 5.0) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.reload_interval_seconds = reload_interval_seconds
        self.client_ca_pem = read_client_ca(client_ca_file) if client_ca_file else None
        cert_pem, key_pem = _read("tls_cert_file", cert_file), _read("tls_key_file", key_file)
        pair = check_pair(cert_pem, key_pem)
        self._current = KeyPair(pair.cert_chain_pem, pair.key_pem, pair.serial,
                                pair.not_after, pair.subject, 1)
        _warn_if_expired(self._current)
        self._seen = _digest(cert_pem, key_pem)  # the last content looked at
        self._lock = threading.Lock()
        self._listeners: list[Callable[[KeyPair], None]] = []
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> KeyPair:
        return self._current

    def add_listener(self, listener: Callable[[KeyPair], None]) -> None:
        """Called with every new pair, on the checking thread."""
        self._listeners.append(listener)

    def check(self) -> bool:
        """Re-read the files; True when a new pair replaced the current one."""
        with self._lock:
            try:
                cert_pem = Path(self.cert_file).read_bytes()
                key_pem = Path(self.key_file).read_bytes()
            except OSError as exc:
                seen = b"unreadable:" + str(exc).encode()
                if seen != self._seen:
                    self._seen = seen
                    event(log, "TLS files unreadable; keeping the current certificate",
                          logging.WARNING, reason=f"{exc.filename}: {exc.strerror}",
                          serial=hex(self._current.serial))
                return False
            seen = _digest(cert_pem, key_pem)
            if seen == self._seen:
                return False
            self._seen = seen
            if (cert_pem, key_pem) == (self._current.cert_chain_pem, self._current.key_pem):
                return False  # back to the current content after a bad intermediate state
            try:
                pair = check_pair(cert_pem, key_pem)
            except TlsError as exc:
                event(log, "new TLS files rejected; keeping the current certificate",
                      logging.WARNING, reason=str(exc), serial=hex(self._current.serial))
                return False
            self._current = KeyPair(pair.cert_chain_pem, pair.key_pem, pair.serial,
                                    pair.not_after, pair.subject, self._current.generation + 1)
            current = self._current
        event(log, "TLS certificate reloaded", serial=hex(current.serial),
              subject=current.subject, not_after=current.not_after)
        _warn_if_expired(current)
        for listener in self._listeners:
            try:
                listener(current)
            except Exception:  # one door failing must not stop the others
                log.exception("a TLS listener failed to take the new certificate")
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="tls-reload",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        while not self._halt.wait(self.reload_interval_seconds):
            try:
                self.check()
            except Exception:  # never let the watcher die
                log.exception("checking the TLS files failed")

    # --- the HTTP door's context --------------------------------------------------------

    def server_context(self, client_auth: str = "none") -> ssl.SSLContext:
        """A server SSLContext with the current pair, TLS 1.2 or later; ``client_auth``
        (none/optional/require) asks for client certificates from tls_client_ca_file.
        :func:`load_pair` puts a new pair into it in place."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        if client_auth != "none":
            if self.client_ca_pem is None:
                raise TlsError(f"setting http_tls_client_auth: {client_auth} needs "
                               "tls_client_ca_file")
            context.load_verify_locations(cadata=self.client_ca_pem.decode("ascii"))
        context.verify_mode = CLIENT_AUTH_MODES[client_auth]
        load_pair(context, self._current)
        return context


def load_pair(context: ssl.SSLContext, pair: KeyPair) -> None:
    """Put ``pair`` into ``context`` (new handshakes use it).

    ``load_cert_chain`` only reads files, so the checked bytes go through a private
    temporary directory (0700, removed at once): reading the configured files again
    could pick up a half-written pair that was never checked.
    """
    with tempfile.TemporaryDirectory(prefix="idnode-tls-") as folder:
        cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, data in ((cert_path, pair.cert_chain_pem), (key_path, pair.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        context.load_cert_chain(cert_path, key_path)
        with contextlib.suppress(OSError):
            os.unlink(key_path)


def _digest(cert_pem: bytes, key_pem: bytes) -> bytes:
    return hashlib.sha256(len(cert_pem).to_bytes(8, "big") + cert_pem + key_pem).digest()


def _warn_if_expired(pair: KeyPair) -> None:
    """An expired certificate is still served (the operator may be replacing it), but
    clients will refuse it: say so."""
    if datetime.datetime.fromisoformat(pair.not_after) <= datetime.datetime.now(datetime.UTC):
        event(log, "the TLS certificate has expired; clients will refuse it",
              logging.WARNING, serial=hex(pair.serial), not_after=pair.not_after)


__all__ = ["CLIENT_AUTH_MODES", "KeyPair", "TlsError", "TlsFiles", "check_pair",
           "load_pair", "read_client_ca"]
