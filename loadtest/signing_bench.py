"""Signing benchmark: ``python -m loadtest.signing_bench`` (a measurement, not a test).

Drives the real Resolve handler (``ResolverServicer.resolve_raw``) in process, so the figures are
the node's own work per call, not gRPC's (~200 µs per call on this machine, see
docs/PERFORMANCE.md), and compares:

* hot, signing on — L1 hits serving views signed once per record version;
* hot, signing off — the same with a signer that does nothing (what signing would cost
  if it were done per request is the difference between the cold rows);
* cold, signing on / off — every call reads the store and builds the view;
* nonce — every call signs ``nonce || SHA-256(payload)``;

for Ed25519 and ECDSA P-256, and counts the signatures made during the hot runs (zero
is the claim: the hot path signs nothing per request).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from idnode.v1 import resolver_pb2
from node.app import Node, build
from node.security.signing import KeySigner
from node.settings import load
from registry.access.principals import Principal
from registry.values import Value

ADMIN = Principal.of("300:88.118/ADMIN")


class NullSigner:
    """Signs nothing: the 'signing off' baseline (never used by the node itself)."""

    def __init__(self, real: KeySigner) -> None:
        self.key_id, self.algorithm = real.key_id, real.algorithm
        self._public = real.public_key_der()

    def sign(self, data: bytes) -> bytes:
        return b""

    def public_key_der(self) -> bytes:
        return self._public


class Context:
    """The two things the handler asks of a gRPC context."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "signing-bench"),)

    def abort(self, code: object, details: str) -> None:
        raise RuntimeError(details)


def per_call_us(fn: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """Median over rounds of the mean wall time per call (one thread, nothing else)."""
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(out)


def measure(algorithm: str, ids: int, hot_calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        node = build(load(env={}, overrides={
            "data_dir": tmp, "grpc_listen": "127.0.0.1:0", "http_listen": "", "handle_listen": "",
            "signing_algorithm": algorithm, "l1_max_entries": 100_000}))
        try:
            return _measure(node, ids, hot_calls)
        finally:
            node.stop(0)


def _measure(node: Node, ids: int, hot_calls: int) -> dict[str, float]:
    handles = [f"88.118.8/SB-{i:06d}" for i in range(ids)]
    for h in handles:
        node.registrar.register(ADMIN, h, [Value(1, "URL", f"https://example.com/{h}"),
                                           Value(2, "productName", "bearing 6204-2RS")])
    requests = [resolver_pb2.ResolveRequest(handle=h).SerializeToString() for h in handles]
    hot = requests[0]
    nonce = resolver_pb2.ResolveRequest(handle=handles[0],
                                        nonce=os.urandom(16)).SerializeToString()
    ctx: Any = Context()
    handler = node.services.resolver.resolve_raw
    real = node.keys.active
    signatures = node.metrics.signing_ops.labels("view")
    gc.collect()
    gc.freeze()
    out: dict[str, float] = {}
    for mode, signer in (("on", real), ("off", NullSigner(real))):  # type: ignore[arg-type]
        node.keys.active = signer
        node.resolver.l1.clear()
        handler(hot, ctx)
        before = signatures._value.get()
        out[f"hot_{mode}_us"] = per_call_us(lambda: handler(hot, ctx), hot_calls)
        out[f"hot_{mode}_signatures"] = signatures._value.get() - before
        out[f"cold_{mode}_us"] = per_call_us(cold_calls(node, requests), max(200, ids // 5))
    node.keys.active = real
    out["nonce_us"] = per_call_us(lambda: handler(nonce, ctx), max(500, hot_calls // 50))
    out["hot_ratio"] = out["hot_off_us"] / out["hot_on_us"]
    return out


def cold_calls(node: Node, requests: list[bytes]) -> Callable[[], object]:
    """A call that empties L1 first, cycling through every identifier."""
    ctx: Any = Context()
    cycle = itertools.cycle(requests)

    def call() -> object:
        node.resolver.l1.clear()
        return node.services.resolver.resolve_raw(next(cycle), ctx)

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.signing_bench")
    parser.add_argument("--ids", type=int, default=2000)
    parser.add_argument("--hot-calls", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(f"{'algorithm':<18} {'hot on':>9} {'hot off':>9} {'ratio':>6} {'sigs/hot':>9}"
          f" {'cold on':>9} {'cold off':>9} {'nonce':>9}   (µs per call, handler only)")
    for algorithm in ("Ed25519", "ECDSA-P256-SHA256"):
        r = measure(algorithm, args.ids, args.hot_calls)
        print(f"{algorithm:<18} {r['hot_on_us']:9.2f} {r['hot_off_us']:9.2f} "
              f"{r['hot_ratio']:6.0%} {r['hot_on_signatures']:9.0f} {r['cold_on_us']:9.1f} "
              f"{r['cold_off_us']:9.1f} {r['nonce_us']:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
