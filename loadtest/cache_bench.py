"""Cache benchmark: ``python -m loadtest.cache_bench`` (a measurement, not a test).

Measures, on this machine, the resolve pipeline (``Resolver.public``, in process, so the
figures are the cache's and not gRPC's):

* cold — every resolve reads the store and signs (fresh node, each key once);
* warm — every resolve is an L1 hit;
* L2-only — L1 disabled (``l1_max_entries=0``): every resolve is a Redis round trip;
* Zipf — 10,000 identifiers drawn with s=1.1, L1 bounded to 1,000 entries: hit ratio;
* outage — gRPC clients resolve through a real server while Redis is killed and later
  restarted: failed resolutions must be zero.

It starts its own redis-server on a free 127.0.0.1 port (``tests/servers.py``) and works
in a temporary directory; nothing else is touched.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import itertools
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from idnode.v1 import resolver_pb2, resolver_pb2_grpc
from loadtest.redis_server import RedisServer
from node.app import Node, build
from node.settings import load
from registry.registrar import BulkRow
from registry.values import Value

NODE_PREFIX = "88.118"
ADMIN_SECRET = "bench-admin-secret-0001"  # noqa: S105 (a throw-away node)
ADMIN_HEADER = "Basic " + base64.b64encode(
    f"300:{NODE_PREFIX}/ADMIN:{ADMIN_SECRET}".encode()).decode()


def make_node(data_dir: Path, **overrides: object) -> Node:
    settings = load(env={}, overrides={
        "data_dir": str(data_dir), "grpc_listen": "127.0.0.1:0", "http_listen": "",
        "handle_listen": "",
        "node_prefix": NODE_PREFIX, "admin_secret": ADMIN_SECRET, "grpc_threads": 16,
        "log_level": "error", **overrides})
    node = build(settings)
    node.start()
    return node


def populate(node: Node, handles: Sequence[str]) -> None:
    principal = node.core.auth.principal(ADMIN_HEADER)
    for start in range(0, len(handles), 500):
        rows = [BulkRow(h, (Value(1, "URL", f"https://example.com/{h}"),
                            Value(2, "productName", "bench"))) for h in handles[start:start + 500]]
        node.registrar.register_many(principal, rows)


def rate(node: Node, keys: Sequence[str]) -> float:
    """Resolves per second over ``keys``, in one thread."""
    public = node.resolver.public
    started = time.perf_counter()
    for key in keys:
        public(key)
    return len(keys) / (time.perf_counter() - started)


def zipf_keys(handles: Sequence[str], s: float, n: int, seed: int = 7) -> list[str]:
    cum: list[float] = list(itertools.accumulate(1 / (rank ** s)
                                                 for rank in range(1, len(handles) + 1)))
    rng = random.Random(seed)
    total = cum[-1]
    return [handles[bisect.bisect_left(cum, rng.random() * total)] for _ in range(n)]


def counter(node: Node, name: str, **labels: str) -> float:
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


def outage(data: Path, redis: RedisServer, handles: Sequence[str], seconds: float,
           threads: int) -> dict[str, float]:
    node = make_node(data, redis_url=redis.url, l1_max_entries=1000, redis_retry_after_ms=250)
    keys = zipf_keys(handles, 1.1, 50_000, seed=11)
    ok = [0] * threads
    failed = [0] * threads
    stop = threading.Event()

    def client(i: int) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}")
        stub = resolver_pb2_grpc.ResolverStub(channel)
        for key in itertools.islice(itertools.cycle(keys[i::threads]), 10_000_000):
            if stop.is_set():
                break
            try:
                stub.Resolve(resolver_pb2.ResolveRequest(handle=key), timeout=2)
                ok[i] += 1
            except grpc.RpcError:
                failed[i] += 1
        channel.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    third = seconds / 3
    time.sleep(third)
    redis.kill()
    time.sleep(third)
    redis.start()
    time.sleep(third)
    stop.set()
    for w in workers:
        w.join()
    result = {"ok": float(sum(ok)), "failed": float(sum(failed)),
              "rps": sum(ok) / seconds,
              "redis_errors": counter(node, "idnode_cache_redis_errors_total"),
              "redis_up_at_end": counter(node, "idnode_cache_redis_up"),
              "l2_keys_after_restart": float(redis.dbsize())}
    node.stop(0)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.cache_bench")
    parser.add_argument("--identifiers", type=int, default=10_000)
    parser.add_argument("--zipf-s", type=float, default=1.1)
    parser.add_argument("--zipf-resolves", type=int, default=200_000)
    parser.add_argument("--l1-entries", type=int, default=1000)
    parser.add_argument("--outage-seconds", type=float, default=6.0)
    parser.add_argument("--outage-threads", type=int, default=4)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="idnode-cache-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        redis = RedisServer(root / "redis")
        redis.start()
        try:
            handles = [f"88.118.8/BENCH-{i:06d}" for i in range(args.identifiers)]
            seed = make_node(data)
            populate(seed, handles)
            seed.stop(0)

            node = make_node(data)  # L1 only, fresh
            cold = rate(node, handles)
            warm = max(rate(node, handles) for _ in range(3))
            node.stop(0)

            node = make_node(data, redis_url=redis.url, l1_max_entries=0)
            fill = rate(node, handles)  # cold + L2 set
            l2_only = max(rate(node, handles) for _ in range(2))
            node.stop(0)

            node = make_node(data, redis_url=redis.url, l1_max_entries=args.l1_entries)
            keys = zipf_keys(handles, args.zipf_s, args.zipf_resolves)
            zipf = rate(node, keys)
            hits = counter(node, "idnode_cache_hits_total", layer="l1")
            misses = counter(node, "idnode_cache_misses_total", layer="l1")
            l2_hits = counter(node, "idnode_cache_hits_total", layer="l2")
            node.stop(0)

            out = outage(data, redis, handles, args.outage_seconds, args.outage_threads)
        finally:
            redis.stop()

    print(f"identifiers: {args.identifiers}")
    print(f"cold (store read + sign, L1 only): {cold:10,.0f} resolves/s")
    print(f"warm (L1 hits):                    {warm:10,.0f} resolves/s")
    print(f"L2 fill (store + sign + L2 set):   {fill:10,.0f} resolves/s")
    print(f"L2-only (l1_max_entries=0, hits):  {l2_only:10,.0f} resolves/s")
    print(f"zipf s={args.zipf_s}, {args.zipf_resolves:,} resolves, L1 {args.l1_entries} "
          f"entries: L1 hit ratio {hits / max(1.0, hits + misses):.3f}, "
          f"L2 hits {l2_hits:,.0f}, {zipf:,.0f} resolves/s")
    print(f"redis outage ({args.outage_threads} gRPC clients, {args.outage_seconds:.0f} s, "
          f"redis killed for the middle third, then restarted): "
          f"{out['ok']:,.0f} ok, {out['failed']:,.0f} failed, {out['rps']:,.0f} resolves/s, "
          f"{out['redis_errors']:,.0f} redis errors, redis_up at end "
          f"{out['redis_up_at_end']:.0f}, L2 keys after restart "
          f"{out['l2_keys_after_restart']:,.0f}")
    return 0 if out["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
