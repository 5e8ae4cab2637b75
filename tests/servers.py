"""Real servers the integration tests start and abuse on 127.0.0.1 (never mocks).

``RedisServer`` runs a throw-away ``redis-server`` on a free port with persistence off,
and can stop, kill -9, freeze (SIGSTOP), thaw (SIGCONT) and restart it on the same port,
which is what the failure tests need: the node's clients keep the same URL throughout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout_seconds: float = 10.0,
               poll_seconds: float = 0.02, message: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout_seconds``.

    The way to wait for something in a test: a fixed sleep is either too short on a busy
    machine (flaky) or too long everywhere else (slow)."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout_seconds} s")
        time.sleep(poll_seconds)


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None,
              timeout: float = 30) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port``; fail early when
    ``proc`` (the server meant to listen there) exits first."""

    def listening() -> bool:
        assert proc is None or proc.poll() is None, "the process exited before listening"
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return True
        except OSError:
            return False

    wait_until(listening, timeout, 0.05, f"nothing listens on {port}")


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class RedisServer:
    """One redis-server process bound to 127.0.0.1 on a fixed port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/system-deps.sh "
                               "installs it)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
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
             "--protected-mode", "yes", "--daemonize", "no"],
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
