"""``idnode import`` at scale: N generated parts (with Chinese text) into the embedded node.

    .venv/bin/python -m loadtest.import_bench --rows 1000000 [--reimport] [--kill-resume]
        [--keep DIR] [--postgres]

1. writes a CSV of ``--rows`` parts (``suffix,URL,productName,spec,batchNo,factory``;
   product names, specs and factories in Chinese), UTF-8;
2. starts ``idnode serve`` (embedded default: SQLite in a temporary data directory,
   admin secret from the environment, free loopback ports), the server pinned to core 0
   and the CLI to core 1 when taskset and two cores are there;
3. runs ``python -m node import FILE --prefix 88.118.8 --no-progress`` as a child and
   reports its wall time, rows/s (target ≥ 20,000) and peak RSS (the CLI's ``VmHWM``,
   target ≤ 150 MB), and the CLI's summary line;
4. resolves a random sample of ``--sample`` rows (BatchResolve, authenticated) and
   checks every value against the CSV;
5. with ``--reimport``, runs the same import again: it must store nothing new
   (``accepted 0``, every row unchanged, exit 0), and the store's content digest (every
   record and value but the timestamps, read from the SQLite file) must not move;
6. with ``--kill-resume``, imports the file into a second, fresh node, kills the CLI
   (SIGKILL) 0.3 s after its checkpoint says half the rows are done (mid-call: rows past
   the checkpoint are stored but unacknowledged), runs the same command with
   ``--resume``, and compares the two stores' content digests: they must be equal.

With ``--postgres`` the node stores into a throw-away PostgreSQL (loadtest/pg_server.py,
fsync and synchronous commit on) instead of SQLite, pinned with the node, whose CPU per
row then includes the database server's; the content digest is read from PostgreSQL's
tables, and ``--kill-resume`` is not offered (it needs a second database).

Besides wall-clock rows/s it prints CPU per row of the node and of the CLI (the CLI's
from ``wait4``): on a shared machine the wall clock says as much about the neighbours as
about the import, and ``1e6 / max(node µs, CLI µs)`` is the rate two free cores allow.

Numbers only; nothing here is a test assertion beyond the checks' verdicts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

import grpc
import psycopg

from idnode.v1 import record_pb2, resolver_pb2, resolver_pb2_grpc
from loadtest.pg_server import BenchPostgres
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


class Run(NamedTuple):
    code: int
    wall: float  # seconds
    rss_kib: int  # peak RSS of the CLI's own image (VmHWM), see run_import
    cpu: float  # user + system seconds


def run_import(cmd: list[str], env: dict[str, str], log: Path,
               kill_when: Callable[[], bool] | None = None) -> Run:
    """The CLI's exit code, wall seconds, peak RSS and CPU (CPU from wait4);
    ``kill_when``: SIGKILL it as soon as this says so (polled every 10 ms).

    The peak RSS is the CLI's ``VmHWM``, read every 10 ms while it runs (the last read
    misses at most its final 10 ms). Not wait4's ``ru_maxrss``: Linux carries that over
    ``exec`` from the forking process, so it reported this orchestrator's size whenever
    that was larger (a PostgreSQL digest read before a re-import: "253 MiB" for a CLI
    that never passed 83)."""
    started = time.monotonic()
    peak_kib = 0
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while True:  # reaped by wait4 only, which also gives its CPU
                done, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if done:
                    break
                peak_kib = max(peak_kib, _high_water_kib(proc.pid))
                if kill_when is not None and kill_when():
                    proc.send_signal(signal.SIGKILL)
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.01)
        except BaseException:  # Ctrl-C / SIGTERM: do not leave the CLI running
            proc.terminate()
            proc.wait(10)
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(proc.returncode, time.monotonic() - started, peak_kib,
               usage.ru_utime + usage.ru_stime)


def _high_water_kib(pid: int) -> int:
    """``VmHWM`` of a running process, 0 once it is gone (or before exec settles)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def store_digest(data: Path, database_url: str = "") -> tuple[int, str]:
    """(records, SHA-256) of every record and value under the imported prefix in the
    node's store, without the timestamps and sequences that differ between two imports
    of the same file (the node admin's records differ: their secrets are salted).
    Digests of the two backends are not comparable with each other."""
    if database_url:
        return _postgres_digest(database_url)
    db = data / "idnode.sqlite3"
    digest = hashlib.sha256()
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        records = 0
        for key, handle, prefix_key, version, vals in conn.execute(
                "SELECT key, handle, prefix_key, version, vals FROM records "
                "WHERE prefix_key = ? ORDER BY key", (PREFIX,)):
            # Each value is [index, type, ttl, timestamp, bits, kind, data]: all but the
            # timestamp (migration 0008 of the SQLite store).
            values = [item[:3] + item[4:] for item in json.loads(vals)]
            digest.update(repr((key, handle, prefix_key, version, values)).encode())
            records += 1
    return records, digest.hexdigest()


