"""Request building and the gRPC framing h2load sends (no I/O)."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from idnode.v1 import registry_pb2, resolver_pb2
from loadtest.h2 import command, parse
from loadtest.wire import (
    BATCH_RESOLVE,
    REGISTER,
    RESOLVE,
    OpSource,
    Workload,
    basic_auth,
    grpc_frame,
    grpc_unframe,
    resolve_bytes,
    seeded_handle,
)


def test_grpc_frame_is_flag_length_message() -> None:
    body = resolve_bytes("88.118.8/LT-0000001")
    frame = grpc_frame(body)
    assert frame[0] == 0
    assert int.from_bytes(frame[1:5], "big") == len(body)
    assert frame[5:] == body
    assert grpc_unframe(frame + grpc_frame(b"")) == [body, b""]
    with pytest.raises(ValueError):
        grpc_unframe(frame[:-1])


def test_basic_auth_matches_the_handle_style_header() -> None:
    ((key, value),) = basic_auth("300:88.118/ADMIN", "s3cret")
    assert key == "authorization"
    user, _, secret = base64.b64decode(value.removeprefix("Basic ")).decode().partition(":")
    assert urllib.parse.unquote(user) == "300:88.118/ADMIN"
    assert "/" not in user and secret == "s3cret"


def _ops(kind: str, n: int = 300, **kw: object) -> list[tuple[str, str, bytes]]:
    source = OpSource(Workload(kind=kind, ids=1000, authorization="Basic x", **kw), 0)  # type: ignore[arg-type]
    return [(op.name, op.path, op.body) for op in (source.next() for _ in range(n))]


def test_hot_requests_are_resolves_of_seeded_ids() -> None:
    ops = _ops("hot")
    assert {p for _, p, _ in ops} == {RESOLVE}
    handles = [resolver_pb2.ResolveRequest.FromString(b).handle for _, _, b in ops]
    assert all(h.startswith("88.118.8/LT-") for h in handles)
    assert len(set(handles)) < len(handles)  # Zipf: repeats


def test_notfound_scan_expects_not_found() -> None:
    source = OpSource(Workload(kind="notfound", ids=10, notfound_space=5), 1)
    ops = [source.next() for _ in range(10)]
    assert all(op.ok_codes == frozenset({"NOT_FOUND"}) for op in ops)
    assert len({op.body for op in ops}) == 5


def test_batch_carries_batch_size_handles() -> None:
    ops = _ops("batch", 5, batch_size=20)
    assert {p for _, p, _ in ops} == {BATCH_RESOLVE}
    assert all(len(resolver_pb2.BatchResolveRequest.FromString(b).handles) == 20
               for _, _, b in ops)


def test_mixed_writes_about_write_ratio_with_unique_handles_and_auth() -> None:
    source = OpSource(Workload(kind="mixed", ids=1000, write_ratio=0.05,
                               authorization="Basic abc"), 3)
    ops = [source.next() for _ in range(4000)]
    writes = [op for op in ops if op.path == REGISTER]
    assert 120 < len(writes) < 290
    assert all(op.metadata == (("authorization", "Basic abc"),) for op in writes)
    handles = [registry_pb2.RegisterRequest.FromString(op.body).handle for op in writes]
    assert len(set(handles)) == len(handles)


def test_nonce_requests_carry_distinct_nonces() -> None:
    ops = _ops("nonce", 100)
    nonces = [resolver_pb2.ResolveRequest.FromString(b).nonce for _, _, b in ops]
    assert all(len(n) == 16 for n in nonces) and len(set(nonces)) == 100


def test_cold_is_uniform_over_all_ids() -> None:
    handles = {resolver_pb2.ResolveRequest.FromString(b).handle for _, _, b in _ops("cold", 3000)}
    assert len(handles) > 900 and seeded_handle(0).startswith("88.118.8/")


def test_workload_round_trips_and_rejects_unknown_kinds() -> None:
    w = Workload(kind="hot", ids=5)
    assert Workload.from_dict(w.to_dict()) == w
    with pytest.raises(ValueError):
        OpSource(Workload(kind="teleport", ids=5))


def test_h2load_command_and_summary() -> None:
    from pathlib import Path

    cmd = command("h2load", "127.0.0.1", 5000, RESOLVE, Path("/tmp/b"), duration=5,
                  warmup=1)
    assert cmd[:5] == ["h2load", "-D", "5000ms", "--warm-up-time=1000ms", "-c"]
    assert cmd[-1] == "http://127.0.0.1:5000/idnode.v1.Resolver/Resolve"
    assert "te: trailers" in cmd and "content-type: application/grpc" in cmd
    out = ("finished in 2.50s, 2618.00 req/s, 898.65KB/s\n"
           "requests: 5236 total, 5236 started, 5236 done, 5230 succeeded, 6 failed, "
           "0 errored, 0 timeout\n"
           "status codes: 5230 2xx, 0 3xx, 0 4xx, 6 5xx\n"
           "time for request:    10.21ms     89.87ms     48.99ms     12.45ms    79.58%\n")
    result = parse(out)
    assert result.rps == 2618.0 and result.done == 5236
    assert result.errors == 12 and result.mean_ms == 48.99
    with pytest.raises(ValueError):
        parse("connection refused")
