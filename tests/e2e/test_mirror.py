"""`idnode mirror`: a read-only node that follows a primary's signed change feed.

Real nodes on 127.0.0.1 (the primary and the mirror built through the composition root,
or `idnode mirror` as a process where it is killed); a tampering gRPC proxy between them
for the signature checks.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from idnode.v1 import (
    record_pb2,
    registry_pb2,
    registry_pb2_grpc,
    resolver_pb2,
    resolver_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
)
from loadtest.procs import Pinning, ProcessGroup, start_node
from node.app import Node, build
from node.rpc.mirror import MirrorSource
from node.service.mirror import POSITION_META
from node.settings import load
from node.verify import verify
from registry import stores
from registry.record import Change, parse_etag
from registry.views import without_secrets
from tests import handle_wire as w
from tests.conftest import ADMIN, ADMIN_SECRET, NODE_PREFIX, Client, NodeFactory, whole_log
from tests.http_client import Http
from tests.servers import free_port, http_get, wait_until
from tests.tls_certs import CA

ADMIN_IDENTITY = f"300:{NODE_PREFIX}/ADMIN"
MirrorFactory = Callable[..., Node]


@pytest.fixture
def mirror_factory(tmp_path: Path) -> Iterator[MirrorFactory]:
    """Mirrors of a primary (its gRPC target), each with its own data directory."""
    made: list[Node] = []

    def make(target: str, name: str = "mirror", ca_file: str = "", **overrides: object) -> Node:
        settings = load(env={}, overrides={
            "data_dir": str(tmp_path / name), "grpc_listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0", "handle_listen": "", "node_prefix": NODE_PREFIX,
            "grpc_threads": 8, "shutdown_grace_seconds": 1, "admin_secret": ADMIN_SECRET,
            **overrides})
        node = build(settings, mirror=MirrorSource(
            target, identity=ADMIN_IDENTITY, secret=ADMIN_SECRET, ca_file=ca_file,
            backoff_initial_seconds=0.05, backoff_max_seconds=0.3))
        node.start()
        made.append(node)
        return node

    yield make
    for node in made:
        node.stop(0)


def caught_up(mirror: Node, primary: Node) -> bool:
    assert mirror.follower is not None
    return mirror.follower.mirror.position.sequence == primary.store.last_sequence()


def metric(port: int, name: str) -> float:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def resolve(target: str, handle: str) -> record_pb2.Record:
    """A verified resolve of ``handle`` at ``target`` (with that node's own keys)."""
    with grpc.insecure_channel(target) as channel:
        stub = resolver_pb2_grpc.ResolverStub(channel)
        keys = stub.GetSigningKeys(resolver_pb2.GetSigningKeysRequest(), timeout=5).keys
        answer = stub.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=5)
        return verify(answer.record, keys)


