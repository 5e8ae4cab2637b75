"""The ``handle`` scenario: the Handle native protocol (RFC 3652) against its baselines.

Three servers, one after the other, pinned like every other run (server on core 0, load
generators on core 1):

1. **handle-echo**: :class:`node.handle.server.HandleServer` itself (the same UDP
   thread and asyncio TCP loop) with a handler that answers every request with a fixed
   300-byte message: what the server model costs with nothing behind it;
2. **node**: ``idnode serve`` with ``IDNODE_HANDLE_LISTEN``, seeded and primed: hot
   resolution over UDP and TCP (Zipf over the seeded ids), then gRPC Resolve on the same
   node with the harness's usual clients;

and the verdict as ``[pass]``/``[FAIL]`` lines: hot UDP resolution per server core (1 /
CPU per request) against gRPC Resolve's, target ≥ 10×. Numbers only, never assertions in
tests.

``python -m loadtest.handle_bench echo HOST PORT`` runs the baseline server;
``python -m loadtest.handle_bench client udp|tcp HOST PORT T0 WARMUP DURATION IDS OUT``
one load generator.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from loadtest.guard import join_target
from loadtest.procs import Server, free_port, start_node, tail
from loadtest.report import Run
from loadtest.stats import ZipfSampler, cpu_us_per_request
from loadtest.wire import seeded_handle
from node.handle import codec as c

if TYPE_CHECKING:
    from loadtest.runner import Bench

ENVELOPE = 20
WINDOW = 32  # requests in flight per load generator
TARGET_RATIO = 10.0


# --- the baseline server ------------------------------------------------------------------


class _EchoService:
    """Stands in for HandleService: a fixed answer with the request's id patched in."""

    def __init__(self, payload_bytes: int = 300) -> None:
        self.body = b"x" * (payload_bytes - ENVELOPE - c.HEADER_BYTES - 4) + c.NO_CREDENTIAL

    def answer(self, env: Any, msg: bytes, transport: str, peer: str, *,
               may_block: bool = True) -> bytes:
        return c.HEAD.pack(2, env.minor, 0, 0, env.session_id, env.request_id, 0,
                           c.HEADER_BYTES + len(self.body), 1, 1, c.FLAG_AUTHORITATIVE, 1,
                           0, 0, 0, len(self.body) - 4) + self.body

    def error(self, env: Any, *args: Any) -> bytes:
        return self.answer(env, b"", "", "")

    def fast(self, data: bytes, transport: str = "udp") -> None:
        """Never remembers: every request takes the decoding path, as a node's first."""
        return None

    def flush_metrics(self) -> None:
        pass

    busy = protocol_error = error


def echo_main(host: str, port: int) -> int:
    """Serve the empty-answer baseline until SIGTERM."""
    from node.handle.server import HandleServer
    from node.observe.metrics import Metrics

    server = HandleServer(_EchoService(), Metrics(enabled=False),  # type: ignore[arg-type]
                          listen=join_target(host, port), max_connections=1000,
                          idle_timeout_seconds=60, threads=2, max_pending=64,
                          udp_max_answer_bytes=4096)
    server.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("READY", flush=True)
    while not stop.wait(3600):
        pass
    server.stop(0)
    return 0


# --- the load generator -------------------------------------------------------------------


def _requests(ids: int, count: int = 4096) -> list[bytes]:
    """Framed resolution requests for Zipf-drawn seeded ids (built before the clock)."""
    from node.handle.client import resolution_request

    sampler = ZipfSampler(ids, 0.99, seed=3)
    return [resolution_request(seeded_handle(sampler.sample()), request_id=n + 1)
            for n in range(count)]


def client_main(kind: str, host: str, port: int, t0: float, warmup: float, duration: float,
                ids: int, out: str) -> int:
    """A closed loop with WINDOW requests in flight; counts answers inside the window."""
    reqs = _requests(ids)
    w0, w1 = t0 + warmup, t0 + warmup + duration
    counted = errors = sent = 0
    while time.monotonic() < t0:
        time.sleep(0.001)
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((host, port))
        s.settimeout(0.05)
        for _ in range(WINDOW):
            s.send(reqs[sent % len(reqs)])
            sent += 1
        while True:
            try:
                data = s.recv(65535)
            except TimeoutError:  # lost under overload: refill the window
                errors += 1
                for _ in range(WINDOW):
                    s.send(reqs[sent % len(reqs)])
                    sent += 1
                continue
            now = time.monotonic()
            if now >= w1:
                break
            if now >= w0 and data[ENVELOPE + 4:ENVELOPE + 8] == b"\0\0\0\x01":
                counted += 1
            s.send(reqs[sent % len(reqs)])
            sent += 1
    else:
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"".join(reqs[:WINDOW]))
        sent = WINDOW
        buf = bytearray()
        while True:
            chunk = s.recv(262144)
            if not chunk:
                errors += 1
                break
            buf += chunk
            now = time.monotonic()
            answered = 0
            while len(buf) >= ENVELOPE:
                length = int.from_bytes(buf[16:20], "big")
                if len(buf) < ENVELOPE + length:
                    break
                if now >= w0 and buf[ENVELOPE + 4:ENVELOPE + 8] == b"\0\0\0\x01":
                    counted += 1
                del buf[:ENVELOPE + length]
                answered += 1
            if now >= w1:
                break
            if answered:
                s.sendall(b"".join(reqs[(sent + i) % len(reqs)] for i in range(answered)))
                sent += answered
    s.close()
    Path(out).write_text(json.dumps({"requests": counted, "errors": errors}))
    return 0


