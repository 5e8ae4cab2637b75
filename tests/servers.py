"""Real servers the tests start and abuse on 127.0.0.1 (never mocks), and waiting helpers.

``RedisServer`` runs a throw-away ``redis-server`` on a free port with persistence off,
and can stop, kill -9, freeze (SIGSTOP), thaw (SIGCONT) and restart it on the same port,
which is what the failure tests need: the node's clients keep the same URL throughout.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from loadtest.procs import free_port
from loadtest.redis_server import RedisServer


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

__all__ = ["RedisServer", "free_port", "http_get", "wait_port", "wait_until"]
