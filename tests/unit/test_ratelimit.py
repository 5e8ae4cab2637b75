"""Rate limits without I/O or sleeps: the token bucket with an injected clock, the keying
of client addresses, and the core's admission (which limiter a request meets, and that a
refused login is refused before any secret is hashed)."""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from node.errors import mapping_for, retry_after
from node.observe.metrics import RATE_LIMITERS, Metrics
from node.security.auth import Authenticator
from node.security.ratelimit import (
    AddressKeys,
    AddressLimiter,
    RateLimiter,
    RateLimits,
    address_of,
    build_limits,
    parse_networks,
)
from node.service.admission import Admission
from node.service.caller import Caller
from node.settings import SettingsError, load
from registry.access.principals import Principal, StoredPrincipal, identity_key
from registry.errors import ResourceExhausted, Unauthenticated


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Count:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


def bucket(clock: Clock, per_second: float = 10, burst: int = 5, **kw: Any) -> RateLimiter:
    return RateLimiter("resolve_address", per_second, burst, clock=clock, **kw)


# --- the bucket -------------------------------------------------------------------------


def test_a_burst_passes_then_the_next_request_is_refused_until_a_token_is_back() -> None:
    clock = Clock()
    limiter = bucket(clock, per_second=10, burst=5)
    assert [limiter.take("a") for _ in range(5)] == [0.0] * 5
    wait = limiter.take("a")
    assert wait == pytest.approx(0.1)  # one token every 1/10 s
    clock.advance(0.1)
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.1)


