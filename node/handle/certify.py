"""Certified answers: the message credential of RFC 3652 §2.2.4, signed with the node's
Handle protocol RSA key (``handle-rsa.pem``, see :func:`node.security.signing.open_handle_key`).

A client that sets the certified flag (CT) gets an answer whose credential carries

- version 0, reserved 0, options 0;
- the signer ``<0.NA/<node prefix>, 1>``: the prefix handle and index of the HS_SITE
  value whose server record publishes the key (the node answers that value over this
  door, see :mod:`node.handle.service`);
- type ``HS_SIGNED``, digest algorithm ``SHA-256`` and the RSA (PKCS#1 v1.5) signature
  of :func:`node.handle.codec.signed_bytes`: the answer's header and body, preceded for
  clients from 2.6 on by the envelope fields the Java implementation signs (versions,
  session id, request id and the signer index in the role of its session counter).

Because 2.6+ clients sign and verify the request id, every certified answer is signed
afresh: a signature cannot be cached with the answer body (docs/ARCHITECTURE.md,
"Handle protocol: certified answers", has the measured cost).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from node.handle import codec as c

SIGNER_INDEX = 1  # the index of the HS_SITE value on the node's prefix handle


class Certifier:
    """Signs answers with one RSA key on behalf of ``signer_handle``:``signer_index``."""

    def __init__(self, key: rsa.RSAPrivateKey, signer_handle: str,
                 signer_index: int = SIGNER_INDEX) -> None:
        self._key = key
        self._padding = padding.PKCS1v15()
        self._hash = hashes.SHA256()
        self.signer_handle = signer_handle.encode("utf-8")
        self.signer_index = signer_index
        numbers = key.public_key().public_numbers()
        self.public_key = c.encode_rsa_public_key(c.RsaPublicKey(numbers.e, numbers.n))

    def credential(self, *, minor: int, suggest_major: int, suggest_minor: int,
                   session_id: int, request_id: int, message: bytes) -> bytes:
        """The credential section (with its length) for an answer whose envelope has
        these fields and whose header and body are ``message``."""
        data = c.signed_bytes(major=c.MAJOR_VERSION, minor=minor, suggest_major=suggest_major,
                              suggest_minor=suggest_minor, session_id=session_id,
                              request_id=request_id, counter=self.signer_index,
                              message=message)
        signature = self._key.sign(data, self._padding, self._hash)
        return c.encode_credential(c.Credential(
            self.signer_handle, self.signer_index, c.CREDENTIAL_SIGNED, c.DIGEST_NAME_SHA256,
            signature))


__all__ = ["SIGNER_INDEX", "Certifier"]
