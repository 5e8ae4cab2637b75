"""L2 cost per topology: ``python -m loadtest.l2_topology_bench`` (a measurement, not a test).

For one Redis server, a Sentinel set (master + replica + three sentinels) and a
three-master Cluster, all started here on free loopback ports, measures the L2 client's
operations in process (``RedisL2.get`` of a hit, ``set``, ``invalidate``): wall time
and this process's CPU time per operation, and each topology's ratio to the single
server measured in the same run. The Redis servers' own CPU is not counted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loadtest.redis_ha import deployment
from node.cache.l1 import Entry
from node.cache.l2 import RedisL2
from node.observe.metrics import Metrics

TOPOLOGIES = ("single", "sentinel", "cluster")


def _entry() -> Entry:
    return Entry(b"r" * 300, time.monotonic() + 600, b"p" * 200, b"s" * 64, "k1",
                 "Ed25519", "e1")


def _per_op(fn: Callable[[int], object], count: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per call of ``fn(i)`` for i in range(count)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        fn(i)
    return ((time.perf_counter() - wall) / count * 1e6,
            (time.process_time() - cpu) / count * 1e6)


def measure(topology: str, workdir: Path, count: int, keys: int) -> dict[str, tuple[float, float]]:
    server = deployment(topology, workdir / topology)
    server.start()
    l2 = RedisL2(server.url, Metrics(), store_id="bench", timeout_ms=500, retry_after_ms=1000,
                 floor_ttl_seconds=600)
    try:
        entry = _entry()
        names = [f"88.118.8/BENCH-{i}" for i in range(keys)]
        for name in names:
            l2.set(name, "", entry, 1, time.monotonic())
        out = {
            "get": _per_op(lambda i: l2.get(names[i % keys], ""), count),
            "set": _per_op(lambda i: l2.set(names[i % keys], "a", entry, 1 + i,
                                            time.monotonic()), count),
            "invalidate": _per_op(lambda i: l2.invalidate(names[i % keys], 10 + i),
                                  count // 4),
        }
        assert l2.up
        return out
    finally:
        l2.close()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="operations per kind")
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the topologies")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, tuple[float, float]]]] = {t: [] for t in TOPOLOGIES}
    with tempfile.TemporaryDirectory(prefix="idnode-l2-topology-") as tmp:
        for r in range(args.repeat):
            for topology in TOPOLOGIES:  # interleaved, so drift hits every topology
                results[topology].append(measure(topology, Path(tmp) / str(r), args.count,
                                                 args.keys))
    print(f"{'topology':10} {'op':11} {'wall µs':>9} {'cpu µs':>8} {'wall ×':>7} {'cpu ×':>6}")
    base = {op: (min(x[op][0] for x in results["single"]),
                 min(x[op][1] for x in results["single"])) for op in results["single"][0]}
    for topology in TOPOLOGIES:
        for op in base:
            wall = min(x[op][0] for x in results[topology])  # best of the rounds
            cpu = min(x[op][1] for x in results[topology])
            print(f"{topology:10} {op:11} {wall:9.1f} {cpu:8.1f} {wall / base[op][0]:7.2f} "
                  f"{cpu / base[op][1]:6.2f}")


if __name__ == "__main__":
    main()
