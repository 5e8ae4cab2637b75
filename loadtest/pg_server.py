"""A throw-away PostgreSQL for the benchmarks: ``initdb`` in a temporary directory, the
server on a free loopback port, durability left at PostgreSQL's defaults (fsync and
synchronous commit on, like the SQLite store's ``synchronous = FULL``), so the backends
are compared at the same promise. Stopped and removed by :meth:`BenchPostgres.close`.

The test suite has its own, richer server (tests/pg_server.py: kill -9, restarts,
password checks); the harness never imports tests/, so this is the few lines it needs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from loadtest.procs import cpu_seconds, free_port

USER = "idnode_bench"


def _bindir() -> Path:
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for version in sorted((p for p in root.iterdir() if p.name.isdigit()),
                              key=lambda p: int(p.name), reverse=True):
            if (version / "bin" / "initdb").is_file():
                return version / "bin"
    raise RuntimeError("PostgreSQL server binaries not found: run scripts/system-deps.sh")


class BenchPostgres:
    """``url`` names database ``idnode`` of a server only this process uses."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.workdir = Path(tempfile.mkdtemp(prefix="idnode-bench-pg-"))
        self.port = free_port()
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.process: subprocess.Popen[bytes] | None = None

    def _as_server(self) -> dict[str, object]:
        if self.user is None:
            return {"cwd": self.workdir}
        return {"cwd": self.workdir, "user": self.user.pw_uid, "group": self.user.pw_gid,
                "extra_groups": [], "env": {**os.environ, "HOME": str(self.workdir)}}

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/idnode"

    def start(self) -> BenchPostgres:
        if self.user is not None:
            os.chown(self.workdir, self.user.pw_uid, self.user.pw_gid)
        data = self.workdir / "data"
        subprocess.run([str(self.bindir / "initdb"), "-D", str(data), "-U", USER,
                        "--auth=trust", "-E", "UTF8", "--locale=C"],
                       capture_output=True, check=True, timeout=120,
                       **self._as_server())  # type: ignore[call-overload]
        log = (self.workdir / "postgres.log").open("ab")
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            [str(self.bindir / "postgres"), "-D", str(data), "-c", f"port={self.port}",
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.workdir}",
             "-c", "max_connections=200", "-c", "shared_buffers=128MB"],
            stdout=log, stderr=subprocess.STDOUT, **self._as_server())
        log.close()
        admin = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        for _ in range(600):
            with contextlib.suppress(psycopg.OperationalError):
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                    conn.execute("CREATE DATABASE idnode")
                return self
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not start; see {self.workdir / 'postgres.log'}")

    def cpu(self) -> float:
        """CPU seconds of the postmaster and its backends so far."""
        return cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


__all__ = ["BenchPostgres"]
