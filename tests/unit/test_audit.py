"""The audit log's core-side rules without I/O: the bounds on refused attempts, what an
entry of one holds (never a secret), client addresses, and QueryAudit's admission,
filters and page tokens (on the in-memory store)."""

from __future__ import annotations

import base64
import threading
import urllib.parse

import pytest

from idnode.v1 import admin_pb2
from node.cli.audit import entry_line, parse_time
from node.observe.metrics import Metrics
from node.service.audit import (
    Audit,
    AuditFilter,
    RefusalGate,
    RefusalRecorder,
    address_key,
    claimed_identity,
)
from node.service.caller import Caller, client_address
from registry.access.principals import Principal
from registry.audit import AuditEntry
from registry.errors import (
    InvalidArgument,
    PermissionDenied,
    StaleEtag,
    Unauthenticated,
    Unavailable,
)
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore

ADMIN = Principal.of("300:88.118/ADMIN")
OWNER = Principal.of("300:88.118.8/ADMIN")
SECRET = "do-not-log-this-secret-42"


def basic(identity: str, secret: str) -> str:
    user = urllib.parse.quote(identity, safe="")
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeAuth:
    """Headers "admin" and "owner" authenticate; anything else is a wrong credential."""

    def principal(self, header: str | None, certificate: object = None) -> Principal | None:
        if header is None:
            return None
        found = {"admin": ADMIN, "owner": OWNER}.get(header)
        if found is None:
            raise Unauthenticated("wrong identity or secret")
        return found


# --- client addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "address"), [
    ("ipv4:127.0.0.1:50123", "127.0.0.1"),
    ("ipv6:[::1]:50123", "::1"),
    ("ipv6:%5B2001:db8::7%5D:443", "2001:db8::7"),
    ("127.0.0.1:8080", "127.0.0.1"),          # the HTTP door: host:port
    ("::1:8080", "::1"),                       # the HTTP door over IPv6 (no brackets)
    ("unix:/run/idnode.sock", "unix:/run/idnode.sock"),
    ("", ""),
])
def test_client_address_is_the_peer_without_scheme_or_port(peer: str, address: str) -> None:
    assert client_address(peer) == address
    assert Caller(None, peer, "grpc").address == address


def test_an_ipv6_client_spends_the_budget_of_its_slash_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1" and address_key("") == ""


# --- the gate -------------------------------------------------------------------------------


def test_the_gate_admits_a_burst_per_address_then_a_trickle() -> None:
    clock = Clock()
    gate = RefusalGate(address_burst=3, address_per_second=0.5, total_burst=100,
                       total_per_second=100, clock=clock)
    assert [gate.admit("192.0.2.1") for _ in range(5)] == [0, 0, 0, None, None]
    assert gate.admit("192.0.2.2") == 0  # another address has its own budget
    clock.now += 2.0  # one more refusal's worth for 192.0.2.1
    # ... and its next recorded entry says how many were left out before it.
    assert gate.admit("192.0.2.1") == 2
    assert gate.admit("192.0.2.1") is None


def test_the_gate_bounds_all_addresses_together() -> None:
    clock = Clock()
    gate = RefusalGate(address_burst=5, address_per_second=1, total_burst=4,
                       total_per_second=1, clock=clock)
    admitted = [gate.admit(f"192.0.2.{i}") for i in range(10)]
    assert sum(a is not None for a in admitted) == 4
    clock.now += 1.0
    assert gate.admit("198.51.100.1") == 0 and gate.admit("198.51.100.2") is None


def test_the_gate_remembers_a_bounded_number_of_addresses() -> None:
    gate = RefusalGate(max_addresses=10, clock=Clock())
    for i in range(1000):
        gate.admit(f"10.0.{i // 256}.{i % 256}")
    assert len(gate._buckets) == 10


# --- the recorder ---------------------------------------------------------------------------


def recorder_on(store: MemoryStore, **kwargs: object) -> RefusalRecorder:
    return RefusalRecorder(store, Metrics(enabled=False), clock=lambda: 1_700_000_000.0,
                           **kwargs)  # type: ignore[arg-type]


def only_entries(store: MemoryStore) -> list[AuditEntry]:
    return list(store._audit)


