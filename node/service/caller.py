"""Who is asking, as every front door describes it to the core.

A door hands over the raw ``authorization`` value, not a principal: the core turns it
into one, inside the use case, so that a refused credential is audited and counted the
same way whichever door it came through. A door that terminated mutual TLS also hands
over the client certificate it verified (``certificate``); an ``authorization`` value wins
over it (node.security.certificates).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Protocol

from node.security.certificates import ClientCertificate
from registry.access.principals import Principal


@dataclass(frozen=True, slots=True)
class Caller:
    """``authorization`` as received (None: anonymous); ``peer`` and ``door`` for logs;
    ``certificate``: the verified client certificate of the connection, if any."""

    authorization: str | None = None
    peer: str = ""
    door: str = "core"
    certificate: ClientCertificate | None = None

    @property
    def anonymous(self) -> bool:
        return not self.authorization and self.certificate is None

    @property
    def address(self) -> str:
        """The client's address without its port (see :func:`client_address`)."""
        return client_address(self.peer)


def client_address(peer: str) -> str:
    """The address part of a peer as the doors spell it: gRPC's ``ipv4:127.0.0.1:5000``
    and ``ipv6:[::1]:5000`` (or ``ipv6:%5B::1%5D:5000``), HTTP's ``127.0.0.1:5000`` and
    ``::1:5000`` (host and port, always with a port) → ``127.0.0.1``, ``::1``. Anything
    else (``unix:/path``, empty) is kept as it is."""
    scheme, sep, rest = peer.partition(":")
    if sep and scheme in ("ipv4", "ipv6"):
        rest = urllib.parse.unquote(rest)
    elif sep and scheme == "unix":
        return peer
    else:
        rest = peer
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return rest
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class Authenticate(Protocol):
    """The one method the core needs (credentials → principal): the authorization value,
    else the verified client certificate (node.security.certificates.Credentials)."""

    def principal(self, header: str | None,
                  certificate: ClientCertificate | None = None) -> Principal | None: ...


ANONYMOUS = Caller()

__all__ = ["ANONYMOUS", "Authenticate", "Caller"]
