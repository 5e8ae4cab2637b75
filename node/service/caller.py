"""Who is asking, as every front door describes it to the core.

A door hands over the raw ``authorization`` value, not a principal: the core turns it
into one, inside the use case, so that a refused credential is audited and counted the
same way whichever door it came through. A door that terminated mutual TLS also hands
over the client certificate it verified (``certificate``); an ``authorization`` value wins
over it (node.security.certificates).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.security.certificates import ClientCertificate


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


ANONYMOUS = Caller()

__all__ = ["ANONYMOUS", "Caller"]
