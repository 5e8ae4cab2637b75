"""Rate limits through the real doors (gRPC, HTTP, the Handle protocol) of a real node.

The limiters' clock is replaced by one the test moves (``node.app.build_limits`` gets a
fake clock), so nothing sleeps and nothing depends on the machine's speed: a burst over
the limit is refused with RESOURCE_EXHAUSTED / HTTP 429 / Handle RC_SERVER_TOO_BUSY and a
retry hint, other addresses and principals are served meanwhile, and once the clock has
moved by the hint the refused caller is served again. The node listens for gRPC on
127.0.0.1 and ::1 (two client addresses on one machine); the HTTP client binds to
127.0.0.2 for a second IPv4 address.
"""

from __future__ import annotations

import functools
import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

import node.app
from idnode.v1 import registry_pb2, resolver_pb2
from node.app import Node, build
from node.security.ratelimit import build_limits
from node.settings import load
from tests import handle_wire as w
from tests.conftest import ADMIN, ADMIN_SECRET, NODE_PREFIX, Client, basic
from tests.http_client import ADMIN_AUTH, Http
from tests.http_client import basic as http_basic

pytestmark = pytest.mark.e2e

HANDLE = f"{NODE_PREFIX}.8/RL-1"
OWNER_PREFIX = f"{NODE_PREFIX}.7"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Limited:
    """A started node whose limiters run on ``clock``, reachable on 127.0.0.1 and ::1."""

    def __init__(self, node: Node, clock: Clock, v6_port: int) -> None:
        self.node = node
        self.clock = clock
        self.v4 = Client(f"127.0.0.1:{node.grpc_port}")
        self.v6 = Client(f"[::1]:{v6_port}")
        self.http = Http(node.http_port)

    def refused(self, limiter: str) -> float:
        value = self.node.metrics.registry.get_sample_value(
            "idnode_ratelimit_refused_total", {"limiter": limiter})
        return value or 0.0

    def close(self) -> None:
        self.v4.close()
        self.v6.close()


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Limited]]:
    clock = Clock()
    monkeypatch.setattr(node.app, "build_limits", functools.partial(build_limits, clock=clock))
    made: list[Limited] = []

    def make(**overrides: object) -> Limited:
        settings = load(env={}, overrides={
            "data_dir": str(tmp_path / "data"), "grpc_listen": "127.0.0.1:0",
            "handle_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0",
            "node_prefix": NODE_PREFIX, "admin_secret": ADMIN_SECRET, "grpc_threads": 8,
            "shutdown_grace_seconds": 2, **overrides})
        built = build(settings)
        try:
            v6_port = built.server.add_insecure_port("[::1]:0")
        except RuntimeError:
            v6_port = 0
        if not v6_port:
            built.stop(0)
            pytest.skip("no IPv6 loopback on this machine")
        built.start()
        made.append(Limited(built, clock, v6_port))
        return made[-1]

    yield make
    for item in made:
        item.close()
        item.node.stop(0)


def resolve(client: Client, handle: str = HANDLE) -> Any:
    return client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=10)


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def details(err: grpc.RpcError) -> str:
    return err.details() or ""


def trailer(err: grpc.RpcError, key: str) -> str | None:
    for item in err.trailing_metadata() or ():
        if item.key == key:
            return str(item.value)
    return None