def resolve_code(target: str, handle: str) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as channel:
        try:
            resolver_pb2_grpc.ResolverStub(channel).Resolve(
                resolver_pb2.ResolveRequest(handle=handle), timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def listed(target: str, prefix: str) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        return list(stub.List(registry_pb2.ListRequest(prefix=prefix), metadata=ADMIN,
                              timeout=5).handles)


def comparable(change: Change) -> tuple[object, ...]:
    return (change.operation, change.handle, change.version, without_secrets(change.values))


def test_a_mirror_follows_registrations_updates_and_deletes_and_resolves_them(
        node_factory: NodeFactory, mirror_factory: MirrorFactory) -> None:
    primary = node_factory()
    target = f"127.0.0.1:{primary.grpc_port}"
    client = Client(target)
    a = client.register("88.118.8/M-A", ("URL", "https://a/1"), ("DESC", "first"))
    client.register("88.118.8/M-B", ("URL", "https://b"))
    mirror = mirror_factory(target, handle_listen="127.0.0.1:0")
    mirror_target = f"127.0.0.1:{mirror.grpc_port}"
    wait_until(lambda: caught_up(mirror, primary), 20, message="mirror never caught up")
    assert resolve(mirror_target, "88.118.8/M-B").values[0].text == "https://b"

    # Live changes: an update, a delete, a registration with a secret the feed leaves out.
    client.registry.Update(registry_pb2.UpdateRequest(
        handle="88.118.8/M-A", etag=a.etag,
        values=[record_pb2.Value(index=1, type="URL", text="https://a/2")]),
        metadata=ADMIN, timeout=10)
    b = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/M-B"), timeout=5)
    client.registry.Delete(registry_pb2.DeleteRequest(handle="88.118.8/M-B", etag=b.etag),
                           metadata=ADMIN, timeout=10)
    client.registry.Register(registry_pb2.RegisterRequest(handle="88.118.8/M-C", values=[
        record_pb2.Value(index=1, type="URL", text="https://c"),
        record_pb2.Value(index=300, type="HS_SECKEY", text="a-secret-of-c-0001")]),
        metadata=ADMIN, timeout=10)
    wait_until(lambda: caught_up(mirror, primary), 20, message="mirror fell behind")

    updated = resolve(mirror_target, "88.118.8/M-A")
    assert [(v.index, v.text) for v in updated.values] == [(1, "https://a/2")]
    assert updated.version == resolve(target, "88.118.8/M-A").version == 2
    assert resolve_code(mirror_target, "88.118.8/M-B") == grpc.StatusCode.NOT_FOUND
    assert [v.type for v in resolve(mirror_target, "88.118.8/M-C").values] == ["URL"]
    status, body = Http(mirror.http_port).get("88.118.8/M-A")
    assert status == 200 and body["values"][0]["data"]["value"] == "https://a/2"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # the Handle protocol
        udp.settimeout(5)
        udp.sendto(w.resolve_request("88.118.8/M-A"), ("127.0.0.1", mirror.handle_udp_port))
        answer = w.parse_answer(udp.recv(65536))
    assert answer.code == 1
    assert [(v.index, v.data) for v in w.parse_values(answer.body)[1]] == [(1, b"https://a/2")]
    assert listed(mirror_target, "88.118.8") == ["88.118.8/M-A", "88.118.8/M-C"]
    assert metric(mirror.http_port, "idnode_mirror_lag_sequences") == 0
    assert metric(mirror.http_port, "idnode_mirror_connected") == 1
    assert metric(mirror.http_port, "idnode_mirror_applied_sequence") == \
        primary.store.last_sequence()
    assert mirror.store.meta(POSITION_META) == \
        f"{primary.store.store_id()}:{primary.store.last_sequence()}"
    client.close()


def test_a_mirror_follows_a_primary_over_tls(node_factory: NodeFactory,
                                             mirror_factory: MirrorFactory,
                                             tmp_path: Path) -> None:
    ca = CA()
    server = ca.issue("idnode primary", server=True)
    server.write(tmp_path / "server.pem", tmp_path / "server.key")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    primary = node_factory(tls_cert_file=str(tmp_path / "server.pem"),
                           tls_key_file=str(tmp_path / "server.key"))
    credentials = grpc.ssl_channel_credentials(ca.pem)
    with grpc.secure_channel(f"localhost:{primary.grpc_port}", credentials) as channel:
        registry_pb2_grpc.RegistryStub(channel).Register(registry_pb2.RegisterRequest(
            handle="88.118.8/TLS", values=[record_pb2.Value(index=1, type="URL",
                                                            text="https://tls")]),
            metadata=ADMIN, timeout=10)
    mirror = mirror_factory(f"localhost:{primary.grpc_port}", ca_file=str(tmp_path / "ca.pem"))
    wait_until(lambda: caught_up(mirror, primary), 20, message="no change arrived over TLS")
    assert resolve(f"127.0.0.1:{mirror.grpc_port}", "88.118.8/TLS").values[0].text == \
        "https://tls"


def test_writes_to_a_mirror_are_refused_with_permission_denied(
        node_factory: NodeFactory, mirror_factory: MirrorFactory) -> None:
    primary = node_factory()
    target = f"127.0.0.1:{primary.grpc_port}"
    Client(target).register("88.118.8/RO", ("URL", "https://ro"))
    mirror = mirror_factory(target)
    wait_until(lambda: caught_up(mirror, primary), 20)
    client = Client(f"127.0.0.1:{mirror.grpc_port}")
    etag = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/RO"),
                                   timeout=5).etag
    calls: list[Callable[[], object]] = [
        lambda: client.register("88.118.8/NEW", ("URL", "x")),
        lambda: client.register("88.118.8/NEW", ("URL", "x"), metadata=()),
        lambda: client.registry.Update(registry_pb2.UpdateRequest(
            handle="88.118.8/RO", etag=etag, values=[record_pb2.Value(
                index=1, type="URL", text="y")]), metadata=ADMIN, timeout=5),
        lambda: client.registry.Delete(registry_pb2.DeleteRequest(
            handle="88.118.8/RO", etag=etag), metadata=ADMIN, timeout=5),
        lambda: client.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix="88.118.77"), metadata=ADMIN, timeout=5),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "read-only mirror of " + target in (err.value.details() or "")
    status, body, _ = Http(mirror.http_port).call(
        "PUT", "/api/handles/88.118.8/NEW", {"values": [
            {"index": 1, "type": "URL", "data": {"format": "string", "value": "x"}}]})
    assert status == 403 and "read-only mirror" in body["message"]
    assert resolve_code(f"127.0.0.1:{mirror.grpc_port}", "88.118.8/NEW") == \
        grpc.StatusCode.NOT_FOUND
    client.close()


