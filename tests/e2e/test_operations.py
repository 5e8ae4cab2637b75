"""What operators rely on: the CLI's serve command, graceful shutdown, health,
reflection, the HTTP endpoints and request metrics."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from idnode.v1 import record_pb2, resolver_pb2
from node.app import Node
from tests.conftest import ADMIN_SECRET, Client
from tests.servers import free_port, http_get, wait_port, wait_until


def test_health_is_serving_for_every_service(node: Node, client: Client) -> None:
    stub = health_pb2_grpc.HealthStub(client.channel)
    for service in ["", "idnode.v1.Resolver", "idnode.v1.Registry", "idnode.v1.Sync",
                    "idnode.v1.Admin"]:
        status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_contract(client: Client) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    out = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]), timeout=5))
    names = {s.name for s in out[0].list_services_response.service}
    assert {"idnode.v1.Resolver", "idnode.v1.Registry", "idnode.v1.Sync",
            "grpc.health.v1.Health"} <= names


def test_http_probes_and_published_keys(node: Node, client: Client) -> None:
    base = f"http://127.0.0.1:{node.http_port}"
    assert http_get(base + "/healthz")[0] == 200
    assert http_get(base + "/readyz")[0] == 200
    status, body = http_get(base + "/api/keys")
    keys = json.loads(body)["keys"]
    grpc_keys = client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys
    assert status == 200 and [k["key_id"] for k in keys] == [k.key_id for k in grpc_keys]
    assert http_get(base + "/88.118.8/NOPE")[0] == 404  # the scan proxy: not found


def test_metrics_count_what_the_load_sent(node: Node, client: Client) -> None:
    client.register("88.118.8/M", ("URL", "x"))
    for _ in range(137):
        client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/M"), timeout=5)
    for _ in range(3):
        with contextlib.suppress(grpc.RpcError):
            client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/ZZ"), timeout=5)
    _, text = http_get(f"http://127.0.0.1:{node.http_port}/metrics")

    def sample(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)$", text, re.M)
        assert match, pattern
        return float(match.group(1))

    assert sample(r'idnode_grpc_requests_total\{code="OK",method="Resolve"\}') == 137
    assert sample(r'idnode_grpc_requests_total\{code="NOT_FOUND",method="Resolve"\}') == 3
    assert sample(r"idnode_resolve_duration_seconds_count") == 137
    assert sample(r'idnode_cache_hits_total\{layer="l1"\}') == 136
    assert sample(r'idnode_registry_writes_total\{operation="register"\}') == 1


def test_serve_command_drains_on_sigterm_and_keeps_acknowledged_writes(tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = dict(os.environ, IDNODE_DATA_DIR=str(tmp_path / "data"),
               IDNODE_GRPC_LISTEN=f"127.0.0.1:{grpc_port}", IDNODE_HANDLE_LISTEN="127.0.0.1:0",
               IDNODE_HTTP_LISTEN=f"127.0.0.1:{http_port}", IDNODE_NODE_PREFIX="88.118",
               IDNODE_ADMIN_SECRET=ADMIN_SECRET, IDNODE_LOG_FORMAT="json")
    cmd = [sys.executable, "-m", "node", "serve"]
    log_path = tmp_path / "node.log"
    log_file = open(log_path, "wb")  # a pipe nobody reads would block the node's logging
    proc = subprocess.Popen(cmd, env=env, stderr=log_file)
    try:
        wait_port(grpc_port, proc)
        client = Client(f"127.0.0.1:{grpc_port}")
        acked: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set() and i < 2000:
                try:
                    client.register(f"88.118.8/T-{i}", ("URL", f"https://{i}"))
                except grpc.RpcError:
                    return
                acked.append(f"88.118.8/T-{i}")
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        # SIGTERM with writes in flight: once some are acknowledged, not after a guess.
        wait_until(lambda: len(acked) >= 20 or not t.is_alive(), 30,
                   message="no write was acknowledged")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        stop.set()
        t.join(20)
        client.close()
        assert acked, "no write was acknowledged before shutdown"
        logs = log_path.read_text()
        assert '"event": "draining"' in logs and '"event": "stopped"' in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_port(grpc_port, proc)
        client = Client(f"127.0.0.1:{grpc_port}")
        for handle in acked:
            response = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                               timeout=5)
            assert record_pb2.Record.FromString(response.record.payload).handle == handle
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_bad_settings_stop_the_start_with_a_message_naming_the_setting(tmp_path: Path) -> None:
    env = dict(os.environ, IDNODE_DATA_DIR=str(tmp_path), IDNODE_GRPC_LISTEN="nonsense")
    out = subprocess.run([sys.executable, "-m", "node", "serve"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert "grpc_listen" in out.stderr and "Traceback" not in out.stderr
    env = dict(os.environ, IDNODE_DATA_DIR=str(tmp_path), IDNODE_WORKERS="zero")
    out = subprocess.run([sys.executable, "-m", "node", "serve"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "workers" in out.stderr


def test_health_follows_the_store(node_factory: Callable[..., Node],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    node = node_factory(store_check_interval_seconds=0.1)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    stub = health_pb2_grpc.HealthStub(client.channel)

    def status() -> int:
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)

    def wait_for(expected: int) -> None:
        wait_until(lambda: status() == expected, 10, 0.05, f"health never became {expected}")

    def broken() -> int:  # fault injection: the disk under the store went away
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(node.store, "last_sequence", broken)
    wait_for(health_pb2.HealthCheckResponse.NOT_SERVING)
    assert http_get(f"http://127.0.0.1:{node.http_port}/readyz")[0] == 503
    monkeypatch.undo()
    wait_for(health_pb2.HealthCheckResponse.SERVING)
    client.close()


def test_sampled_access_log_and_metrics_off(node_factory: Callable[..., Node],
                                            caplog: pytest.LogCaptureFixture) -> None:
    node = node_factory(access_log_sample_ratio=1.0, metrics_enabled=False)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    client.register("88.118.8/ACC", ("URL", "x"))
    logging.getLogger("idnode").propagate = True
    with caplog.at_level(logging.INFO, logger="idnode.access"):
        for _ in range(3):
            client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/ACC"),
                                    timeout=5)
    client.close()
    assert sum(r.getMessage() == "resolve" for r in caplog.records) == 3
    _, text = http_get(f"http://127.0.0.1:{node.http_port}/metrics")
    assert 'method="Resolve"' not in text