def test_a_refused_attempt_is_recorded_with_who_what_where_and_why() -> None:
    store = MemoryStore()
    recorder = recorder_on(store)
    caller = Caller("owner", "ipv4:192.0.2.7:4242", "grpc")
    recorder.record(caller, "update", StaleEtag("etag is stale: 88.118.8/A was changed since"),
                    target="88.118.8/A", request_id="req-7", principal=OWNER)
    assert recorder.flush()
    (entry,) = only_entries(store)
    assert (entry.at, entry.principal, entry.action, entry.target, entry.outcome,
            entry.request_id, entry.client_address, entry.door, entry.message,
            entry.sequence, entry.prefix_key) == (
        1_700_000_000, OWNER.id, "update", "88.118.8/A", "ABORTED", "req-7", "192.0.2.7",
        "grpc", "etag is stale: 88.118.8/A was changed since", 0, "88.118.8")
    recorder.close()


def test_a_wrong_secret_records_the_claimed_identity_never_the_secret() -> None:
    store = MemoryStore()
    recorder = recorder_on(store)
    header = basic("300:88.118.8/ADMIN", SECRET)
    recorder.record(Caller(header, "127.0.0.1:5000", "http"), "put",
                    Unauthenticated("wrong identity or secret"), target="88.118.8/A")
    assert recorder.flush()
    (entry,) = only_entries(store)
    assert entry.principal == "300:88.118.8/ADMIN" and entry.outcome == "UNAUTHENTICATED"
    assert SECRET not in repr(entry) and header not in repr(entry)
    assert claimed_identity(basic("not an identity", SECRET)) == ""
    assert claimed_identity("Bearer abc") == "" and claimed_identity(None) == ""
    recorder.close()


def test_caller_text_in_an_entry_is_cut_to_a_bounded_length() -> None:
    store = MemoryStore()
    recorder = recorder_on(store)
    recorder.record(Caller(None, "127.0.0.1:1", "grpc"), "register",
                    InvalidArgument("bad"), target="88.118.8/" + "x" * 10_000,
                    request_id="r" * 10_000)
    assert recorder.flush()
    (entry,) = only_entries(store)
    assert len(entry.target) == 512 and len(entry.request_id) == 512


def test_refusals_beyond_the_gate_are_counted_and_summed_up_later() -> None:
    store = MemoryStore()
    clock = Clock()
    recorder = recorder_on(store, gate=RefusalGate(address_burst=2, address_per_second=1,
                                                   clock=clock))
    caller = Caller(None, "ipv4:203.0.113.5:1", "grpc")
    for _ in range(10):
        recorder.record(caller, "register", Unauthenticated("register requires credentials"),
                        target="88.118.8/A")
    clock.now += 1.0
    recorder.record(caller, "register", Unauthenticated("register requires credentials"),
                    target="88.118.8/A")
    assert recorder.flush()
    entries = only_entries(store)
    assert len(entries) == 3
    assert entries[-1].message == ("register requires credentials [+8 earlier refusals from "
                                   "this address not recorded: audit rate limit]")
    assert recorder.metrics.audit_refusals_dropped._value.get() == 8


class BrokenStore(MemoryStore):
    def record_refusal(self, *entries: AuditEntry) -> None:
        raise Unavailable("the store is unavailable: the disk is full")


def test_a_failing_audit_insert_never_reaches_the_refused_caller() -> None:
    recorder = recorder_on(BrokenStore())
    recorder.record(Caller(None, "ipv4:192.0.2.1:1", "grpc"), "register",
                    PermissionDenied("no"), target="88.118.8/A")  # does not raise
    assert recorder.flush()
    assert recorder.metrics.audit_refusals_dropped._value.get() == 1
    recorder.close()


class SlowStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def record_refusal(self, *entries: AuditEntry) -> None:
        self.release.wait(10)
        super().record_refusal(*entries)


