"""Resolve over HTTP: h2load in HTTP/1.1 mode (``--h1``) against the node's HTTP door and
against an empty-handler server on the same HTTP stack (loadtest.http_echo).

h2load reads the URIs from a file (``-i``) and each client walks the list in order, so a
list drawn once from the Zipf sampler gives every connection the same skewed mix of
identifiers, at no client cost per request. One thread, ``-c`` keep-alive connections,
one request in flight on each (``-m 1``: HTTP/1.1 has no multiplexing; pipelining is
not what browsers or Handle clients do).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from loadtest.guard import join_target, require_loopback
from loadtest.procs import HarnessError, Pinning, ProcessGroup, Server, free_port, tail
from loadtest.report import HTTP_ECHO, HTTP_ECHO_ASGI
from loadtest.stats import ZipfSampler
from loadtest.wire import seeded_handle

RESOLVE_PATH = "/api/handles/"
DEFAULT_CONNECTIONS = 32
DEFAULT_URLS = 2000


def resolve_url(host: str, port: int, handle: str) -> str:
    """``http://host:port/api/handles/<handle>`` (the raw form: ``/`` kept)."""
    return f"http://{join_target(host, port)}{RESOLVE_PATH}{urllib.parse.quote(handle, safe='/')}"


def zipf_urls(host: str, port: int, ids: int, zipf_s: float, count: int = DEFAULT_URLS,
              seed: int = 1) -> list[str]:
    """``count`` resolve URLs drawn from the same Zipf popularity as the gRPC hot
    scenario (same permutation seed, so the same identifiers are hot)."""
    sampler = ZipfSampler(ids, zipf_s, seed=seed, sample_seed=seed + 1000)
    return [resolve_url(host, port, seeded_handle(sampler.sample())) for _ in range(count)]


def write_urls(path: Path, urls: list[str]) -> Path:
    """One URI per line, as ``h2load -i`` reads them."""
    path.write_text("".join(u + "\n" for u in urls))
    return path


def command(h2load: str, urls_file: Path, *, duration: float, warmup: float,
            connections: int = DEFAULT_CONNECTIONS) -> list[str]:
    """HTTP/1.1 keep-alive, one thread, ``connections`` connections, 1 request in flight
    on each; ``-D`` windows exclude the warm-up."""
    return [h2load, "--h1", "-D", f"{round(duration * 1000)}ms",
            f"--warm-up-time={round(warmup * 1000)}ms", "-c", str(connections), "-m", "1",
            "-t", "1", "-i", str(urls_file)]


def fetch(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one GET (loopback only), for checking a sample request."""
    host = urllib.parse.urlsplit(url).hostname or ""
    require_loopback(host)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def sample_ok(url: str, *, handle_api: bool) -> tuple[bool, str, int]:
    """(ok, what was wrong, body bytes) for one request: 200, and for the node's Handle
    API a JSON body with responseCode 1 and at least one value."""
    status, body = fetch(url)
    if status != 200:
        return False, f"HTTP {status}: {body[:120]!r}", len(body)
    if handle_api:
        try:
            doc = json.loads(body)
        except ValueError:
            return False, f"not JSON: {body[:120]!r}", len(body)
        if doc.get("responseCode") != 1 or not doc.get("values"):
            return False, f"unexpected answer: {body[:160]!r}", len(body)
    return True, "", len(body)




#: The empty-handler servers: the name each gets in the report, by the way it answers.
ECHO_NAMES = {"direct": HTTP_ECHO, "asgi": HTTP_ECHO_ASGI}


def start_http_echo(group: ProcessGroup, pin: Pinning, host: str, workdir: Path,
                    payload_bytes: int, timeout: float = 30.0, way: str = "direct"
                    ) -> Server:
    """The HTTP empty-handler server (loadtest.http_echo) on a free loopback port, pinned
    like the node, answering ``way`` (``direct``: as the node answers its hot GET, the
    baseline of the target; ``asgi``: through a bare ASGI app); returns once it answers."""
    port = free_port(host)
    name = ECHO_NAMES[way]
    log = workdir / f"{name}.log"
    cmd = pin.wrap([sys.executable, "-m", "loadtest.http_echo", host, str(port),
                    str(payload_bytes), way], "server")
    server = Server(name, group.start(cmd, log=log), host, port, log, http_port=port,
                    cpus=pin.server_cpus if pin.enabled else None)
    deadline = time.monotonic() + timeout
    url = f"http://{join_target(host, port)}/healthz"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise HarnessError(f"{name} exited with {server.proc.returncode}; see "
                               f"{log}:\n{tail(log)}")
        try:
            if fetch(url, timeout=1.0)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    raise HarnessError(f"{name} not answering after {timeout:.0f}s; see {log}")


__all__ = ["DEFAULT_CONNECTIONS", "ECHO_NAMES", "command", "fetch", "resolve_url", "sample_ok",
           "start_http_echo", "write_urls", "zipf_urls"]