def test_a_mirror_keeps_serving_while_its_primary_is_away_and_reconnects(
        node_factory: NodeFactory, mirror_factory: MirrorFactory, tmp_path: Path) -> None:
    port = free_port()
    listen = f"127.0.0.1:{port}"
    primary = node_factory(tmp_path / "primary", grpc_listen=listen)
    Client(listen).register("88.118.8/R-1", ("URL", "https://r1"))
    mirror = mirror_factory(listen)
    mirror_target = f"127.0.0.1:{mirror.grpc_port}"
    wait_until(lambda: caught_up(mirror, primary), 20)
    primary.stop(0)
    wait_until(lambda: metric(mirror.http_port, "idnode_mirror_connected") == 0, 20)
    assert resolve(mirror_target, "88.118.8/R-1").values[0].text == "https://r1"
    again = node_factory(tmp_path / "primary", grpc_listen=listen)  # same store and port
    client = Client(listen)
    client.register("88.118.8/R-2", ("URL", "https://r2"))
    wait_until(lambda: caught_up(mirror, again), 30, message="the mirror did not reconnect")
    assert resolve(mirror_target, "88.118.8/R-2").values[0].text == "https://r2"
    assert metric(mirror.http_port, "idnode_mirror_reconnects_total") >= 1
    assert metric(mirror.http_port, "idnode_mirror_changes_refused_total") == 0
    client.close()


