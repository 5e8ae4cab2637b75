"""One scenario through two doors — gRPC on a real server, and the in-process core —
must give the same outcomes, leave the caches in the same state and write the same
audit lines. A door that decided anything itself (rights, validation, invalidation,
audit) would make the two runs differ."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from node.errors import mapping_for
from node.rpc.wire import values_from_wire
from node.service.caller import Caller
from registry.errors import IdnodeError
from tests.conftest import ADMIN, ADMIN_SECRET, Client, NodeFactory, basic

OWNER = basic("300:88.118.9/ADMIN", "owner-secret-0009")
WRONG = basic("300:88.118/ADMIN", "not-the-secret-00")
Meta = tuple[tuple[str, str], ...]


class Door(Protocol):
    def register(self, meta: Meta, handle: str, url: str, request_id: str = "") -> Any: ...
    def update(self, meta: Meta, handle: str, url: str, etag: str) -> Any: ...
    def delete(self, meta: Meta, handle: str, etag: str) -> Any: ...
    def resolve(self, meta: Meta, handle: str) -> Any: ...
    def list(self, meta: Meta, prefix: str) -> Any: ...
    def allocate(self, meta: Meta, prefix: str, secret: str) -> Any: ...


def _values(url: str) -> list[record_pb2.Value]:
    return [record_pb2.Value(index=1, type="URL", text=url),
            record_pb2.Value(index=2, type="productName", text="spindle")]


def _outcome(call: Callable[[], Any]) -> Any:
    """The result, or the gRPC status name of the failure and its message."""
    try:
        return call()
    except grpc.RpcError as err:
        return ("error", err.code().name, err.details())
    except IdnodeError as exc:
        return ("error", mapping_for(exc).status, exc.message)


class GrpcDoor:
    def __init__(self, client: Client) -> None:
        self.c = client

    def register(self, meta: Meta, handle: str, url: str, request_id: str = "") -> Any:
        r = self.c.registry.Register(registry_pb2.RegisterRequest(
            handle=handle, values=_values(url), request_id=request_id), metadata=meta)
        return (r.handle, r.version, r.etag)

    def update(self, meta: Meta, handle: str, url: str, etag: str) -> Any:
        r = self.c.registry.Update(registry_pb2.UpdateRequest(
            handle=handle, values=_values(url), etag=etag), metadata=meta)
        return (r.handle, r.version, r.etag)

    def delete(self, meta: Meta, handle: str, etag: str) -> Any:
        r = self.c.registry.Delete(registry_pb2.DeleteRequest(handle=handle, etag=etag),
                                   metadata=meta)
        return (r.handle, r.version, r.etag)

    def resolve(self, meta: Meta, handle: str) -> Any:
        r = self.c.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), metadata=meta)
        rec = record_pb2.Record.FromString(r.record.payload)
        return (rec.handle, rec.version, [(v.index, v.type, v.text) for v in rec.values],
                r.etag)

    def list(self, meta: Meta, prefix: str) -> Any:
        r = self.c.registry.List(registry_pb2.ListRequest(prefix=prefix), metadata=meta)
        return list(r.handles)

    def allocate(self, meta: Meta, prefix: str, secret: str) -> Any:
        r = self.c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix=prefix, owner_secret=secret), metadata=meta)
        return (r.prefix, r.owner)


class CoreDoor:
    def __init__(self, node: Node) -> None:
        self.core = node.core

    @staticmethod
    def _caller(meta: Meta) -> Caller:
        return Caller(dict(meta).get("authorization"), "in-process", "core")

    def register(self, meta: Meta, handle: str, url: str, request_id: str = "") -> Any:
        r = self.core.writes.register(self._caller(meta), handle,
                                      values_from_wire(_values(url)), request_id)
        return (r.handle, r.version, r.etag)

    def update(self, meta: Meta, handle: str, url: str, etag: str) -> Any:
        r = self.core.writes.update(self._caller(meta), handle,
                                    values_from_wire(_values(url)), etag)
        return (r.handle, r.version, r.etag)

    def delete(self, meta: Meta, handle: str, etag: str) -> Any:
        r = self.core.writes.delete(self._caller(meta), handle, etag)
        return (r.handle, r.version, r.etag)

    def resolve(self, meta: Meta, handle: str) -> Any:
        entry = self.core.resolve(self._caller(meta), handle)
        rec = record_pb2.Record.FromString(entry.payload)
        return (rec.handle, rec.version, [(v.index, v.type, v.text) for v in rec.values],
                entry.etag)

    def list(self, meta: Meta, prefix: str) -> Any:
        return self.core.list_handles(self._caller(meta), prefix)[0]

    def allocate(self, meta: Meta, prefix: str, secret: str) -> Any:
        a = self.core.writes.allocate_prefix(self._caller(meta), prefix, secret)
        return (a.prefix, a.owner)


def scenario(door: Door, node: Node) -> list[Any]:
    """Every kind of step, with the L1 state of the identifier after each one."""
    h = "88.118.9/PN-0001"
    out: list[Any] = []

    def step(name: str, call: Callable[[], Any]) -> Any:
        result = _outcome(call)
        out.append((name, result, h.lower() in node.resolver.l1._data))
        return result

    step("allocate", lambda: door.allocate(ADMIN, "88.118.9", "owner-secret-0009"))
    step("register-anonymous", lambda: door.register((), h, "https://a"))
    step("register-wrong-secret", lambda: door.register(WRONG, h, "https://a"))
    step("register-bad-handle", lambda: door.register(OWNER, "88.118.9/bad handle", "x"))
    step("register-other-prefix", lambda: door.register(OWNER, "88.118.8/X", "x"))
    first = step("register", lambda: door.register(OWNER, h, "https://a", "req-1"))
    step("register-replayed", lambda: door.register(OWNER, h, "https://a", "req-1"))
    step("register-again", lambda: door.register(OWNER, h, "https://a"))
    step("resolve", lambda: door.resolve((), h.upper()))
    second = step("update", lambda: door.update(OWNER, h, "https://b", first[2]))
    step("update-stale", lambda: door.update(OWNER, h, "https://c", first[2]))
    step("resolve-after-update", lambda: door.resolve((), h))
    step("list", lambda: door.list(OWNER, "88.118.9"))
    step("list-anonymous", lambda: door.list((), "88.118.9"))
    step("delete", lambda: door.delete(OWNER, h, second[2]))
    step("resolve-after-delete", lambda: door.resolve((), h))
    step("not-served", lambda: door.resolve((), "86.1/X"))
    return out


def _audit(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    lines = []
    for r in records:
        if r.name != "idnode.audit":
            continue
        fields = {k: v for k, v in getattr(r, "fields", {}).items()
                  if k not in ("door", "peer")}
        lines.append({"message": r.getMessage(), **fields})
    return lines


def test_grpc_and_the_core_give_the_same_outcomes_cache_state_and_audit(
        node_factory: NodeFactory, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="idnode.audit")
    via_grpc = node_factory(tmp_path / "a")
    client = Client(f"127.0.0.1:{via_grpc.grpc_port}")
    try:
        grpc_run = scenario(GrpcDoor(client), via_grpc)
    finally:
        client.close()
    grpc_audit = _audit(caplog.records)
    caplog.clear()
    in_process = node_factory(tmp_path / "b")
    core_run = scenario(CoreDoor(in_process), in_process)
    core_audit = _audit(caplog.records)

    assert grpc_run == core_run
    assert grpc_audit == core_audit
    # The scenario exercised what it claims to (so the comparison means something).
    names = {name: result for name, result, _ in grpc_run}
    assert names["register-anonymous"][1] == "UNAUTHENTICATED"
    assert names["register-wrong-secret"][1] == "UNAUTHENTICATED"
    assert names["register-other-prefix"][1] == "PERMISSION_DENIED"
    assert names["update-stale"][1] == "ABORTED"
    assert names["resolve-after-delete"][1] == "NOT_FOUND"
    assert names["resolve-after-update"][2] == [(1, "URL", "https://b"),
                                               (2, "productName", "spindle")]
    assert {line["message"] for line in grpc_audit} >= {"write", "write refused",
                                                        "allocate-prefix"}
    assert ADMIN_SECRET not in repr(grpc_audit)
