"""The orchestration: which servers, which scenarios, in which order, and the outputs.

Order matters. The echo baseline runs first, then the node on a freshly seeded store:
read-only scenarios before the ones that write (mixed, bulk), then restarts of the same
store with other settings (small L1 for ``cold``, metrics off, 2 workers). Every number
is taken inside a window that excludes warm-up, with the server's CPU read at both ends.

``python -m loadtest --help`` lists the knobs; the defaults take about 3-4 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import platform
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from idnode.v1 import registry_pb2, resolver_pb2
from loadtest import h2, http_bench
from loadtest.guard import require_loopback
from loadtest.procs import (
    REPO,
    HarnessError,
    Pinning,
    ProcessGroup,
    Server,
    core_busy_seconds,
    cpu_seconds,
    load_average,
    sigterm_as_interrupt,
    start_echo,
    start_node,
    tail,
)
from loadtest.report import Run, build_report, find, plot, summarize, table, write_json
from loadtest.stats import (
    ZipfSampler,
    cpu_us_per_request,
    latency_summary,
    percentile_curve,
    spread,
)
from loadtest.wire import (
    BATCH_RESOLVE,
    BULK_REGISTER,
    ENTERPRISE_PREFIX,
    RESOLVE,
    Workload,
    admin_identity,
    basic_auth,
    bulk_requests,
    resolve_bytes,
    seeded_handle,
)

SCENARIOS = ("hot", "latency", "cold", "notfound", "batch", "mixed", "bulk", "nonce",
             "metrics-off", "workers", "http", "handle")
DEFAULT_OUT = REPO / "loadtest" / "results"
SEED_CHUNK = 20_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (defaults: the whole run in about 3-4 minutes)."""
    p = argparse.ArgumentParser(
        prog="python -m loadtest",
        description="idnode load harness: echo baseline vs node, pinned, loopback only.")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="excluded seconds before each")
    p.add_argument("--repeat", type=int, default=3, help="repetitions of the headline (hot)")
    p.add_argument("--procs", type=int, default=2, help="load-generator processes")
    p.add_argument("--concurrency", type=int, default=64,
                   help="closed loop: requests in flight, over all processes")
    p.add_argument("--load-fraction", type=float, default=0.7,
                   help="open loop rate as a fraction of the measured max")
    p.add_argument("--ids", type=int, default=20_000, help="identifiers seeded")
    p.add_argument("--bulk-rows", type=int, default=20_000, help="rows in the bulk run")
    p.add_argument("--cold-l1", type=int, default=1000,
                   help="IDNODE_L1_MAX_ENTRIES for the cold scenario")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--zipf", type=float, default=0.99, help="Zipf exponent of hot keys")
    p.add_argument("--payload-bytes", type=int, default=300, help="echo answer size")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to use")
    p.add_argument("--no-pin", action="store_true", help="do not taskset")
    p.add_argument("--no-h2load", action="store_true", help="Python clients only")
    p.add_argument("--http-connections", type=int, default=http_bench.DEFAULT_CONNECTIONS,
                   help="http scenario: h2load --h1 keep-alive connections (1 request each)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.selected = set(chosen)
    if args.duration <= 0 or args.warmup < 0 or args.repeat < 1 or args.procs < 1 \
            or args.concurrency < 1 or args.ids < 1 or not 0 < args.load_fraction <= 1 \
            or args.http_connections < 1:
        p.error("durations, counts and the load fraction must be positive")
    try:
        require_loopback(args.host)
    except ValueError as exc:
        p.error(str(exc))
    return args


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _wait_line(proc: subprocess.Popen[bytes], expected: str, timeout: float, log: Path) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    if line != expected:
        raise HarnessError(f"load generator did not report {expected} (got {line!r}); "
                           f"see {log}:\n{tail(log)}")


class Bench:
    """One harness run: owns the results; processes belong to the ProcessGroup."""

    def __init__(self, args: argparse.Namespace, pin: Pinning, group: ProcessGroup,
                 workdir: Path) -> None:
        self.args = args
        self.pin = pin
        self.group = group
        self.workdir = workdir
        self.runs: list[Run] = []
        self.notes: list[str] = []
        self.features: dict[str, str] = {}
        self.bulk: dict[str, Any] = {}
        self.workers: dict[str, Any] = {}
        self.secret = secrets.token_urlsafe(18)
        self.admin = basic_auth(admin_identity(), self.secret)
        self.h2load = None if args.no_h2load else h2.available()
        self._n = 0
        self.hottest = ZipfSampler(args.ids, args.zipf, seed=1).item_for_rank(0)

    # --- building blocks ----------------------------------------------------------------

    def _timed_window(self, server: Server, cmd: list[str], out: Path
                      ) -> tuple[tuple[float, float, dict[int, float], float],
                                 tuple[float, float, dict[int, float], float], int]:
        """Run a C load generator for warm-up + duration; the server's snapshots at the
        start and end of the measured window (warm-up excluded), and its process count."""
        a = self.args
        proc = self.group.start(cmd, log=out)
        try:
            started = time.monotonic()
            _sleep_until(started + a.warmup + 0.25)
            before = self.snapshot(server)
            _sleep_until(started + a.warmup + a.duration - 0.05)
            after = self.snapshot(server)
            nprocs = server.processes()
            proc.wait(timeout=a.duration + a.warmup + 30)
        finally:
            self.group.stop(proc, grace=2)
        return before, after, nprocs

    def snapshot(self, server: Server) -> tuple[float, float, dict[int, float], float]:
        """(monotonic time, server CPU s, busy s per core, this harness's CPU s in all)."""
        return (time.monotonic(), server.cpu(), core_busy_seconds(),
                cpu_seconds(os.getpid()))

    def window(self, run: Run, before: tuple[float, float, dict[int, float], float],
               after: tuple[float, float, dict[int, float], float], cpus: str | None) -> None:
        """Charge the server's CPU to ``run`` and say how busy its cores were with other
        processes (a shared machine turns throughput into noise; CPU/request less so)."""
        t0, c0, b0, h0 = before
        t1, c1, b1, h1 = after
        run.cpu_s = c1 - c0
        run.loadavg = load_average()
        if not self.pin.enabled or not b0 or not b1:
            return
        cores = [int(c) for c in (cpus or self.pin.server_cpus).split(",")]
        busy = sum(b1.get(c, 0.0) - b0.get(c, 0.0) for c in cores)
        ours = run.cpu_s
        if int(self.pin.client_cpus) in cores:  # the load generators share these cores
            ours = h1 - h0
        run.other_load = max(0.0, (busy - ours) / ((t1 - t0) * len(cores)))
        if run.other_load > 0.15:
            run.notes.append(f"server core(s) {','.join(map(str, cores))} were "
                             f"{run.other_load:.0%} busy with other work")

    def workload(self, kind: str) -> Workload:
        a = self.args
        return Workload(kind=kind, ids=a.ids, zipf_s=a.zipf, batch_size=a.batch_size,
                        authorization=self.admin[0][1])

    def load(self, server: Server, scenario: str, workload: Workload, *, label: str = "closed",
             procs: int | None = None, concurrency: int | None = None, rate: float = 0.0,
             repeat: int = 0) -> Run:
        """Drive ``server`` with Python asyncio clients for one timed window."""
        a = self.args
        procs = procs or a.procs
        concurrency = concurrency or a.concurrency
        procs = min(procs, concurrency) if rate <= 0 else procs
        self._n += 1
        log = self.workdir / "clients.log"
        spec_mode = "open" if rate > 0 else "closed"
        outs: list[Path] = []
        clients: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(procs):
                targets = getattr(server, "targets", None) or [server.target]
                spec = {  # client i drives targets[i mod n] (several node processes)
                    "target": targets[i % len(targets)], "mode": spec_mode,
                    "process_index": i,
                    "concurrency": concurrency // procs + (1 if i < concurrency % procs else 0),
                    "rate": rate / procs, "warmup": a.warmup, "duration": a.duration,
                    "workload": workload.to_dict(),
                    "out": str(self.workdir / f"run{self._n}-{i}.json"),
                }
                spec_path = self.workdir / f"spec{self._n}-{i}.json"
                spec_path.write_text(_json(spec))
                outs.append(Path(spec["out"]))
                cmd = self.pin.wrap([sys.executable, "-m", "loadtest.client", str(spec_path)],
                                    "client")
                clients.append(self.group.start(cmd, log=log, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE))
            for proc in clients:
                _wait_line(proc, "READY", 60, log)
            t0 = time.monotonic() + 0.2
            for proc in clients:
                assert proc.stdin is not None
                proc.stdin.write(f"GO {t0!r}\n".encode())
                proc.stdin.flush()
            w0 = t0 + a.warmup
            w1 = w0 + a.duration
            _sleep_until(w0)
            before = self.snapshot(server)
            _sleep_until(w1)
            after = self.snapshot(server)
            nprocs = server.processes()
            for proc in clients:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    raise HarnessError(f"load generator overran its window; see {log}") from None
                if proc.returncode != 0:
                    raise HarnessError(f"load generator failed ({proc.returncode}); see "
                                       f"{log}:\n{tail(log)}")
        finally:
            for proc in clients:
                self.group.stop(proc, grace=2)
        parts = [_load_json(p) for p in outs]
        latencies = [x for part in parts for x in part["latencies_us"]]
        lag = [x for part in parts for x in part["send_lag_us"]]
        codes: dict[str, int] = {}
        for part in parts:
            for k, v in part["codes"].items():
                codes[k] = codes.get(k, 0) + v
        requests = sum(part["completed_in_window"] for part in parts)
        run = Run(
            scenario=scenario, server=server.name, mode=label,
            client=f"python-aio x{procs}", repeat=repeat, concurrency=concurrency,
            target_rate=rate, duration_s=a.duration, requests=requests,
            rps=requests / a.duration, errors=sum(part["errors"] for part in parts),
            server_processes=nprocs, latency=latency_summary(latencies),
            send_lag=latency_summary(lag) if lag else {},
            curve=percentile_curve(latencies), codes=codes,
            error_samples=[e for part in parts for e in part["error_samples"]][:5],
            response_bytes=parts[0]["response_bytes"] if parts else {},
            items_per_request=workload.batch_size if workload.kind == "batch" else 1)
        self.window(run, before, after, server.cpus)
        run.cpu_us_per_req = cpu_us_per_request(run.cpu_s, requests)
        run.max_gap_ms = max((float(part["max_gap_ms"]) for part in parts), default=0.0)
        if run.max_gap_ms > 500:
            run.notes.append(f"no answer at all for {run.max_gap_ms:.0f} ms in the window")
        if rate > 0:
            achieved = sum(part["sent_in_window"] for part in parts) / a.duration
            if achieved < 0.95 * rate:
                run.notes.append(f"sent {achieved:.0f}/s of the {rate:.0f}/s asked")
        self._record(run)
        return run

    def h2load_run(self, server: Server, scenario: str, repeat: int = 0) -> Run | None:
        """h2load on the hottest identifier; CPU read inside its main window."""
        if self.h2load is None:
            return None
        a = self.args
        self._n += 1
        body = h2.write_body(self.workdir / "resolve.bin",
                             resolve_bytes(seeded_handle(self.hottest)))
        out = self.workdir / f"h2load{self._n}.txt"
        cmd = self.pin.wrap(h2.command(self.h2load, server.host, server.port, RESOLVE, body,
                                       duration=a.duration, warmup=a.warmup), "client")
        before, after, nprocs = self._timed_window(server, cmd, out)
        result = h2.parse(out.read_text(errors="replace"))
        requests = result.rps * (after[0] - before[0])
        code = self.grpc_status(server, RESOLVE, body.read_bytes()[5:])
        run = Run(scenario=scenario, server=server.name, mode="h2load",
                  client="h2load c4 m32", repeat=repeat, concurrency=4 * 32,
                  duration_s=a.duration, requests=result.done, rps=result.rps,
                  errors=result.errors + (0 if code == "OK" else 1),
                  server_processes=nprocs, latency={"mean_ms": result.mean_ms},
                  codes={"http2xx": result.status_2xx, "sample_grpc_status": 0 if code == "OK"
                         else 1})
        self.window(run, before, after, server.cpus)
        run.cpu_us_per_req = cpu_us_per_request(run.cpu_s, requests)
        if code != "OK":
            run.error_samples.append(f"sample request returned gRPC {code}")
        self._record(run)
        return run

    def grpc_status(self, server: Server, path: str, body: bytes) -> str:
        """The gRPC status of one request (h2load only sees HTTP 200)."""
        with grpc.insecure_channel(server.target) as channel:
            try:
                call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
                call(body, timeout=5)
            except grpc.RpcError as exc:
                return str(exc.code().name)
        return "OK"

    def _record(self, run: Run) -> None:
        self.runs.append(run)
        lat = run.latency
        print(f"  {run.server:<13} {run.scenario:<9} {run.mode:<8} {run.client:<14} "
              f"{run.rps:>9,.0f} req/s  {run.cpu_us_per_req:>7.1f} CPU µs/req  "
              f"p50 {lat.get('p50_ms', math.nan):6.2f}  p99 {lat.get('p99_ms', math.nan):6.2f}"
              f" ms  errors {run.errors}  other {run.other_load:.0%}"
              + (f"  ({'; '.join(run.notes)})" if run.notes else ""),
              flush=True)
        for sample in run.error_samples[:2]:
            print(f"      error sample: {sample}", flush=True)

    def stream_bulk(self, server: Server, rows: list[bytes]) -> tuple[int, int, float, float]:
        """(accepted, failures, seconds, server CPU seconds) for one BulkRegister stream."""
        with grpc.insecure_channel(server.target) as channel:
            call: grpc.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
                BULK_REGISTER)
            c0, t0 = server.cpu(), time.perf_counter()
            raw = call(iter(rows), metadata=self.admin, timeout=300)
            t1, c1 = time.perf_counter(), server.cpu()
        response = registry_pb2.BulkRegisterResponse.FromString(raw)
        if response.failures:
            first = response.failures[0]
            self.notes.append(f"BulkRegister failure sample: row {first.row} {first.handle}: "
                              f"{first.error.code} {first.error.message}")
        return response.accepted, len(response.failures), t1 - t0, c1 - c0

    # --- phases --------------------------------------------------------------------------

    def run(self) -> None:
        sel = self.args.selected
        if "handle" in sel:  # the Handle native protocol: its own servers (handle_bench)
            from loadtest import handle_bench

            handle_bench.phase(self)
            if sel == {"handle"}:
                return
        resolving = sel & {"hot", "latency", "cold", "notfound", "batch", "mixed", "nonce",
                           "metrics-off"}
        if resolving:
            self.echo_phase()
        data = self.workdir / "data"
        node = start_node(self.group, self.pin, self.args.host, data, self.secret)
        print(f"node: pid {node.pid} on {node.target}", flush=True)
        try:
            self.seed(node)
            self.node_phase(node)
        finally:
            self.group.stop(node.proc)
        if "cold" in sel:
            self.restarted(data, "node", {"IDNODE_L1_MAX_ENTRIES": str(self.args.cold_l1)},
                           lambda s: self.load(s, "cold", self.workload("cold")))
        if "metrics-off" in sel:
            self.metrics_off(data)
        if "workers" in sel:
            self.workers_phase(data)

    def echo_phase(self) -> None:
        a = self.args
        echo = start_echo(self.group, self.pin, a.host, self.workdir, a.payload_bytes)
        print(f"echo baseline: pid {echo.pid} on {echo.target}, {a.payload_bytes}-byte answers",
              flush=True)
        try:
            for rep in range(a.repeat):
                self.load(echo, "hot", self.workload("hot"), repeat=rep)
                self.h2load_run(echo, "hot", rep)
            if "latency" in a.selected:
                self.load(echo, "hot", self.workload("hot"), label="unloaded", procs=1,
                          concurrency=1)
                rate = a.load_fraction * self.max_rps(echo)
                self.load(echo, "hot", self.workload("hot"), label="open", rate=rate)
        finally:
            self.group.stop(echo.proc)

    def seed(self, node: Server) -> None:
        """Register ``--ids`` identifiers through BulkRegister (client streaming)."""
        total = self.args.ids
        t0 = time.perf_counter()
        accepted = 0
        for start in range(0, total, SEED_CHUNK):
            rows = [r.SerializeToString()
                    for r in bulk_requests(start, min(SEED_CHUNK, total - start))]
            accepted += self.stream_bulk(node, rows)[0]
        seconds = time.perf_counter() - t0
        print(f"seeded {accepted:,}/{total:,} identifiers in {seconds:.1f} s", flush=True)
        if accepted != total:
            raise HarnessError(f"seeding registered {accepted} of {total} identifiers")

    def prime(self, server: Server) -> None:
        """Resolve every seeded id once (BatchResolve, untimed) so the hot runs measure
        L1 hits, not the first signature of each record version."""
        t0 = time.perf_counter()
        with grpc.insecure_channel(server.target) as channel:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                BATCH_RESOLVE)
            for start in range(0, self.args.ids, 100):
                handles = [seeded_handle(i)
                           for i in range(start, min(start + 100, self.args.ids))]
                call(resolver_pb2.BatchResolveRequest(handles=handles).SerializeToString(),
                     timeout=30)
        print(f"primed L1 with {self.args.ids:,} resolves in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

    def node_phase(self, node: Server) -> None:
        a = self.args
        sel = a.selected
        self.prime(node)
        if "hot" in sel:
            for rep in range(a.repeat):
                self.load(node, "hot", self.workload("hot"), repeat=rep)
                self.h2load_run(node, "hot", rep)
        if "latency" in sel:
            self.load(node, "hot", self.workload("hot"), label="unloaded", procs=1,
                      concurrency=1)
            rate = a.load_fraction * self.max_rps(node)
            self.load(node, "hot", self.workload("hot"), label="open", rate=rate)
        if "http" in sel:
            self.http_phase(node)
        for scenario in ("notfound", "batch", "nonce", "mixed"):
            if scenario in sel:
                self.load(node, scenario, self.workload(scenario))
        if "bulk" in sel:
            self.bulk_phase(node)

    def max_rps(self, node: Server) -> float:
        """The node's best measured hot throughput (h2load or Python), measuring if needed."""
        rows = summarize(self.runs)
        best = max((r.rps.median for r in rows if r.server == node.name
                    and r.scenario == "hot" and r.mode in {"closed", "h2load"}), default=0.0)
        if best <= 0:
            best = self.load(node, "hot", self.workload("hot")).rps
        return best

    def h1load_run(self, server: Server, scenario: str, urls: Path, *, handle_api: bool,
                   repeat: int = 0) -> Run:
        """h2load --h1 over the URLs in ``urls``; server CPU read inside its window."""
        assert self.h2load is not None
        a = self.args
        self._n += 1
        out = self.workdir / f"h1load{self._n}.txt"
        cmd = self.pin.wrap(http_bench.command(self.h2load, urls, duration=a.duration,
                                               warmup=a.warmup,
                                               connections=a.http_connections), "client")
        before, after, nprocs = self._timed_window(server, cmd, out)
        result = h2.parse(out.read_text(errors="replace"))
        requests = result.rps * (after[0] - before[0])
        first = urls.read_text().split("\n", 1)[0]
        ok, why, size = http_bench.sample_ok(first, handle_api=handle_api)
        run = Run(scenario=scenario, server=server.name, mode="h1load",
                  client=f"h2load --h1 c{a.http_connections} m1", repeat=repeat,
                  concurrency=a.http_connections, duration_s=a.duration,
                  requests=result.done, rps=result.rps,
                  errors=result.errors + (0 if ok else 1), server_processes=nprocs,
                  latency={"mean_ms": result.mean_ms},
                  codes={"http2xx": result.status_2xx, "non2xx": result.non_2xx},
                  response_bytes={"sample": size})
        self.window(run, before, after, server.cpus)
        run.cpu_us_per_req = cpu_us_per_request(run.cpu_s, requests)
        if not ok:
            run.error_samples.append(f"sample request: {why}")
        self._record(run)
        return run

    def http_phase(self, node: Server) -> None:
        """Resolve over HTTP: the HTTP empty handler (same server code, answer the size
        of the node's), then the node's hot GET /api/handles/{handle} over Zipf-drawn
        seeded ids and gRPC hot resolve on the same node, alternating per repetition."""
        a = self.args
        if self.h2load is None:
            self.features["http"] = "skipped: needs h2load (nghttp2-client) for --h1 load"
            print(f"http: {self.features['http']}", flush=True)
            return
        urls = http_bench.zipf_urls(a.host, node.http_port, a.ids, a.zipf)
        sizes = []
        for url in dict.fromkeys(urls):  # every distinct URL once: L1 and renditions warm
            ok, why, size = http_bench.sample_ok(url, handle_api=True)
            if not ok:
                raise HarnessError(f"GET {url} on the node: {why}")
            sizes.append(size)
        sizes.sort()
        typical = sizes[len(sizes) // 2]
        node_urls = http_bench.write_urls(self.workdir / "http-node-urls.txt", urls)
        print(f"http: {len(urls)} Zipf-drawn URLs ({len(sizes)} distinct ids), node "
              f"answers {typical} bytes (median)", flush=True)
        for way in ("direct", "asgi"):
            echo = http_bench.start_http_echo(self.group, self.pin, a.host, self.workdir,
                                              typical, way=way)
            print(f"{echo.name} baseline: pid {echo.pid} on port {echo.http_port}, "
                  f"{typical}-byte answers (node.web.server.HttpServer, empty handler "
                  f"answered {way})", flush=True)
            try:
                echo_urls = http_bench.write_urls(
                    self.workdir / f"{echo.name}-urls.txt",
                    [u.replace(f":{node.http_port}/", f":{echo.http_port}/", 1) for u in urls])
                for rep in range(a.repeat):
                    self.h1load_run(echo, "http", echo_urls, handle_api=False, repeat=rep)
            finally:
                self.group.stop(echo.proc)
        for rep in range(a.repeat):
            self.h1load_run(node, "http", node_urls, handle_api=True, repeat=rep)
            self.h2load_run(node, "http-grpc", rep)
        self.features["http"] = (f"HTTP/1.1 keep-alive, h2load --h1 -c {a.http_connections} "
                                 "-m 1 over Zipf-drawn ids; gRPC: h2load c4 m32 on the "
                                 "hottest id (both L1 hits)")

    def bulk_phase(self, node: Server) -> None:
        n = self.args.bulk_rows
        tag = secrets.token_hex(3)
        rows = [r.SerializeToString() for r in bulk_requests(
            0, n, lambda i: f"{ENTERPRISE_PREFIX}/LT-B-{tag}-{i:07d}")]
        accepted, failures, seconds, cpu = self.stream_bulk(node, rows)
        self.bulk = {"rows": n, "accepted": accepted, "failures": failures,
                     "seconds": seconds, "ids_per_s": accepted / seconds if seconds else 0.0,
                     "server_cpu_s": cpu, "cpu_us_per_id": cpu_us_per_request(cpu, accepted),
                     "streams": 1,
                     "client": "grpc sync stream_unary, pre-serialised, 500 rows/message"}
        print(f"  bulk: {accepted:,} identifiers in {seconds:.2f} s = "
              f"{self.bulk['ids_per_s']:,.0f}/s, {self.bulk['cpu_us_per_id']:.1f} server "
              f"CPU µs/identifier, {failures} failures", flush=True)

    def restarted(self, data: Path, name: str, env: dict[str, str],
                  body: Callable[[Server], object], cpus: str | None = None) -> Server | None:
        """Restart the node on the same store with extra settings and run ``body``."""
        node = start_node(self.group, self.pin, self.args.host, data, self.secret,
                          extra_env=env, cpus=cpus, name=name)
        print(f"{name}: restarted with {env}, pid {node.pid}", flush=True)
        try:
            body(node)
        finally:
            self.group.stop(node.proc)
        return node

    def metrics_off(self, data: Path) -> None:
        toggle = metrics_setting()
        if toggle is None:
            self.features["metrics-off"] = ("not supported: the node has no setting to "
                                            "disable metrics (skipped)")
            print(f"metrics-off: {self.features['metrics-off']}", flush=True)
            return
        self.features["metrics-off"] = f"{toggle[0]}={toggle[1]}"

        def body(server: Server) -> None:
            self.prime(server)
            self.load(server, "hot", self.workload("hot"))
            self.h2load_run(server, "hot")

        self.restarted(data, "node-nometrics", {toggle[0]: toggle[1]}, body)

    def workers_phase(self, data: Path) -> None:
        """IDNODE_WORKERS=2 vs 1, both allowed on every core (h2load on the client core)."""
        cpus = "0,1" if self.pin.enabled else None
        results: dict[int, Run | None] = {}
        for workers in (2, 1):
            name = f"node-workers{workers}"
            node = start_node(self.group, self.pin, self.args.host, data, self.secret,
                              extra_env={"IDNODE_WORKERS": str(workers)}, cpus=cpus, name=name)
            try:
                time.sleep(1.0)  # workers fork after the parent is ready
                processes = node.processes()
                print(f"{name}: pid {node.pid}, {processes} process(es)", flush=True)
                if workers == 2 and processes < 2:
                    self.workers = {"status": "n/a", "supported": False, "summary":
                                    "not supported: IDNODE_WORKERS=2 still runs one process"}
                    self.features["workers"] = self.workers["summary"]
                    return
                results[workers] = (self.h2load_run(node, "hot")
                                    or self.load(node, "hot", self.workload("hot")))
            finally:
                self.group.stop(node.proc)
        two, one = results.get(2), results.get(1)
        if two is None or one is None:
            return
        scaling = two.rps / one.rps if one.rps else math.nan
        self.workers = {
            "supported": True, "status": "pass" if scaling >= 1.5 else "info",
            "summary": f"{scaling:.2f}x req/s ({two.rps:,.0f} vs {one.rps:,.0f}); "
                       f"CPU/request {two.cpu_us_per_req:.0f} vs {one.cpu_us_per_req:.0f} µs",
            "scaling": scaling, "pinning": "server on cores 0,1; client on core 1"
                                           if cpus else "unpinned"}
        self.features["workers"] = "supported"
        self.notes.append("workers runs let the server use both cores while the client "
                          "shares core 1, so scaling is bounded by the client's share")


def metrics_setting() -> tuple[str, str] | None:
    """The IDNODE_* variable that turns metrics off, if the node has one."""
    try:
        from node.settings import Settings
    except ImportError:
        return None
    for f in dataclasses.fields(Settings):
        if f.name in {"metrics_enabled", "metrics", "enable_metrics"} and f.default is True:
            return f"IDNODE_{f.name.upper()}", "false"
        if f.name in {"metrics_disabled", "disable_metrics"} and f.default is False:
            return f"IDNODE_{f.name.upper()}", "true"
    return None


def _json(data: Any) -> str:
    import json

    return json.dumps(data)


def _load_json(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def meta(args: argparse.Namespace, pin: Pinning, h2load: str | None) -> dict[str, Any]:
    """Where and how the numbers were taken."""
    return {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "pinning": pin.describe(),
        "loadavg_at_start": load_average(),
        "h2load": h2load or "not used",
        "args": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                 for k, v in vars(args).items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scenarios; print the table and the output paths."""
    args = parse_args(argv)
    pin = Pinning.detect(not args.no_pin)
    if pin.enabled:
        os.sched_setaffinity(0, {int(pin.client_cpus)})
    workdir = Path(tempfile.mkdtemp(prefix="idnode-loadtest-"))
    bench: Bench | None = None
    status = 0
    info = meta(args, pin, None if args.no_h2load else h2.available())
    print(f"idnode load harness — {info['pinning']}", flush=True)
    print(f"  {info['cpu']}, grpcio {info['grpcio']}, h2load: {info['h2load']}; "
          f"{args.duration:g}s windows after {args.warmup:g}s warm-up, "
          f"{args.repeat} repetitions of hot", flush=True)
    try:
        with sigterm_as_interrupt(), ProcessGroup() as group:
            bench = Bench(args, pin, group, workdir)
            try:
                bench.run()
            except KeyboardInterrupt:
                print("interrupted: stopping every process the harness started", flush=True)
                bench.notes.append("run interrupted; partial results")
                status = 130
            except HarnessError as exc:
                print(f"harness error: {exc}", file=sys.stderr, flush=True)
                bench.notes.append(f"harness error: {str(exc).splitlines()[0]}")
                status = 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if bench is None or (not bench.runs and not bench.bulk):
        return status or 1
    info["loadavg_at_end"] = load_average()
    report = build_report(info, bench.runs, bench.notes, bench.bulk, bench.workers,
                          bench.features)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = write_json(report, args.out / f"bench-{stamp}.json")
    png_path = plot(report, args.out / f"bench-{stamp}.png")
    print()
    print(table(report))
    print()
    print(f"JSON: {json_path}")
    print(f"plot: {png_path if png_path else '(no latency data)'}")
    if args.keep:
        print(f"work dir (logs, store): {workdir}")
    return status


__all__ = ["SCENARIOS", "Bench", "find", "main", "metrics_setting", "parse_args", "spread"]
