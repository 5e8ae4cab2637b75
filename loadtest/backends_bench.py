"""The store backends under load, in one run: SQLite against PostgreSQL, one node process
against two on one PostgreSQL.

    .venv/bin/python -m loadtest.backends_bench [--duration 5] [--warmup 1] [--ids 5000]

1. starts a throw-away PostgreSQL (loadtest/pg_server.py: fsync and synchronous commit
   on, as SQLite runs with ``synchronous = FULL``);
2. for each backend, starts ``idnode serve`` on it (pinned to core 0, clients to core 1
   when taskset and two cores are there) with ``l1_max_entries = 0``, so every resolve
   misses the cache and reads the store, seeds ``--ids`` identifiers (BulkRegister) and
   measures
   - **resolve-miss**: uniform resolves of seeded identifiers (a store read and a
     signature each), and
   - **register**: Register calls of new identifiers (one transaction each);
3. on the PostgreSQL store, with the default cache, measures hot resolves (Zipf over the
   seeded identifiers, L1 hits) through one node process, then through two processes
   (separate ``idnode serve`` on their own ports, clients spread over both) — both
   pinned to the same core, so the comparison is the cost per request of running
   stateless processes side by side, not extra cores.

CPU per request counts the node processes **and** the PostgreSQL server (its backends do
the work SQLite does inside the node), so the backends compare on the same footing.
Numbers only, printed as a table (and as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.pg_server import BenchPostgres
from loadtest.procs import (
    Pinning,
    ProcessGroup,
    Server,
    load_average,
    sigterm_as_interrupt,
    start_node,
)
from loadtest.report import Run
from loadtest.runner import Bench
from loadtest.runner import parse_args as runner_args
from loadtest.wire import Workload


@dataclass
class Measured(Server):
    """A node (or several) plus the database server, as one thing the harness measures:
    ``cpu()`` is the node processes' CPU plus PostgreSQL's, ``targets`` the gRPC
    addresses the clients spread over."""

    members: list[Server] = field(default_factory=list)
    database: BenchPostgres | None = None
    readings: list[tuple[float, float]] = field(default_factory=list)  # (nodes, database)

    @property
    def targets(self) -> list[str]:
        return [m.target for m in self.members] or [self.target]

    def cpu(self) -> float:
        own = sum(m.cpu() for m in self.members) if self.members else super().cpu()
        database = self.database.cpu() if self.database is not None else 0.0
        self.readings.append((own, database))
        return own + database

    def database_share(self) -> float:
        """The database's part of the CPU of the last measured window (the harness reads
        ``cpu()`` at the window's start and end)."""
        if len(self.readings) < 2:
            return 0.0
        (n0, d0), (n1, d1) = self.readings[-2], self.readings[-1]
        total = (n1 - n0) + (d1 - d0)
        return (d1 - d0) / total if total > 0 else 0.0

    def processes(self) -> int:
        return sum(m.processes() for m in self.members) if self.members else \
            super().processes()


def measured(name: str, nodes: Sequence[Server], database: BenchPostgres | None) -> Measured:
    first = nodes[0]
    return Measured(name, first.proc, first.host, first.port, first.log, first.http_port,
                    first.cpus, list(nodes), database)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.backends_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="excluded seconds before each")
    p.add_argument("--ids", type=int, default=5000, help="identifiers seeded per store")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    p.add_argument("--procs", type=int, default=2, help="load-generator processes")
    p.add_argument("--no-pin", action="store_true", help="do not taskset")
    p.add_argument("--json", type=Path, help="also write the rows here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    args = runner_args(["--duration", str(a.duration), "--warmup", str(a.warmup),
                        "--ids", str(a.ids), "--concurrency", str(a.concurrency),
                        "--procs", str(a.procs), "--no-h2load"]
                       + (["--no-pin"] if a.no_pin else []))
    pin = Pinning.detect(not a.no_pin)
    print(f"load average before: {load_average():.2f}; {pin.describe()}", flush=True)
    rows: list[dict[str, object]] = []

    def keep(label: str, backend: str, target: Measured, run: Run) -> None:
        rows.append({"measure": label, "backend": backend, "rps": round(run.rps),
                     "cpu_us_per_request": round(run.cpu_us_per_req, 1),
                     "database_cpu_share": round(target.database_share(), 2),
                     "p50_ms": run.latency.get("p50_ms"), "p99_ms": run.latency.get("p99_ms"),
                     "errors": run.errors, "other_load": run.other_load})

    with tempfile.TemporaryDirectory(prefix="idnode-backends-") as tmp, \
            ProcessGroup() as group, sigterm_as_interrupt():
        work = Path(tmp)
        pg = BenchPostgres().start()
        try:
            bench = Bench(args, pin, group, work)
            for backend in ("sqlite", "postgresql"):
                env = {"IDNODE_L1_MAX_ENTRIES": "0", "IDNODE_LOG_LEVEL": "warning"}
                if backend == "postgresql":
                    env["IDNODE_DATABASE_URL"] = pg.url
                node = start_node(group, pin, args.host, work / backend, bench.secret, env,
                                  name=backend)
                target = measured(backend, [node], pg if backend == "postgresql" else None)
                bench.seed(node)
                keep("resolve-miss", backend, target,
                     bench.load(target, "cold", bench.workload("cold")))
                keep("register", backend, target, bench.load(target, "register", Workload(
                    kind="mixed", ids=a.ids, write_ratio=1.0, authorization=bench.admin[0][1])))
                group.stop(node.proc)
            # Stateless processes side by side on the (seeded) PostgreSQL store.
            env = {"IDNODE_DATABASE_URL": pg.url, "IDNODE_LOG_LEVEL": "warning"}
            nodes = [start_node(group, pin, args.host, work / f"pg-node{i}", bench.secret, env,
                                name=f"pg-node{i}") for i in range(2)]
            for node in nodes:
                bench.prime(node)
            for count in (1, 2):
                group_of = measured(f"pg x{count}", nodes[:count], pg)
                keep(f"resolve-hot x{count} node", "postgresql", group_of,
                     bench.load(group_of, "hot", bench.workload("hot")))
        finally:
            pg.close()
    print(f"load average after: {load_average():.2f}")
    print(f"{'measure':<22} {'backend':<11} {'req/s':>8} {'CPU µs/req':>11} {'db share':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for r in rows:
        print(f"{r['measure']:<22} {r['backend']:<11} {r['rps']:>8,} "
              f"{r['cpu_us_per_request']:>11} {r['database_cpu_share']:>8.0%} "
              f"{r['p50_ms'] or 0:>7.2f} {r['p99_ms'] or 0:>7.2f} {r['errors']:>6}")
    if a.json is not None:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
