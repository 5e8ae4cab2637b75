"""Who is asking, as every front door describes it to the core.

A door hands over the raw ``authorization`` value, not a principal: the core turns it
into one, inside the use case, so that a refused credential is audited and counted the
same way whichever door it came through.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """``authorization`` as received (None: anonymous); ``peer`` and ``door`` for logs."""

    authorization: str | None = None
    peer: str = ""
    door: str = "core"

    @property
    def anonymous(self) -> bool:
        return not self.authorization


ANONYMOUS = Caller()

__all__ = ["ANONYMOUS", "Caller"]