class TamperingProxy:
    """A gRPC server between mirror and primary that passes GetSigningKeys and GetStats
    through and rewrites chosen changes of WatchChanges with ``tamper`` (while armed)."""

    def __init__(self, upstream: str, tamper: Callable[[sync_pb2.Change], None],
                 victim: str) -> None:
        self.channel = grpc.insecure_channel(upstream)
        self.sync = sync_pb2_grpc.SyncStub(self.channel)
        self.resolver = resolver_pb2_grpc.ResolverStub(self.channel)
        self.tamper = tamper
        self.victim = victim
        self.armed = threading.Event()
        self.armed.set()
        self.server = grpc.server(futures.ThreadPoolExecutor(8))
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("idnode.v1.Sync", {
                "WatchChanges": grpc.unary_stream_rpc_method_handler(
                    self.watch, sync_pb2.WatchChangesRequest.FromString,
                    sync_pb2.WatchChangesResponse.SerializeToString),
                "GetStats": grpc.unary_unary_rpc_method_handler(
                    lambda r, c: self.sync.GetStats(r, timeout=5),
                    sync_pb2.GetStatsRequest.FromString,
                    sync_pb2.GetStatsResponse.SerializeToString)}),
            grpc.method_handlers_generic_handler("idnode.v1.Resolver", {
                "GetSigningKeys": grpc.unary_unary_rpc_method_handler(
                    lambda r, c: self.resolver.GetSigningKeys(r, timeout=5),
                    resolver_pb2.GetSigningKeysRequest.FromString,
                    resolver_pb2.GetSigningKeysResponse.SerializeToString)}),
        ))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def watch(self, request: sync_pb2.WatchChangesRequest,
              context: grpc.ServicerContext) -> Iterator[sync_pb2.WatchChangesResponse]:
        metadata = [(k, v) for k, v in context.invocation_metadata() if k == "authorization"]
        upstream = self.sync.WatchChanges(request, metadata=metadata)
        context.add_callback(upstream.cancel)
        for response in upstream:
            if self.armed.is_set() and response.change.handle == self.victim:
                self.tamper(response.change)
            yield response

    def close(self) -> None:
        self.server.stop(0)
        self.channel.close()


def _edit_payload(change: sync_pb2.Change) -> None:
    """Change the URL inside the signed payload (and the unsigned copy) — a different
    record under the primary's signature."""
    record = record_pb2.Record.FromString(change.record.payload)
    record.values[0].text = "https://evil.example/"
    change.record.payload = record.SerializeToString()
    change.values[0].text = "https://evil.example/"


_FORGER = ed25519.Ed25519PrivateKey.generate()


def _forge(change: sync_pb2.Change) -> None:
    """Another record, signed (both signatures) with a key that is not the primary's but
    claims the primary's key id."""
    _edit_payload(change)
    payload = change.record.payload
    change.record.signature = _FORGER.sign(payload)
    binding = b"\x00".join((b"idnode-change", change.store_id.encode(),
                            str(change.sequence).encode(), str(change.operation).encode()))
    change.change_signature = _FORGER.sign(binding + hashlib.sha256(payload).digest())


def _move(change: sync_pb2.Change) -> None:
    """The genuine signed record replayed as a delete (the change signature binds the
    operation)."""
    change.operation = sync_pb2.Change.OPERATION_DELETE


@pytest.mark.parametrize("tamper", [_edit_payload, _forge, _move],
                         ids=["edited-payload", "forged-signature", "other-operation"])
def test_a_tampered_or_forged_change_is_refused_and_nothing_after_it_is_applied(
        node_factory: NodeFactory, mirror_factory: MirrorFactory,
        tamper: Callable[[sync_pb2.Change], None]) -> None:
    primary = node_factory()
    target = f"127.0.0.1:{primary.grpc_port}"
    client = Client(target)
    client.register("88.118.8/T-1", ("URL", "https://one"))
    victim = client.register("88.118.8/T-2", ("URL", "https://two"))
    client.register("88.118.8/T-3", ("URL", "https://three"))
    proxy = TamperingProxy(target, tamper, "88.118.8/T-2")
    try:
        mirror = mirror_factory(f"127.0.0.1:{proxy.port}")
        mirror_target = f"127.0.0.1:{mirror.grpc_port}"
        wait_until(lambda: metric(mirror.http_port, "idnode_mirror_changes_refused_total")
                   >= 2, 20, message="the tampered change was not refused (twice)")
        assert mirror.follower is not None
        assert mirror.follower.mirror.position.sequence == (parse_etag(victim.etag) or 0) - 1
        assert resolve(mirror_target, "88.118.8/T-1").values[0].text == "https://one"
        for handle in ("88.118.8/T-2", "88.118.8/T-3"):
            assert resolve_code(mirror_target, handle) == grpc.StatusCode.NOT_FOUND
        assert metric(mirror.http_port, "idnode_mirror_lag_sequences") >= 2
        # The genuine change gets through once the tampering stops: no gap.
        proxy.armed.clear()
        wait_until(lambda: caught_up(mirror, primary), 20)
        assert resolve(mirror_target, "88.118.8/T-2").values[0].text == "https://two"
        assert resolve(mirror_target, "88.118.8/T-3").values[0].text == "https://three"
    finally:
        proxy.close()
        client.close()


