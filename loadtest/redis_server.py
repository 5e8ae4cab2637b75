"""A throw-away ``redis-server`` on a free loopback port, for the load harness and the
integration tests (both start their own; neither uses a server someone else started).

It can stop, kill -9, freeze (SIGSTOP), thaw (SIGCONT) and restart on the same port,
which is what the failure tests need: the node's clients keep the same URL throughout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from loadtest.procs import free_port


class RedisServer:
    """One redis-server process bound to 127.0.0.1 on a fixed port."""

    def __init__(self, workdir: Path, port: int | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/system-deps.sh "
                               "installs it)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain client for the test to inspect or tamper with the cache."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2)

    def start(self, timeout_seconds: float = 10.0) -> None:
        """Start (or start again on the same port) and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--protected-mode", "yes", "--daemonize", "no", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; "
                                   f"see {self.workdir / 'redis.log'}")
            with contextlib.suppress(redis.RedisError, OSError):
                c = self.client()
                try:
                    if c.ping():
                        return
                finally:
                    c.close()
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), waited for."""
        if self.process is None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """kill -9: connections reset, nothing flushed, as in a crash."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(10)
        self.process = None
        self.frozen = False

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts TCP connections but nothing is answered."""
        if self.process is not None and not self.frozen:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.process is not None and self.frozen:
            os.kill(self.process.pid, signal.SIGCONT)
            self.frozen = False

    def restart(self) -> None:
        """Kill and start again on the same port: every key and subscription is gone."""
        self.kill()
        self.start()

    def dbsize(self) -> int:
        c = self.client()
        try:
            return int(c.dbsize())
        finally:
            c.close()
