"""Loopback-only guard.

The harness generates thousands of requests per second and registers identifiers; aimed
at a real node it would be a denial of service and would pollute a production registry.
So every address it connects to or binds is checked here, and only loopback is allowed.
Names are not resolved (a DNS answer could point anywhere): the only accepted name is
``localhost``.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost"})


class NotLoopbackError(ValueError):
    """The harness was asked to touch something that is not this machine's loopback."""


def require_loopback(host: str) -> str:
    """Return ``host`` unchanged if it is a loopback address, else raise."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.lower() in LOOPBACK_NAMES:
        return host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise NotLoopbackError(f"refusing to target {host!r}: the load harness only runs "
                               "against loopback (127.0.0.1, ::1, localhost)") from None
    if not address.is_loopback:
        raise NotLoopbackError(f"refusing to target {host!r}: not a loopback address")
    return host


def split_target(target: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) → (host, port), loopback enforced."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{target!r} is not host:port")
    require_loopback(host)
    return host, int(port)


def join_target(host: str, port: int) -> str:
    """The gRPC target string for ``host`` and ``port`` (IPv6 literals bracketed)."""
    require_loopback(host)
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"