def http_from(port: int, source: str, path: str, *, method: str = "GET",
              body: object = None, auth: str | None = None,
              accept: str = "application/json") -> tuple[int, bytes, dict[str, str]]:
    """One request from a chosen local address (127.0.0.2 is loopback too on Linux)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        headers = {"Accept": accept}
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v
                                                  for k, v in response.getheaders()}
    finally:
        conn.close()


# --- resolves per client address -------------------------------------------------------


def test_a_resolve_burst_over_the_address_limit_gets_resource_exhausted_with_retry_after(
        limited: Callable[..., Limited]) -> None:
    n = limited(rate_resolve_per_address_per_second=0.5, rate_resolve_burst=3)
    n.v4.register(HANDLE, ("URL", "https://example.com/rl"))
    for _ in range(3):
        resolve(n.v4)
    err = rpc_error(lambda: resolve(n.v4))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate_resolve_per_address_per_second" in details(err)
    assert trailer(err, "retry-after") == "2"  # one token every 2 s
    # Another client address is served meanwhile, and so are other calls and writes.
    resolve(n.v6)
    n.v4.register(f"{NODE_PREFIX}.8/RL-2", ("URL", "https://example.com/rl2"))
    # Filtered and authenticated resolves are limited by the same address bucket.
    err = rpc_error(lambda: n.v4.resolver.Resolve(
        resolver_pb2.ResolveRequest(handle=HANDLE, types=["URL"]), metadata=ADMIN,
        timeout=10))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    err = rpc_error(lambda: n.v4.resolver.BatchResolve(
        resolver_pb2.BatchResolveRequest(handles=[HANDLE]), timeout=10))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert n.refused("resolve_address") == 3
    n.clock.advance(2)  # the hint
    assert resolve(n.v4).record.payload


def test_http_resolves_over_the_address_limit_get_429_with_retry_after(
        limited: Callable[..., Limited]) -> None:
    n = limited(rate_resolve_per_address_per_second=1, rate_resolve_burst=2)
    n.v4.register(HANDLE, ("URL", "https://example.com/rl"))
    port = n.node.http_port
    for _ in range(2):
        assert http_from(port, "127.0.0.1", f"/api/handles/{HANDLE}")[0] == 200
    status, body, headers = http_from(port, "127.0.0.1", f"/api/handles/{HANDLE}")
    assert status == 429
    assert headers["retry-after"] == "1"
    answer = json.loads(body)
    assert answer["responseCode"] == 2
    assert "rate_resolve_per_address_per_second" in answer["message"]
    # The scan page (HTML) and the gRPC door meet the same bucket: one limit per address.
    status, _, headers = http_from(port, "127.0.0.1", f"/{HANDLE}?noredirect",
                                   accept="text/html")
    assert (status, headers.get("retry-after")) == (429, "1")
    err = rpc_error(lambda: resolve(n.v4))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another address is served, and the node still answers its probes.
    assert http_from(port, "127.0.0.2", f"/api/handles/{HANDLE}")[0] == 200
    assert http_from(port, "127.0.0.1", "/healthz")[0] == 200
    n.clock.advance(1)
    assert http_from(port, "127.0.0.1", f"/api/handles/{HANDLE}")[0] == 200


def test_handle_protocol_resolutions_over_the_limit_get_server_too_busy(
        limited: Callable[..., Limited]) -> None:
    n = limited(rate_resolve_per_address_per_second=1, rate_resolve_burst=2)
    n.v4.register(HANDLE, ("URL", "https://example.com/rl"))
    port = n.node.handle_udp_port
    for _ in range(2):
        assert w.parse_answer(w.udp_exchange(port, w.resolve_request(HANDLE))[0]).code == 1
    busy = w.parse_answer(w.udp_exchange(port, w.resolve_request(HANDLE))[0])
    assert busy.code == 3  # RC_SERVER_TOO_BUSY: Handle clients retry it
    assert "rate_resolve_per_address_per_second" in w.parse_error(busy.body)
    tcp = w.parse_answer(w.tcp_exchange(n.node.handle_tcp_port, w.resolve_request(HANDLE)))
    assert tcp.code == 3  # TCP from the same address: the same bucket
    n.clock.advance(1)
    assert w.parse_answer(w.udp_exchange(port, w.resolve_request(HANDLE))[0]).code == 1


def test_a_handle_resolution_that_is_not_found_is_counted_once(
        limited: Callable[..., Limited]) -> None:
    # The hot path answers errors through the general decoder; that must not count the
    # request a second time.
    n = limited(rate_resolve_per_address_per_second=1, rate_resolve_burst=2)
    port = n.node.handle_udp_port
    missing = w.resolve_request(f"{NODE_PREFIX}.8/NOPE")
    codes = [w.parse_answer(w.udp_exchange(port, missing)[0]).code for _ in range(3)]
    assert codes == [100, 100, 3]


# --- writes per principal ----------------------------------------------------------------


def test_writes_over_a_principals_limit_are_refused_and_other_principals_write_on(
        limited: Callable[..., Limited]) -> None:
    n = limited(rate_write_per_principal_per_second=0.5, rate_write_burst=3,
                rate_write_per_address_per_second=0)
    owner = n.v4.registry.AllocatePrefix(  # the admin's first write
        registry_pb2.AllocatePrefixRequest(prefix=OWNER_PREFIX), metadata=ADMIN, timeout=10)
    n.v4.register(f"{NODE_PREFIX}.8/W-1", ("URL", "https://example.com/1"))
    n.v4.register(f"{NODE_PREFIX}.8/W-2", ("URL", "https://example.com/2"))
    err = rpc_error(lambda: n.v4.register(f"{NODE_PREFIX}.8/W-3", ("URL", "x")))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate_write_per_principal_per_second" in details(err)
    assert trailer(err, "retry-after") == "2"
    status, body, headers = n.http.call("PUT", f"/api/handles/{NODE_PREFIX}.8/W-4",
                                        {"values": []}, auth=ADMIN_AUTH)
    assert (status, body["responseCode"], headers["retry-after"]) == (429, 2, "2")
    # Another principal, from the same address, writes on; resolves are not affected.
    owner_auth = basic(owner.owner, owner.owner_secret)
    n.v4.register(f"{OWNER_PREFIX}/O-1", ("URL", "https://example.com/o"),
                  metadata=owner_auth)
    assert resolve(n.v4, f"{NODE_PREFIX}.8/W-2").record.payload
    assert n.refused("write_principal") == 2
    n.clock.advance(2)
    n.v4.register(f"{NODE_PREFIX}.8/W-3", ("URL", "https://example.com/3"))


# --- failed authentications per client address -----------------------------------------


def test_failed_logins_from_an_address_are_refused_before_hashing_even_with_a_right_secret(
        limited: Callable[..., Limited]) -> None:
    n = limited(rate_auth_failures_per_address_per_minute=1, rate_auth_failures_burst=3)
    auth = n.node.auth
    assert auth is not None
    owner = n.v4.registry.AllocatePrefix(  # the admin logs in (and is remembered)
        registry_pb2.AllocatePrefixRequest(prefix=OWNER_PREFIX), metadata=ADMIN, timeout=10)
    n.v4.register(HANDLE, ("URL", "https://example.com/rl"))
    for attempt in range(3):  # distinct identities: the per-identity back-off never fires
        err = rpc_error(lambda a=attempt: n.v4.register(  # type: ignore[misc]
            f"{NODE_PREFIX}.8/G", ("URL", "x"),
            metadata=basic(f"300:{NODE_PREFIX}.{a}/ADMIN", "wrong-secret-0001")))
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED
    checks = auth.checks_run
    err = rpc_error(lambda: n.v4.register(f"{NODE_PREFIX}.8/G", ("URL", "x"), metadata=basic(
        f"300:{NODE_PREFIX}.9/ADMIN", "wrong-secret-0001")))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate_auth_failures_per_address_per_minute" in details(err)
    assert trailer(err, "retry-after") == "60"
    # The right secret of a login not checked before: refused too (429, not 401: it was
    # not checked), over gRPC and HTTP alike, and nothing was hashed.
    owner_auth = basic(owner.owner, owner.owner_secret)
    err = rpc_error(lambda: n.v4.register(f"{OWNER_PREFIX}/O-1", ("URL", "x"),
                                          metadata=owner_auth))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    status, _, headers = n.http.call("PUT", f"/api/handles/{OWNER_PREFIX}/O-1",
                                     {"values": []},
                                     auth=http_basic(owner.owner, owner.owner_secret))
    assert (status, headers["retry-after"]) == (429, "60")
    assert auth.checks_run == checks
    # A login remembered as good costs no check and passes; anonymous resolves are served;
    # another address still gets its secrets checked.
    n.v4.register(f"{NODE_PREFIX}.8/AFTER", ("URL", "https://example.com/after"))
    assert resolve(n.v4).record.payload
    err = rpc_error(lambda: n.v6.register(f"{NODE_PREFIX}.8/G", ("URL", "x"), metadata=basic(
        f"300:{NODE_PREFIX}.9/ADMIN", "wrong-secret-0001")))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED
    assert auth.checks_run == checks + 1
    assert n.refused("auth_failures_address") == 3
    # After the hint the owner logs in.
    n.clock.advance(60)
    n.v4.register(f"{OWNER_PREFIX}/O-1", ("URL", "https://example.com/o"),
                  metadata=owner_auth)
