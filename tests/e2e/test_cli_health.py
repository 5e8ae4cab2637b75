"""``idnode health`` (the container health check) against real nodes: ready over HTTP,
over gRPC when HTTP is disabled, and "not ready" while the store cannot be read."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from node.app import Node
from node.cli.main import app
from tests.servers import http_get, wait_until


def health(env: dict[str, str]) -> tuple[int, str]:
    # Only the listen settings come from here: whatever the test machine has in its
    # environment for IDNODE_HTTP_LISTEN/GRPC_LISTEN is overridden.
    result = CliRunner().invoke(app, ["health", "--timeout-seconds", "5"],
                                env={"COLUMNS": "200", **env})
    return result.exit_code, result.output


def test_ready_over_http_on_the_configured_port(node: Node) -> None:
    code, out = health({"IDNODE_HTTP_LISTEN": f"0.0.0.0:{node.http_port}",
                        "IDNODE_GRPC_LISTEN": "127.0.0.1:1"})
    assert code == 0, out
    assert f"http://127.0.0.1:{node.http_port}/readyz" in out


def test_ready_over_grpc_health_when_http_is_disabled(
        node_factory: Callable[..., Node]) -> None:
    node = node_factory(http_listen="")
    assert node.http_port == 0
    code, out = health({"IDNODE_HTTP_LISTEN": "", "IDNODE_GRPC_LISTEN":
                        f"0.0.0.0:{node.grpc_port}"})
    assert code == 0, out
    assert f"127.0.0.1:{node.grpc_port} SERVING" in out


def test_not_ready_while_the_store_cannot_be_read(node_factory: Callable[..., Node],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    node = node_factory(store_check_interval_seconds=0.1)
    http = {"IDNODE_HTTP_LISTEN": f"127.0.0.1:{node.http_port}"}
    grpc_only = {"IDNODE_HTTP_LISTEN": "", "IDNODE_GRPC_LISTEN": f"127.0.0.1:{node.grpc_port}"}

    def broken() -> int:  # fault injection: the disk under the store went away
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(node.store, "last_sequence", broken)
    readyz = f"http://127.0.0.1:{node.http_port}/readyz"
    wait_until(lambda: http_get(readyz)[0] == 503, 10, 0.05, "readyz never turned 503")
    code, out = health(http)
    assert code == 1 and "HTTP 503" in out, out
    wait_until(lambda: health(grpc_only)[0] == 1, 10, 0.05, "gRPC health stayed SERVING")
    assert "NOT_SERVING" in health(grpc_only)[1]
    monkeypatch.undo()
    wait_until(lambda: health(http)[0] == 0 and health(grpc_only)[0] == 0, 10, 0.05,
               "health never recovered")


def test_not_ready_when_nothing_listens(node: Node) -> None:
    port = node.http_port
    node.stop(0)
    code, out = health({"IDNODE_HTTP_LISTEN": f"127.0.0.1:{port}"})
    assert code == 1, out
    assert "NOT ready" in out
