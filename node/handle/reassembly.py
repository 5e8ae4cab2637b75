"""Requests that arrive over UDP in several datagrams (RFC 3652 §2.2.1), put together
within bounded memory and time.

A message longer than one datagram is sent as fragments, each with an envelope of its
own: the same session id, request id and MessageLength (the length of the whole
message), the truncation flag (TC) set, and a SequenceNumber counting the fragments
from 0. Fragment ``n`` carries the message's bytes from ``n × 492`` (a 512-byte
datagram less its 20-byte envelope), every fragment but the last exactly 492 of them:
the layout the server's own answers use (:func:`node.handle.codec.udp_fragments`) and
the deployed clients send.

Bounds (every number a constructor argument, defaults below):

- a message is reserved at its announced length when its first fragment arrives, and
  refused when it would take its sender (an IP address, whatever the port) past
  ``per_peer_bytes`` or all senders past ``total_bytes``: RC_SERVER_TOO_BUSY, which
  clients retry (over TCP when UDP keeps failing);
- a message still incomplete ``timeout_seconds`` after its first fragment is dropped
  silently (the client times out and retries, as for a lost datagram); expired
  messages are swept each time a fragment arrives, oldest first;
- a message longer than the request bound (``max_message_bytes``) is refused before
  anything is kept.

Garbage — a fragment whose sequence number is past the message's end, whose size is not
the one its position implies, or whose envelope disagrees with the first fragment's
(length, version, flags) — is a protocol error (RC_PROTOCOL_ERROR): the message is
dropped and the sender told once (by the server, when the refusal is no longer than
the datagram refused: no reflection amplification). A repeated fragment replaces the
earlier copy.

Pure: no sockets and an injectable clock, so the bounds are unit-tested.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from node.handle import codec as c

PER_PEER_BYTES = 256 * 1024
TOTAL_BYTES = 8 * 1024 * 1024
TIMEOUT_SECONDS = 5.0


@dataclass(slots=True)
class _Partial:
    """A message being put together."""

    peer: str
    first: c.Envelope
    count: int
    started: float
    fragments: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    """A fragment refused: answer ``code`` with ``message`` to the sender."""

    code: int
    message: str


class Reassembler:
    """Fragments in, whole messages (an envelope as for one datagram, and the message)
    out; see the module's docstring for the rules and bounds."""

    def __init__(self, *, per_peer_bytes: int = PER_PEER_BYTES,
                 total_bytes: int = TOTAL_BYTES, timeout_seconds: float = TIMEOUT_SECONDS,
                 max_message_bytes: int = c.MAX_REQUEST_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_peer_bytes = per_peer_bytes
        self.total_bytes = total_bytes
        self.timeout = timeout_seconds
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self._partials: OrderedDict[tuple[str, int, int, int], _Partial] = OrderedDict()
        self._reserved: dict[str, int] = {}  # peer → bytes reserved
        self.reserved = 0
        self.dropped = 0  # incomplete messages dropped at their timeout

    def __len__(self) -> int:
        return len(self._partials)

    def add(self, env: c.Envelope, data: bytes, host: str,
            port: int) -> tuple[c.Envelope, bytes] | Refused | None:
        """One fragment (``data``: the datagram after its envelope) from ``host:port``.

        The whole message once its last missing fragment arrives; :class:`Refused` for
        garbage or beyond the bounds; None while the message is incomplete."""
        now = self.clock()
        self._expire(now)
        try:
            c.check_envelope(env, max_bytes=self.max_message_bytes)
        except c.ProtocolError as exc:
            return Refused(c.RC_PROTOCOL_ERROR, exc.message)
        count = -(-env.length // c.UDP_DATA_BYTES)
        key = (host, port, env.session_id, env.request_id)
        partial = self._partials.get(key)
        if partial is not None and not _same_message(partial.first, env):
            self._drop(key)
            return Refused(c.RC_PROTOCOL_ERROR, "the fragments of a request disagree on "
                                                "its version, flags or length")
        problem = _misfit(env, len(data), count)
        if problem:
            if partial is not None:
                self._drop(key)
            return Refused(c.RC_PROTOCOL_ERROR, problem)
        if partial is None:
            if self._reserved.get(host, 0) + env.length > self.per_peer_bytes \
                    or self.reserved + env.length > self.total_bytes:
                return Refused(c.RC_SERVER_TOO_BUSY, "too many incomplete requests in "
                                                     "fragments; try again or use TCP")
            partial = self._partials[key] = _Partial(host, env, count, now)
            self._reserved[host] = self._reserved.get(host, 0) + env.length
            self.reserved += env.length
        partial.fragments[env.sequence] = data
        if len(partial.fragments) < count:
            return None
        self._drop(key)
        message = b"".join(partial.fragments[n] for n in range(count))
        first = partial.first
        whole = c.Envelope(first.major, first.minor, first.flags & ~c.ENV_TRUNCATED,
                           first.suggest_minor, first.session_id, first.request_id, 0,
                           len(message))
        return whole, message

    def _expire(self, now: float) -> None:
        """Drop messages whose first fragment is older than the timeout (oldest first:
        the dict is in arrival order)."""
        partials = self._partials
        while partials:
            key, partial = next(iter(partials.items()))
            if now - partial.started < self.timeout:
                return
            self._drop(key)
            self.dropped += 1

    def _drop(self, key: tuple[str, int, int, int]) -> None:
        partial = self._partials.pop(key)
        length = partial.first.length
        left = self._reserved[partial.peer] - length
        if left:
            self._reserved[partial.peer] = left
        else:
            del self._reserved[partial.peer]
        self.reserved -= length


def _same_message(first: c.Envelope, env: c.Envelope) -> bool:
    return (first.major, first.minor, first.flags, first.length) == \
        (env.major, env.minor, env.flags, env.length)


def _misfit(env: c.Envelope, size: int, count: int) -> str:
    """What is wrong with a fragment of ``size`` bytes at its position ('' if nothing)."""
    if env.sequence < 0 or env.sequence >= count:
        return (f"fragment {env.sequence} is past the end of a {env.length}-byte request "
                f"({count} fragments)")
    expected = min(c.UDP_DATA_BYTES, env.length - env.sequence * c.UDP_DATA_BYTES)
    if size != expected:
        return (f"fragment {env.sequence} of a {env.length}-byte request carries {size} "
                f"bytes, not {expected}")
    return ""


__all__ = ["PER_PEER_BYTES", "TIMEOUT_SECONDS", "TOTAL_BYTES", "Reassembler", "Refused"]
