"""``idnode import`` at scale: N generated parts (with Chinese text) into the embedded node.

    .venv/bin/python -m loadtest.import_bench --rows 1000000 [--reimport] [--keep DIR]

1. writes a CSV of ``--rows`` parts (``suffix,URL,productName,spec,batchNo,factory``;
   product names, specs and factories in Chinese), UTF-8;
2. starts ``idnode serve`` (embedded default: SQLite in a temporary data directory,
   admin secret from the environment, free loopback ports), the server pinned to core 0
   and the CLI to core 1 when taskset and two cores are there;
3. runs ``python -m node import FILE --prefix 88.118.8 --no-progress`` as a child and
   reports its wall time, rows/s (target ≥ 20,000) and peak RSS (``ru_maxrss`` from
   ``wait4``, target ≤ 150 MB), and the CLI's summary line;
4. resolves a random sample of ``--sample`` rows (BatchResolve, authenticated) and
   checks every value against the CSV;
5. with ``--reimport``, runs the same import again: it must store nothing new
   (``accepted 0``, every row unchanged, exit 0).

Numbers only; nothing here is a test assertion beyond the sample check's verdict.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from idnode.v1 import record_pb2, resolver_pb2, resolver_pb2_grpc
from loadtest.procs import Pinning, ProcessGroup, sigterm_as_interrupt, start_node

SECRET = "import-bench-secret-0001"  # noqa: S105 (a throw-away node)
IDENTITY = "300:88.118/ADMIN"
PREFIX = "88.118.8"
HEADER = ["suffix", "URL", "productName", "spec", "batchNo", "factory"]
NAMES = ["主轴", "轴承", "齿轮箱", "伺服电机", "液压泵", "传感器", "控制器", "减速机", "联轴器",
         "刀具"]
SPECS = ["精密级", "重载型", "标准型", "耐高温", "防水型"]
FACTORIES = ["上海第一机床厂", "沈阳机床集团", "大连机床厂", "济南二机床", "武汉重型机床"]


def row(n: int) -> list[str]:
    return [f"PN-{n:08d}", f"https://example.com/p/{n}", f"{NAMES[n % 10]}-{n}",
            f"{SPECS[n % 5]} φ{n % 97}mm", f"B-2026-{n % 1000:04d}", FACTORIES[n % 5]]


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for n in range(rows):
            w.writerow(row(n))


def run_import(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS in KiB) of the CLI, measured by wait4."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C / SIGTERM: do not leave the CLI running
            proc.terminate()
            proc.wait(10)
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - started, usage.ru_maxrss


def sample_check(target: str, rows: int, sample: int) -> tuple[int, int]:
    """(checked, mismatches) over a random sample, resolved with the admin's rights."""
    import base64
    import urllib.parse

    user = urllib.parse.quote(IDENTITY, safe="")
    meta = (("authorization",
             "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()),)
    picks = random.Random(7).sample(range(rows), min(sample, rows))
    bad = 0
    with grpc.insecure_channel(target) as ch:
        stub = resolver_pb2_grpc.ResolverStub(ch)
        for start in range(0, len(picks), 100):
            group = picks[start:start + 100]
            results = stub.BatchResolve(resolver_pb2.BatchResolveRequest(
                handles=[f"{PREFIX}/PN-{n:08d}" for n in group]), metadata=meta,
                timeout=30).results
            for n, result in zip(group, results, strict=True):
                if result.WhichOneof("outcome") != "record":
                    bad += 1
                    continue
                got = [(v.index, v.type, v.text) for v in
                       record_pb2.Record.FromString(result.record.payload).values]
                want = [(i, t, x) for i, (t, x) in enumerate(zip(HEADER[1:], row(n)[1:],
                                                                 strict=True), 1)]
                bad += got != want
    return len(picks), bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.import_bench",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--reimport", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--keep", type=Path, help="Work here and keep the files.")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="idnode-import-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "parts.csv"
    t0 = time.monotonic()
    generate(csv_path, args.rows)
    print(f"generated {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB in "
          f"{time.monotonic() - t0:.1f} s: {csv_path}", flush=True)
    pin = Pinning.detect(not args.no_pin)
    print(f"pinning: {pin.describe()}", flush=True)
    data = work / "data"
    with sigterm_as_interrupt(), ProcessGroup() as group:
        node = start_node(group, pin, "127.0.0.1", data, SECRET)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
        env.update(IDNODE_TARGET=node.target, IDNODE_IDENTITY=IDENTITY, IDNODE_SECRET=SECRET)
        cmd = pin.wrap([sys.executable, "-m", "node", "import", str(csv_path), "--prefix",
                        PREFIX, "--no-progress"], "client")
        print("$ " + " ".join(cmd), flush=True)
        code, wall, rss_kib = run_import(cmd, env, work / "import.log")
        print((work / "import.log").read_text(encoding="utf-8").strip())
        print(f"exit {code}; {args.rows:,} rows in {wall:.1f} s = {args.rows / wall:,.0f} "
              f"rows/s (target >= 20,000); CLI peak RSS {rss_kib / 1024:.1f} MiB "
              "(target <= 150 MB)", flush=True)
        checked, bad = sample_check(node.target, args.rows, args.sample)
        print(f"sampled resolve: {checked:,} identifiers checked, {bad} mismatches",
              flush=True)
        if args.reimport:
            code2, wall2, rss2 = run_import(cmd, env, work / "reimport.log")
            print((work / "reimport.log").read_text(encoding="utf-8").strip())
            print(f"re-import: exit {code2}; {wall2:.1f} s = {args.rows / wall2:,.0f} rows/s;"
                  f" peak RSS {rss2 / 1024:.1f} MiB", flush=True)
        print(f"node CPU {node.cpu():.1f} s over both imports", flush=True)
    return 0 if code == 0 and bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