def pin_with_children(pid: int, cpus: str) -> None:
    """Pin a running server and its children (PostgreSQL's background processes) to
    ``cpus`` ("0" or "0,1"); backends it forks later inherit the postmaster's pinning."""
    wanted = {int(c) for c in cpus.split(",")}
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                              check=False).stdout.split()
    for each in (pid, *map(int, children)):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(each, wanted)


def _postgres_digest(url: str) -> tuple[int, str]:
    """store_digest of the PostgreSQL store (one value row per value there)."""
    digest = hashlib.sha256()
    with psycopg.connect(url) as conn:  # named cursors: streamed, not fetched whole
        records = 0
        with conn.cursor(name="records") as cur:
            cur.execute("SELECT key, handle, prefix_key, version FROM records "
                        "WHERE prefix_key = %s ORDER BY key", (PREFIX,))
            for row in cur:
                digest.update(repr(tuple(row)).encode())
                records += 1
        with conn.cursor(name="values") as cur:
            cur.execute("SELECT v.key, idx, type, kind, data, ttl, perms FROM "
                        "record_values v JOIN records r ON r.key = v.key WHERE "
                        "r.prefix_key = %s ORDER BY v.key, idx", (PREFIX,))
            for row in cur:
                digest.update(repr((*row[:4], bytes(row[4]), *row[5:])).encode())
    return records, digest.hexdigest()