def test_a_refused_request_takes_nothing_so_retrying_after_the_hint_succeeds() -> None:
    clock = Clock()
    limiter = bucket(clock, per_second=2, burst=1)
    assert limiter.take("a") == 0.0
    for _ in range(100):  # hammering while refused does not push the wait further out
        assert limiter.take("a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.take("a") == 0.0


def test_an_idle_key_refills_up_to_the_burst_and_no_further() -> None:
    clock = Clock()
    limiter = bucket(clock, per_second=10, burst=3)
    for _ in range(3):
        limiter.take("a")
    clock.advance(3600)
    assert [limiter.take("a") for _ in range(3)] == [0.0] * 3
    assert limiter.take("a") > 0


def test_keys_have_separate_buckets() -> None:
    clock = Clock()
    limiter = bucket(clock, burst=2)
    limiter.take("a")
    limiter.take("a")
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_a_cost_takes_several_tokens_and_is_capped_at_the_burst() -> None:
    clock = Clock()
    limiter = bucket(clock, per_second=10, burst=5)
    assert limiter.take("a", 3) == 0.0
    assert limiter.take("a", 3) == pytest.approx(0.1)  # 2 left, 3 asked: one more needed
    assert limiter.take("a", 2) == 0.0
    clock.advance(60)
    # A batch larger than the burst costs the whole burst: possible once it is full.
    assert limiter.take("a", 100) == 0.0
    assert limiter.take("a") > 0


def test_the_last_token_of_a_burst_is_never_lost_to_float_rounding() -> None:
    clock = Clock()
    clock.now = 123456.789  # a large monotonic value, where rounding shows
    limiter = bucket(clock, per_second=3, burst=1000)
    assert all(limiter.take("a") == 0.0 for _ in range(1000))
    assert limiter.take("a") > 0


def test_memory_is_bounded_and_the_least_recently_used_key_is_forgotten_first() -> None:
    clock = Clock()
    limiter = bucket(clock, per_second=1, burst=1, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.take(key)
    limiter.take("a")  # refused, but "a" is not refreshed by a refusal...
    limiter.take("b", 0)  # ...while a granted take refreshes "b"
    limiter.take("d")  # over the bound: the least recently granted key ("a") goes
    assert limiter.tracked_keys == 3
    assert limiter.take("a") == 0.0  # forgotten = a full bucket again
    assert limiter.take("b") > 0 and limiter.take("d") > 0


def test_a_flood_of_distinct_keys_stays_within_the_bound() -> None:
    limiter = bucket(Clock(), per_second=1, burst=1, max_keys=1000)
    for n in range(10_000):
        limiter.take(f"10.0.{n // 256}.{n % 256}")
    assert limiter.tracked_keys == 1000


def test_refusals_of_check_are_counted_and_grants_are_not() -> None:
    count = Count()
    limiter = bucket(Clock(), burst=2, refused=count)
    for _ in range(5):
        with contextlib.suppress(ResourceExhausted):
            limiter.check("a")
    assert count.value == 3


def test_check_raises_resource_exhausted_naming_the_setting_with_a_retry_hint() -> None:
    clock = Clock()
    limiter = RateLimiter("write_principal", 0.5, 1, clock=clock, what="writes",
                          per="second by one principal",
                          setting="rate_write_per_principal_per_second")
    limiter.check("p")
    with pytest.raises(ResourceExhausted) as caught:
        limiter.check("p")
    exc = caught.value
    assert "rate_write_per_principal_per_second" in exc.message
    assert "at most 0.5 writes per second by one principal (burst 1)" in exc.message
    assert exc.retry_after_seconds == pytest.approx(2.0)
    assert retry_after(exc) == 2
    assert mapping_for(exc).status == "RESOURCE_EXHAUSTED"
    assert mapping_for(exc).http_status == 429


@pytest.mark.parametrize(("seconds", "hint"), [(0.001, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_the_retry_hint_is_whole_seconds_rounded_up_and_at_least_one(seconds: float,
                                                                       hint: int) -> None:
    assert retry_after(ResourceExhausted("x", retry_after_seconds=seconds)) == hint


def test_an_error_without_a_wait_carries_no_retry_hint() -> None:
    assert retry_after(ResourceExhausted("busy")) is None
    assert retry_after(Unauthenticated("no")) is None


def test_a_token_given_back_can_be_taken_again() -> None:
    clock = Clock()
    limiter = RateLimiter("auth_failures_address", 1, 2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    assert limiter.take("a") > 0
    limiter.give_back("a")
    assert limiter.take("a") == 0.0
    limiter.give_back("never-seen")  # nothing to give back to: no error, no entry
    assert limiter.tracked_keys == 1


def test_concurrent_takes_never_grant_more_than_the_burst() -> None:
    limiter = bucket(Clock(), per_second=1, burst=500)
    granted: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(1 for _ in range(200) if limiter.take("a") == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 500


@pytest.mark.parametrize(("per_second", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_limiter_without_a_positive_rate_and_burst_is_refused(per_second: float,
                                                                burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter("x", per_second, burst)


# --- client addresses -------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "address"), [
    ("ipv4:127.0.0.1:5555", "127.0.0.1"),  # gRPC
    ("ipv6:[::1]:5555", "::1"),
    ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
    ("127.0.0.1:5555", "127.0.0.1"),  # HTTP and the Handle protocol: host:port
    ("::1:5555", "::1"),
    ("10.1.2.3", "10.1.2.3"),
    ("unix:/run/idnode.sock", "unix"),
    ("", ""),
])
def test_the_address_of_a_peer_string_has_no_port(peer: str, address: str) -> None:
    assert address_of(peer) == address


@pytest.mark.parametrize(("peer", "key"), [
    ("ipv4:192.0.2.1:5555", "192.0.2.1"),
    ("192.0.2.1:6000", "192.0.2.1"),  # the same client on another connection and door
    ("ipv6:[2001:db8:1:2::7]:5555", "2001:db8:1:2::/64"),
    ("ipv6:[2001:db8:1:2:ffff::9]:5555", "2001:db8:1:2::/64"),  # same /64, same bucket
    ("ipv6:[::ffff:192.0.2.1]:5555", "192.0.2.1"),  # IPv4-mapped: the IPv4 address
    ("ipv6:[fe80::1%eth0]:5555", "fe80::/64"),
    ("", None),  # in-process callers are not limited by address
])
def test_clients_are_keyed_by_ipv4_address_or_ipv6_slash_64(peer: str, key: str | None) -> None:
    assert AddressKeys().key(peer) == key


def test_exempt_networks_are_not_limited_by_address() -> None:
    keys = AddressKeys(parse_networks("10.0.0.0/8, ::1"))
    assert keys.key("ipv4:10.9.8.7:1") is None
    assert keys.key("ipv6:[::1]:1") is None
    assert keys.key("ipv4:11.0.0.1:1") == "11.0.0.1"


def test_a_bad_exempt_network_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.300'")):
        parse_networks("10.0.0.0/8,10.0.0.300")


def test_an_address_limiter_refuses_one_address_and_not_another() -> None:
    clock = Clock()
    limiter = AddressLimiter(bucket(clock, burst=2), AddressKeys())
    limiter.check("ipv4:127.0.0.1:1000")
    limiter.check("127.0.0.1:2000")  # another connection, another door: same address
    with pytest.raises(ResourceExhausted):
        limiter.check("ipv4:127.0.0.1:3000")
    limiter.check("ipv6:[::1]:1000")
    limiter.check("")  # not limited


# --- settings and metrics ---------------------------------------------------------------


def test_defaults_leave_resolves_unlimited_and_limit_writes_and_failed_logins() -> None:
    s = load(env={})
    assert s.rate_resolve_per_address_per_second == 0
    assert s.rate_resolve_per_principal_per_second == 0
    assert s.rate_write_per_principal_per_second > 0
    assert s.rate_write_per_address_per_second >= s.rate_write_per_principal_per_second
    assert s.rate_auth_failures_per_address_per_minute > 0
    assert s.rate_limit_exempt_networks == ""


@pytest.mark.parametrize(("env", "name"), [
    ({"IDNODE_RATE_RESOLVE_PER_ADDRESS_PER_SECOND": "-1"},
     "rate_resolve_per_address_per_second"),
    ({"IDNODE_RATE_WRITE_PER_PRINCIPAL_PER_SECOND": "fast"},
     "rate_write_per_principal_per_second"),
    ({"IDNODE_RATE_WRITE_BURST": "0"}, "rate_write_burst"),
    ({"IDNODE_RATE_RESOLVE_BURST": "2000000"}, "rate_resolve_burst"),
    ({"IDNODE_RATE_AUTH_FAILURES_PER_ADDRESS_PER_MINUTE": "nan"},
     "rate_auth_failures_per_address_per_minute"),
    ({"IDNODE_RATE_LIMIT_MAX_KEYS": "10"}, "rate_limit_max_keys"),
    ({"IDNODE_RATE_LIMIT_EXEMPT_NETWORKS": "10.0.0.0/8,nope"}, "rate_limit_exempt_networks"),
])
def test_bad_rate_limit_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(env=env)


def test_zero_disables_a_limiter_and_every_limiter_has_a_metric_label() -> None:
    metrics = Metrics(CollectorRegistry())
    off = build_limits(resolve_per_address_per_second=0, resolve_per_principal_per_second=0,
                       resolve_burst=1, write_per_address_per_second=0,
                       write_per_principal_per_second=0, write_burst=1,
                       auth_failures_per_address_per_minute=0, auth_failures_burst=1,
                       refused=metrics.refused_by)
    assert off == RateLimits()
    on = build_limits(resolve_per_address_per_second=1, resolve_per_principal_per_second=1,
                      resolve_burst=1, write_per_address_per_second=1,
                      write_per_principal_per_second=1, write_burst=1,
                      auth_failures_per_address_per_minute=1, auth_failures_burst=1,
                      refused=metrics.refused_by)
    assert on.resolve_address and on.write_address and on.auth_failures_address
    assert on.resolve_principal and on.write_principal
    names = {on.resolve_address.limiter.name, on.resolve_principal.name,
             on.write_address.limiter.name, on.write_principal.name,
             on.auth_failures_address.limiter.name}
    assert names == set(RATE_LIMITERS)


# --- admission: which limiter a request meets -------------------------------------------


GOOD = "Basic good"
ALICE = Principal.of("300:88.118.1/ADMIN")
BOB = Principal.of("300:88.118.2/ADMIN")


class FakeAuth:
    """Checks headers like the Authenticator would, counting the (costly) checks."""

    def __init__(self) -> None:
        self.checks = 0
        self.good = {GOOD: ALICE, "Basic bob": BOB}
        self.remembered_headers: set[str] = set()

    def principal(self, header: str | None, certificate: object = None) -> Principal | None:
        if not header:
            return None
        self.checks += 1
        if header in self.good:
            return self.good[header]
        raise Unauthenticated("wrong identity or secret")

    def remembered(self, header: str) -> Principal | None:
        return self.good[header] if header in self.remembered_headers else None


def admission(auth: FakeAuth, clock: Clock, **rates: float) -> Admission:
    settings: dict[str, Any] = {
        "resolve_per_address_per_second": 0, "resolve_per_principal_per_second": 0,
        "resolve_burst": 3, "write_per_address_per_second": 0,
        "write_per_principal_per_second": 0, "write_burst": 2,
        "auth_failures_per_address_per_minute": 0, "auth_failures_burst": 3, **rates}
    return Admission(auth, build_limits(clock=clock, **settings),
                     remembered=auth.remembered)


HERE = "ipv4:203.0.113.5:4000"
THERE = "ipv4:198.51.100.9:4000"


def test_failed_logins_from_one_address_are_refused_before_any_check() -> None:
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, auth_failures_per_address_per_minute=6)  # one per 10 s
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            gate.authenticate(Caller("Basic wrong", HERE))
    checks = auth.checks
    with pytest.raises(ResourceExhausted) as caught:
        gate.authenticate(Caller("Basic wrong", HERE))
    assert "rate_auth_failures_per_address_per_minute" in caught.value.message
    assert "credentials were not checked" in caught.value.message
    assert retry_after(caught.value) == 10
    # A correct secret is not checked either: told to retry, never that it is wrong.
    with pytest.raises(ResourceExhausted):
        gate.authenticate(Caller(GOOD, HERE))
    assert auth.checks == checks
    # Another address is not affected; anonymous callers are never refused by it.
    assert gate.authenticate(Caller(GOOD, THERE)) == ALICE
    assert gate.authenticate(Caller(None, HERE)) is None
    # After the hint, one more attempt is allowed.
    clock.advance(10)
    assert gate.authenticate(Caller(GOOD, HERE)) == ALICE


def test_a_login_remembered_as_good_passes_a_refused_address_without_a_check() -> None:
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, auth_failures_per_address_per_minute=1)
    auth.remembered_headers.add(GOOD)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            gate.authenticate(Caller("Basic wrong", HERE))
    checks = auth.checks
    assert gate.authenticate(Caller(GOOD, HERE)) == ALICE
    assert auth.checks == checks


def test_concurrent_guesses_from_one_address_cannot_overshoot_the_budget() -> None:
    # Each check holds a token while it runs, so guesses that arrive while the first
    # ones are still being hashed find the bucket empty.
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, auth_failures_per_address_per_minute=1)
    started, release = threading.Barrier(4), threading.Event()
    slow_principal = auth.principal

    def slow(header: str | None, certificate: object = None) -> Principal | None:
        started.wait(5)
        release.wait(5)
        return slow_principal(header)

    auth.principal = slow  # type: ignore[method-assign]
    outcomes: list[str] = []

    def guess() -> None:
        try:
            gate.authenticate(Caller("Basic wrong", HERE))
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=guess) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait(5)  # three checks are running: the burst is held
    with pytest.raises(ResourceExhausted):
        gate.authenticate(Caller("Basic wrong", HERE))
    release.set()
    for t in threads:
        t.join(5)
    assert sorted(outcomes) == ["Unauthenticated"] * 3


def test_successful_logins_do_not_use_up_the_failure_budget() -> None:
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, auth_failures_per_address_per_minute=1)
    for _ in range(50):
        assert gate.authenticate(Caller(GOOD, HERE)) == ALICE


def test_writes_are_limited_per_principal_and_other_principals_are_unaffected() -> None:
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, write_per_principal_per_second=1)
    gate.writer(Caller(GOOD, HERE))
    gate.writer(Caller(GOOD, THERE))  # the principal's bucket, whatever the address
    with pytest.raises(ResourceExhausted, match="rate_write_per_principal_per_second"):
        gate.writer(Caller(GOOD, HERE))
    assert gate.writer(Caller("Basic bob", HERE)) == BOB


def test_writes_from_an_address_over_its_limit_are_refused_before_authentication() -> None:
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, write_per_address_per_second=1)
    gate.writer(Caller(GOOD, HERE))
    gate.writer(Caller("Basic bob", HERE))
    checks = auth.checks
    with pytest.raises(ResourceExhausted, match="rate_write_per_address_per_second"):
        gate.writer(Caller("Basic bob", HERE))
    assert auth.checks == checks
    assert gate.writer(Caller(GOOD, THERE)) == ALICE


def test_reads_take_a_token_per_identifier_from_the_address_and_the_principal() -> None:
    auth, clock = FakeAuth(), Clock()
    gate = admission(auth, clock, resolve_per_address_per_second=1,
                     resolve_per_principal_per_second=1)
    gate.reader(Caller(None, HERE), cost=3)  # a batch of three uses the burst
    with pytest.raises(ResourceExhausted, match="rate_resolve_per_address_per_second"):
        gate.reader(Caller(None, HERE))
    gate.reader(Caller(GOOD, THERE), cost=3)
    with pytest.raises(ResourceExhausted, match="rate_resolve_per_principal_per_second"):
        gate.reader(Caller(GOOD, "ipv4:192.0.2.44:1"))  # a fresh address, same principal


def test_the_hot_path_check_is_none_when_the_address_limit_is_off() -> None:
    auth, clock = FakeAuth(), Clock()
    assert admission(auth, clock).public is None
    gate = admission(auth, clock, resolve_per_address_per_second=1)
    assert gate.public is not None
    for _ in range(3):
        gate.public(HERE)
    with pytest.raises(ResourceExhausted):
        gate.public(HERE)
    gate.public(THERE)


# --- the Authenticator's part: remembered logins, the identity back-off's hint -----------


def _authenticator(clock: Clock, **kwargs: Any) -> tuple[Authenticator, str]:
    identity = "300:88.118/ADMIN"
    stored = StoredPrincipal(Principal.of(identity), "plain$right", 0)

    def lookup(key: str) -> StoredPrincipal | None:
        return stored if key == identity_key(identity) else None

    return Authenticator(lookup, verify=lambda s, h: h == f"plain${s}", clock=clock,
                         **kwargs), identity


def _basic(identity: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{identity}:{secret}".encode()).decode()


def test_the_authenticator_remembers_good_logins_without_checking_again() -> None:
    clock = Clock()
    auth, identity = _authenticator(clock)
    good = _basic(identity, "right")
    assert auth.remembered(good) is None  # never checked: it would need a check
    principal = auth.principal(good)
    runs = auth.checks_run
    assert auth.remembered(good) == principal
    assert auth.checks_run == runs
    assert auth.remembered(_basic(identity, "wrong")) is None
    clock.advance(3600)  # remembered for minutes, not forever
    assert auth.remembered(good) is None
    auth.close()


def test_the_identity_back_off_carries_its_retry_hint() -> None:
    auth, identity = _authenticator(Clock(), max_failures=2, backoff_seconds=7)
    for n in range(2):
        with pytest.raises(Unauthenticated):
            auth.principal(_basic(identity, f"wrong-{n}"))
    with pytest.raises(ResourceExhausted) as caught:
        auth.principal(_basic(identity, "wrong-again"))
    assert retry_after(caught.value) == 7
    auth.close()


def test_the_openapi_document_declares_retry_after_on_every_429() -> None:
    from node.web.openapi import build_document

    document = build_document()
    assert "Retry-After" in document["components"]["responses"]["E429"]["headers"]
    scan = [op for path, item in document["paths"].items() if "{handle}" in path
            for op in item.values() if isinstance(op, dict) and "429" in op.get("responses", {})]
    for op in scan:
        response = op["responses"]["429"]
        assert "$ref" in response or "Retry-After" in response["headers"]