def test_a_slow_audit_store_never_blocks_the_write_path() -> None:
    store = SlowStore()
    recorder = recorder_on(store, max_queue=5, batch=100,
                           gate=RefusalGate(address_burst=1000, total_burst=1000))
    caller = Caller(None, "ipv4:192.0.2.1:1", "grpc")
    for _ in range(50):  # returns at once although the store is stuck
        recorder.record(caller, "register", PermissionDenied("no"), target="88.118.8/A")
    store.release.set()
    assert recorder.flush()
    stored = len(only_entries(store))
    # The queue's bound, plus the batch in flight (taken from the queue, so at most as
    # many again, depending on how far the writer thread got before the store stuck).
    assert 1 <= stored <= 10
    assert recorder.metrics.audit_refusals_dropped._value.get() == 50 - stored
    recorder.close()


# --- QueryAudit ------------------------------------------------------------------------------


@pytest.fixture
def audit_use_case() -> Audit:
    store = MemoryStore()
    registrar = Registrar(store, Prefix.parse("88.118"), clock=lambda: 1_700_000_000.0)
    return Audit(store, registrar.policy, FakeAuth())


def test_only_the_node_admin_reads_the_audit_log(audit_use_case: Audit) -> None:
    with pytest.raises(Unauthenticated):
        audit_use_case.query(Caller(None), AuditFilter())
    with pytest.raises(PermissionDenied):
        audit_use_case.query(Caller("owner"), AuditFilter())
    with pytest.raises(Unauthenticated):
        audit_use_case.query(Caller("wrong"), AuditFilter())
    assert audit_use_case.query(Caller("admin"), AuditFilter()).entries == ()


@pytest.mark.parametrize("filters", [
    AuditFilter(outcome="maybe"),
    AuditFilter(prefix="not a prefix!"),
    AuditFilter(since=100, until=100),
])
def test_a_bad_filter_is_invalid_argument(audit_use_case: Audit, filters: AuditFilter) -> None:
    with pytest.raises(InvalidArgument):
        audit_use_case.query(Caller("admin"), filters)


def test_outcome_takes_ok_refused_and_status_names_in_any_case(audit_use_case: Audit) -> None:
    for outcome in ("OK", "Refused", "permission_denied", ""):
        audit_use_case.query(Caller("admin"), AuditFilter(outcome=outcome))


def test_a_page_token_only_continues_the_query_it_came_from(audit_use_case: Audit) -> None:
    store = audit_use_case.store
    assert isinstance(store, MemoryStore)
    recorder = recorder_on(store)
    for i in range(5):
        recorder.record(Caller(None, f"ipv4:192.0.2.{i}:1", "grpc"), "register",
                        PermissionDenied("no"), target=f"88.118.8/X{i}")
    assert recorder.flush()
    admin = Caller("admin")
    first = audit_use_case.query(admin, AuditFilter(prefix="88.118.8"), page_size=2)
    assert [e.target for e in first.entries] == ["88.118.8/X4", "88.118.8/X3"]
    assert first.next_page_token
    second = audit_use_case.query(admin, AuditFilter(prefix="88.118.8"), 2,
                                  first.next_page_token)
    assert [e.target for e in second.entries] == ["88.118.8/X2", "88.118.8/X1"]
    with pytest.raises(InvalidArgument, match="other filters"):
        audit_use_case.query(admin, AuditFilter(prefix="88.118.9"), 2, first.next_page_token)
    for forged in ("???", "YTE6YWJj", base64.urlsafe_b64encode(b"a1:0:0").decode()):
        with pytest.raises(InvalidArgument, match="malformed"):
            audit_use_case.query(admin, AuditFilter(prefix="88.118.8"), 2, forged)
    with pytest.raises(InvalidArgument, match="page_size"):
        audit_use_case.query(admin, AuditFilter(), 1001)
    recorder.close()


# --- idnode audit ----------------------------------------------------------------------------

def test_an_audit_line_escapes_what_would_break_it() -> None:
    entry = admin_pb2.AuditEntry(target="88.118.8/A\nforged\tline", outcome="INVALID_ARGUMENT")
    line = entry_line(entry)
    assert "\n" not in line and len(line.split("\t")) == 10
    assert "88.118.8/A\\nforged\\tline" in line


def test_audit_times_without_an_offset_are_utc() -> None:
    assert parse_time("1970-01-02", "--since") == 86400
    assert parse_time("1970-01-02T08:00:00+08:00", "--since") == 86400
    assert parse_time("1970-01-02T00:00:00Z", "--until") == 86400