def test_a_mirror_killed_mid_stream_resumes_with_no_gap_and_no_duplicate(
        node_factory: NodeFactory, tmp_path: Path) -> None:
    primary = node_factory()
    target = f"127.0.0.1:{primary.grpc_port}"
    stop = threading.Event()
    written = [0]

    def write_continuously() -> None:
        client = Client(target)
        etags: dict[str, str] = {}
        i = 0
        while not stop.is_set() and i < 3000:  # bounded
            handle = f"88.118.8/K-{i % 40}"
            if handle in etags and i % 3 == 0:
                client.registry.Delete(registry_pb2.DeleteRequest(
                    handle=handle, etag=etags.pop(handle)), metadata=ADMIN, timeout=10)
            elif handle in etags:
                etags[handle] = client.registry.Update(registry_pb2.UpdateRequest(
                    handle=handle, etag=etags[handle], values=[record_pb2.Value(
                        index=1, type="URL", text=f"https://k/{i}")]),
                    metadata=ADMIN, timeout=10).etag
            else:
                etags[handle] = client.register(handle, ("URL", f"https://k/{i}")).etag
            i += 1
            written[0] = i
        client.close()

    env = {"IDNODE_IDENTITY": ADMIN_IDENTITY, "IDNODE_SECRET": ADMIN_SECRET,
           "IDNODE_ADMIN_SECRET": "", "IDNODE_LOG_LEVEL": "warning"}
    data = tmp_path / "mirror-data"
    data.mkdir()
    writer = threading.Thread(target=write_continuously)
    with ProcessGroup() as group:
        pin = Pinning(False, reason="test")
        first = start_node(group, pin, "127.0.0.1", data, "", env, name="mirror",
                           subcommand="mirror", args=["--from", target])
        writer.start()
        try:
            wait_until(lambda: metric(first.http_port, "idnode_mirror_applied_sequence")
                       > 200, 30, message="the mirror applied nothing")
            first.proc.kill()  # SIGKILL mid-stream
            first.proc.wait(10)
            group.procs.remove(first.proc)
            second = start_node(group, pin, "127.0.0.1", data, "", env, name="mirror",
                                subcommand="mirror", args=["--from", target])
            wait_until(lambda: written[0] > 600, 30)
        finally:
            stop.set()
            writer.join(30)
        last = primary.store.last_sequence()
        wait_until(lambda: metric(second.http_port, "idnode_mirror_applied_sequence") == last,
                   30, message="the restarted mirror did not catch up")
        group.stop(second.proc)
    path = load(env={"IDNODE_DATA_DIR": str(data)}).sqlite_path
    mirrored = stores.open_store(f"sqlite:///{path}")
    try:
        assert mirrored.meta(POSITION_META) == f"{primary.store.store_id()}:{last}"
        theirs = [comparable(c) for c in whole_log(primary.store)]
        ours = [comparable(c) for c in whole_log(mirrored)]
        assert len(ours) == len(theirs)  # no duplicate, no gap
        assert ours == theirs
        assert {k: (r.version, r.values) for k, r in _records(mirrored).items()} == {
            k: (r.version, without_secrets(r.values))
            for k, r in _records(primary.store).items()}
    finally:
        mirrored.close()
    assert "mirror refused a change" not in first.log.read_text()


def _records(store: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    after = ""
    while True:
        page = store.iter_records(after, 1000)
        if not page:
            return out
        for record in page:
            out[record.handle.key] = record
        after = page[-1].handle.key