def rows_done(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text(encoding="utf-8"))["rows_done"])
    except (OSError, ValueError, KeyError):
        return 0


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
    parser.add_argument("--kill-resume", action="store_true",
                        help="Also: kill an import into a second node halfway, resume it, "
                             "and compare the stores.")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--keep", type=Path, help="Work here and keep the files.")
    parser.add_argument("--postgres", action="store_true",
                        help="Store into a throw-away PostgreSQL instead of SQLite.")
    args = parser.parse_args(argv)
    if args.postgres and args.kill_resume:
        parser.error("--kill-resume needs a second database: run it without --postgres")
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
    ok = True
    with sigterm_as_interrupt(), ProcessGroup() as group, contextlib.ExitStack() as stack:
        database = None
        if args.postgres:
            database = BenchPostgres().start()
            stack.callback(database.close)
            if pin.enabled and database.process is not None:
                pin_with_children(database.process.pid, pin.server_cpus)
        url = database.url if database is not None else ""
        node = start_node(group, pin, "127.0.0.1", data, SECRET,
                          extra_env={"IDNODE_DATABASE_URL": url} if url else None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
        env.update(IDNODE_TARGET=node.target, IDNODE_IDENTITY=IDENTITY, IDNODE_SECRET=SECRET)
        args_ = ["-m", "node", "import", str(csv_path), "--prefix", PREFIX, "--no-progress"]
        cmd = pin.wrap([sys.executable, *args_], "client")
        print("$ " + " ".join(cmd), flush=True)
        def server_cpu() -> float:  # the node's, and its database server's
            return node.cpu() + (database.cpu() if database is not None else 0.0)

        node_cpu = server_cpu()
        first = run_import(cmd, env, work / "import.log")
        node_cpu = server_cpu() - node_cpu
        print((work / "import.log").read_text(encoding="utf-8").strip())
        node_us, cli_us = node_cpu / args.rows * 1e6, first.cpu / args.rows * 1e6
        print(f"exit {first.code}; {args.rows:,} rows in {first.wall:.1f} s = "
              f"{args.rows / first.wall:,.0f} rows/s (target >= 20,000); CLI peak RSS "
              f"{first.rss_kib / 1024:.1f} MiB (target <= 150 MB)", flush=True)
        who = "node + PostgreSQL" if url else "node"
        print(f"CPU per row: {who} {node_us:.1f} us, CLI {cli_us:.1f} us; two free cores "
              f"allow {1e6 / max(node_us, cli_us):,.0f} rows/s; machine load "
              f"{os.getloadavg()[0]:.2f} (1 min)", flush=True)
        ok = first.code == 0
        checked, bad = sample_check(node.target, args.rows, args.sample)
        print(f"sampled resolve: {checked:,} identifiers checked, {bad} mismatches",
              flush=True)
        ok = ok and bad == 0
        records, before = store_digest(data, url)
        print(f"store: {records:,} records, content digest {before[:16]}"
              f"{' (PostgreSQL)' if url else ''}", flush=True)
        if args.reimport:
            again = run_import(cmd, env, work / "reimport.log")
            log = (work / "reimport.log").read_text(encoding="utf-8").strip()
            print(log)
            same = store_digest(data, url) == (records, before)
            print(f"re-import: exit {again.code}; {again.wall:.1f} s = "
                  f"{args.rows / again.wall:,.0f} rows/s; peak RSS {again.rss_kib / 1024:.1f}"
                  f" MiB; store unchanged: {same}", flush=True)
            ok = ok and again.code == 0 and same and "accepted 0," in log
        if args.kill_resume:
            ok = kill_and_resume(group, pin, work, csv_path, args.rows, args_, env,
                                 (records, before)) and ok
    print("verdict: " + ("all checks passed" if ok else "A CHECK FAILED"), flush=True)
    return 0 if ok else 1


def kill_and_resume(group: ProcessGroup, pin: Pinning, work: Path, csv_path: Path,
                    rows: int, args: list[str], env: dict[str, str],
                    expected: tuple[int, str]) -> bool:
    """Import into a fresh node, SIGKILL the CLI halfway, resume: the same store?"""
    data = work / "data-killed"
    node = start_node(group, pin, "127.0.0.1", data, SECRET, name="node-killed")
    env = {**env, "IDNODE_TARGET": node.target}
    checkpoint = csv_path.with_name(csv_path.name + ".idnode-checkpoint.json")
    checkpoint.unlink(missing_ok=True)
    cmd = pin.wrap([sys.executable, *args], "client")
    halfway: list[float] = []

    def kill_when() -> bool:
        """0.3 s after half the rows are checkpointed: mid-call, so rows past the
        checkpoint are stored but not acknowledged (the hard case for a resume)."""
        if not halfway and rows_done(checkpoint) >= rows // 2:
            halfway.append(time.monotonic())
        return bool(halfway) and time.monotonic() - halfway[0] >= 0.3

    killed = run_import(cmd, env, work / "killed.log", kill_when=kill_when)
    done = rows_done(checkpoint)
    print(f"kill: the CLI killed (exit {killed.code}) with {done:,} rows checkpointed, "
          f"{store_digest(data)[0]:,} records stored", flush=True)
    resumed = run_import([*cmd, "--resume"], env, work / "resumed.log")
    print((work / "resumed.log").read_text(encoding="utf-8").strip())
    got = store_digest(data)
    same = got == expected
    print(f"resume: exit {resumed.code}; {got[0]:,} records, content digest {got[1][:16]}; "
          f"the same store as the uninterrupted import: {same}", flush=True)
    return resumed.code == 0 and same and killed.code == -signal.SIGKILL


if __name__ == "__main__":
    sys.exit(main())
