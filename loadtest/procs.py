"""Processes the harness starts: servers, clients, h2load — and only those.

Every process goes through a ProcessGroup so it is stopped at the end whatever happens
(exception, Ctrl-C, SIGTERM): SIGTERM first so the node drains, SIGKILL after a bound.
CPU time is read from /proc/PID/stat of the server and all its descendants, so a node
that forks workers is charged for all of them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.guard import join_target, require_loopback
from loadtest.stats import parse_cpu_times, parse_proc_stat

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


class HarnessError(RuntimeError):
    """Something the harness needs did not happen (a server did not come up, ...)."""


@dataclass(frozen=True)
class Pinning:
    """Which cores servers and load generators run on (``taskset -c``)."""

    enabled: bool
    server_cpus: str = "0"
    client_cpus: str = "1"
    reason: str = ""

    @classmethod
    def detect(cls, want: bool = True) -> Pinning:
        """Pin when asked, taskset exists and there are at least two CPUs to split."""
        cpus = len(os.sched_getaffinity(0))
        if not want:
            return cls(False, reason="disabled by --no-pin")
        if shutil.which("taskset") is None:
            return cls(False, reason="taskset not found")
        if cpus < 2:
            return cls(False, reason=f"only {cpus} CPU available")
        return cls(True)

    def wrap(self, cmd: Sequence[str], role: str, cpus: str | None = None) -> list[str]:
        """``cmd`` prefixed with taskset for ``role`` ('server' or 'client')."""
        if not self.enabled:
            return list(cmd)
        chosen = cpus or (self.server_cpus if role == "server" else self.client_cpus)
        return ["taskset", "-c", chosen, *cmd]

    def describe(self) -> str:
        """One line for the report."""
        if not self.enabled:
            return f"not pinned ({self.reason})"
        return (f"server pinned to core {self.server_cpus}, load generators (and this "
                f"orchestrator) to core {self.client_cpus} with taskset")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on loopback."""
    require_loopback(host)
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        return int(s.getsockname()[1])


def proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime, stime) of ``pid`` or None when it is gone."""
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = proc_stat(int(entry.name))
        if stat is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int, *, include_children: bool = True) -> float:
    """utime + stime of ``pid`` (and its live descendants) in seconds."""
    pids = [pid, *(descendants(pid) if include_children else [])]
    ticks = 0
    for p in pids:
        stat = proc_stat(p)
        if stat is not None:
            ticks += stat[1] + stat[2]
    return ticks / CLK_TCK


def core_busy_seconds() -> dict[int, float]:
    """Busy CPU seconds so far of every core (all processes, from /proc/stat)."""
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return {}
    return {cpu: busy / CLK_TCK for cpu, (busy, _total) in parse_cpu_times(text).items()}


def load_average() -> float:
    """The 1-minute load average (how crowded the machine is)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


@dataclass
class ProcessGroup:
    """Owns every process the harness starts; ``close()`` stops them all."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    def start(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
              log: Path | None = None, stdin: int | None = None,
              stdout: int | None = None) -> subprocess.Popen[bytes]:
        """Start and remember ``cmd``; stdout/stderr to ``log`` unless piped."""
        out: IO[bytes] | int
        if log is not None:
            fh = log.open("ab")
            self._files.append(fh)
            out = fh
        else:
            out = subprocess.DEVNULL
        proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None,
                                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else out, stderr=out,
                                cwd=REPO)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 8.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        """Stop everything still running (servers last so clients see no resets)."""
        for proc in list(reversed(self.procs)):
            self.stop(proc, grace=5.0)
        for fh in self._files:
            fh.close()
        self._files.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM to the harness like Ctrl-C so the finally blocks stop children."""
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Server:
    """A server process the harness started and measures."""

    name: str
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path
    http_port: int = 0
    cpus: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return join_target(self.host, self.port)

    def cpu(self) -> float:
        """CPU seconds of the server and its descendants so far."""
        return cpu_seconds(self.pid)

    def processes(self) -> int:
        """How many processes serve (1 + live descendants)."""
        return 1 + len(descendants(self.pid))


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    """Until the gRPC health check says SERVING (or the process dies / time runs out)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise HarnessError(f"{server.name} exited with {server.proc.returncode} during "
                               f"start; see {server.log}:\n{tail(server.log)}")
        with grpc.insecure_channel(server.target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
                if server.name == "echo":
                    return
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = f"health {reply.status}"
            except grpc.FutureTimeoutError:
                last = "not listening yet"
            except grpc.RpcError as exc:
                last = f"health check {exc.code().name}"
        time.sleep(0.1)
    raise HarnessError(f"{server.name} not ready after {timeout:.0f}s ({last}); "
                       f"see {server.log}")


def tail(path: Path, lines: int = 15) -> str:
    """The end of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_echo(group: ProcessGroup, pin: Pinning, host: str, workdir: Path,
               payload_bytes: int) -> Server:
    """The empty-handler baseline server on a free loopback port."""
    port = free_port(host)
    log = workdir / "echo.log"
    cmd = pin.wrap([sys.executable, "-m", "loadtest.echo_server", host, str(port),
                    str(payload_bytes)], "server")
    server = Server("echo", group.start(cmd, log=log), host, port, log,
                    cpus=pin.server_cpus if pin.enabled else None)
    wait_ready(server)
    return server


def idnode_command(subcommand: str = "serve") -> list[str]:
    """The node's console script next to this interpreter (``python -m node`` if absent)."""
    script = Path(sys.executable).with_name("idnode")
    return [str(script), subcommand] if script.exists() else [sys.executable, "-m", "node",
                                                              subcommand]


def start_node(group: ProcessGroup, pin: Pinning, host: str, data_dir: Path, secret: str,
               extra_env: Mapping[str, str] | None = None, cpus: str | None = None,
               name: str = "node", subcommand: str = "serve",
               args: Sequence[str] = ()) -> Server:
    """``idnode serve`` (or ``subcommand`` with ``args``, e.g. ``mirror --from …``)
    configured through IDNODE_* variables."""
    port = free_port(host)
    http_port = free_port(host)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update({
        "IDNODE_DATA_DIR": str(data_dir),
        "IDNODE_GRPC_LISTEN": join_target(host, port),
        "IDNODE_HTTP_LISTEN": join_target(host, http_port),
        "IDNODE_NODE_PREFIX": "88.118",
        "IDNODE_ADMIN_SECRET": secret,
        "IDNODE_HANDLE_LISTEN": "",  # the handle scenario turns it on
        **(extra_env or {}),
    })
    log = data_dir.parent / f"{name}.log"
    cmd = pin.wrap([*idnode_command(subcommand), *args], "server", cpus)
    server = Server(name, group.start(cmd, env=env, log=log), host, port, log, http_port,
                    cpus=(cpus or pin.server_cpus) if pin.enabled else None)
    wait_ready(server)
    return server
