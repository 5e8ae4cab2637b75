"""Password guessing against a real node must not starve anonymous resolves.

Guessers hammer Register with wrong secrets (for the node admin, and for a stream of
distinct unknown identities that the per-identity back-off does not catch) while the
main thread resolves a public identifier. Every resolve must succeed, guesses get only
UNAUTHENTICATED or RESOURCE_EXHAUSTED, scrypt never runs on more threads than the
authenticator's bound, and a correct login still works afterwards. No latency is
asserted (the suite forbids timed assertions); the resolve p50 is printed (``-s``).
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import Counter
from typing import Any, ClassVar

import grpc
import pytest

import node.app
from idnode.v1 import registry_pb2, resolver_pb2
from node.security.auth import Authenticator
from tests.conftest import ADMIN, NODE_PREFIX, Client, NodeFactory, basic

pytestmark = pytest.mark.e2e

GUESSERS = 16
GUESS_SECONDS = 3.0
HANDLE = f"{NODE_PREFIX}.8/PUBLIC-1"


def _resolve_ms(client: Client) -> float:
    started = time.perf_counter()
    client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=HANDLE), timeout=10)
    return (time.perf_counter() - started) * 1000


class _Recorded(Authenticator):
    """The node's own Authenticator, remembered so the test can read its counters."""

    made: ClassVar[list[Authenticator]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made.append(self)


def test_guessing_secrets_does_not_starve_resolves(node_factory: NodeFactory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.app, "Authenticator", _Recorded)
    _Recorded.made.clear()
    # Every guesser here shares 127.0.0.1, which the per-address limit of failed logins
    # would refuse after its burst (tests/e2e/test_rate_limits.py); this test is about the
    # Authenticator's own bounds, which must hold against guesses from many addresses.
    built = node_factory(grpc_threads=16, rate_auth_failures_per_address_per_minute=0)
    assert len(_Recorded.made) == 1
    auth = _Recorded.made[0]
    target = f"127.0.0.1:{built.grpc_port}"
    client = Client(target)
    client.register(HANDLE, ("URL", "https://example.com/public"))
    owner = client.registry.AllocatePrefix(
        registry_pb2.AllocatePrefixRequest(prefix=f"{NODE_PREFIX}.9"), metadata=ADMIN)
    quiet = [_resolve_ms(client) for _ in range(200)]

    stop = threading.Event()
    codes: Counter[grpc.StatusCode] = Counter()
    unexpected: list[str] = []
    counter = itertools.count()
    lock = threading.Lock()

    def guess() -> None:
        c = Client(target)
        try:
            while not stop.is_set():
                n = next(counter)
                identity = (f"300:{NODE_PREFIX}/ADMIN" if n % 2
                            else f"300:{NODE_PREFIX}.{n}/ADMIN")
                try:
                    c.register(f"{NODE_PREFIX}.8/G-{n}", ("URL", "x"),
                               metadata=basic(identity, f"guess-{n:08d}"))
                    code = grpc.StatusCode.OK
                except grpc.RpcError as err:
                    code = err.code()
                with lock:
                    codes[code] += 1
                    if code not in (grpc.StatusCode.UNAUTHENTICATED,
                                    grpc.StatusCode.RESOURCE_EXHAUSTED):
                        unexpected.append(f"{identity}: {code}")
        finally:
            c.close()

    threads = [threading.Thread(target=guess, daemon=True) for _ in range(GUESSERS)]
    for t in threads:
        t.start()
    busy: list[float] = []
    deadline = time.monotonic() + GUESS_SECONDS
    try:
        while time.monotonic() < deadline:
            busy.append(_resolve_ms(client))  # raises (fails the test) on any error
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads)
    print(f"\nresolve p50 quiet {statistics.median(quiet):.2f} ms, under guessing "
          f"{statistics.median(busy):.2f} ms ({len(busy)} resolves); guesses {dict(codes)}; "
          f"scrypt checks {auth.checks_run}, refused busy {auth.checks_refused_busy}, "
          f"max concurrent {auth.max_concurrent_checks}")

    assert busy and not unexpected
    assert codes[grpc.StatusCode.UNAUTHENTICATED] > 0
    assert 0 < auth.max_concurrent_checks <= auth.hash_threads
    # The node admin's remembered login, and a fresh login of another identity, work.
    client.register(f"{NODE_PREFIX}.8/AFTER", ("URL", "https://example.com/after"))
    checks = auth.checks_run
    client.register(f"{NODE_PREFIX}.9/OWNER", ("URL", "https://example.com/owner"),
                    metadata=basic(owner.owner, owner.owner_secret))
    assert auth.checks_run == checks + 1
    client.close()