# --- the phase (called by loadtest.runner for --scenarios handle) -------------------------


def _measure(bench: Bench, server: Server, kind: str, port: int, label: str) -> Run:
    """One pinned load generator against ``server``'s Handle ``port`` over ``kind``."""
    a = bench.args
    bench._n += 1
    out = bench.workdir / f"handle{bench._n}.json"
    log = bench.workdir / "handle-clients.log"
    t0 = time.monotonic() + 1.0
    cmd = bench.pin.wrap([sys.executable, "-m", "loadtest.handle_bench", "client", kind,
                          server.host, str(port), repr(t0), str(a.warmup), str(a.duration),
                          str(a.ids), str(out)], "client")
    proc = bench.group.start(cmd, log=log)
    try:
        w0 = t0 + a.warmup
        time.sleep(max(0.0, w0 - time.monotonic()))
        before = bench.snapshot(server)
        time.sleep(max(0.0, w0 + a.duration - time.monotonic()))
        after = bench.snapshot(server)
        proc.wait(timeout=30)
    finally:
        bench.group.stop(proc, grace=2)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"handle load generator failed; see {log}:\n{tail(log)}")
    result = json.loads(out.read_text())
    run = Run(scenario=label, server=server.name, mode="closed", client=f"{kind} x1 w{WINDOW}",
              concurrency=WINDOW, duration_s=a.duration, requests=result["requests"],
              rps=result["requests"] / a.duration, errors=result["errors"])
    bench.window(run, before, after, server.cpus)
    run.cpu_us_per_req = cpu_us_per_request(run.cpu_s, run.requests)
    bench._record(run)
    return run


def _start_echo(bench: Bench) -> Server:
    host = bench.args.host
    port = free_port(host)
    log = bench.workdir / "handle-echo.log"
    cmd = bench.pin.wrap([sys.executable, "-m", "loadtest.handle_bench", "echo", host,
                          str(port)], "server")
    proc = bench.group.start(cmd, log=log, stdout=-1)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if line != "READY":
        raise RuntimeError(f"handle echo server did not start; see {log}:\n{tail(log)}")
    return Server("handle-echo", proc, host, port, log,
                  cpus=bench.pin.server_cpus if bench.pin.enabled else None)


def phase(bench: Bench) -> None:
    """Baseline, then the node over UDP, TCP and gRPC; then the verdict lines."""
    a = bench.args
    echo = _start_echo(bench)
    print(f"handle echo baseline: pid {echo.pid} on {echo.target}", flush=True)
    try:
        base = {kind: _measure(bench, echo, kind, echo.port, "handle-empty")
                for kind in ("udp", "tcp")}
    finally:
        bench.group.stop(echo.proc)
    data = bench.workdir / "handle-data"
    handle_port = free_port(a.host)
    node = start_node(bench.group, bench.pin, a.host, data, bench.secret,
                      extra_env={"IDNODE_HANDLE_LISTEN": join_target(a.host, handle_port)},
                      name="node-handle")
    print(f"node with the Handle door: pid {node.pid}, gRPC {node.target}, Handle "
          f"{handle_port}", flush=True)
    try:
        bench.seed(node)
        bench.prime(node)
        hot = {kind: _measure(bench, node, kind, handle_port, "handle-hot")
               for kind in ("udp", "tcp")}
        grpc_run = bench.load(node, "handle-grpc", bench.workload("hot"))
    finally:
        bench.group.stop(node.proc)
    verdict(hot, base, grpc_run)


def verdict(hot: dict[str, Run], base: dict[str, Run], grpc_run: Run) -> list[str]:
    """[pass]/[FAIL] lines: per-core throughput (1/CPU per request) against gRPC."""
    lines = []
    grpc_cpu = grpc_run.cpu_us_per_req
    for kind in ("udp", "tcp"):
        run = hot[kind]
        per_core = grpc_cpu / run.cpu_us_per_req if run.cpu_us_per_req else float("nan")
        rps_ratio = run.rps / grpc_run.rps if grpc_run.rps else float("nan")
        overhead = run.cpu_us_per_req - base[kind].cpu_us_per_req
        target = TARGET_RATIO if kind == "udp" else 0.0
        ok = per_core >= target
        tag = "[pass]" if ok else "[FAIL]"
        goal = f" (target ≥ {target:g}×)" if target else ""
        lines.append(
            f"{tag} Handle {kind.upper()} hot: {run.rps:,.0f} req/s, "
            f"{run.cpu_us_per_req:.1f} server CPU µs/req "
            f"(empty-answer baseline {base[kind].rps:,.0f} req/s, "
            f"{base[kind].cpu_us_per_req:.1f} µs; resolution adds {overhead:.1f} µs); "
            f"vs gRPC Resolve {grpc_run.rps:,.0f} req/s, {grpc_cpu:.1f} µs: "
            f"{per_core:.1f}× per core{goal}, {rps_ratio:.1f}× req/s")
    for line in lines:
        print(line, flush=True)
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["echo"]:
        return echo_main(argv[1], int(argv[2]))
    if argv[:1] == ["client"]:
        kind, host, port, t0, warmup, duration, ids, out = argv[1:9]
        return client_main(kind, host, int(port), float(t0), float(warmup),
                           float(duration), int(ids), out)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
