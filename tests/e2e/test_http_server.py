"""The HTTP door's server: bounded connections, slow clients timed out, clear errors."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path

import pytest

from node.app import StartupError
from tests.conftest import NodeFactory
from tests.servers import wait_until


def _get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("content-type") or ""
    finally:
        conn.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:
        return True


def test_idle_connections_neither_hold_threads_nor_slots_for_ever(
        node_factory: NodeFactory) -> None:
    node = node_factory(http_max_connections=40, http_idle_timeout_seconds=0.5)
    threads_before = threading.active_count()
    silent = [socket.create_connection(("127.0.0.1", node.http_port), 5) for _ in range(60)]
    try:
        for s in silent:
            s.settimeout(0.01)
        # No thread per connection (the old server had one each).
        assert threading.active_count() <= threads_before + 2
        # Over the bound, a request is refused instead of queued behind silent clients.
        wait_until(lambda: _get(node.http_port, "/healthz")[0] == 503, 5,
                   message="a request over http_max_connections was not refused")
        # Silent clients are closed after the idle timeout, and the node serves again.
        wait_until(lambda: all(_closed_by_peer(s) for s in silent), 10,
                   message="silent connections were never closed")
        assert _get(node.http_port, "/healthz")[0] == 200
    finally:
        for s in silent:
            s.close()


def test_a_client_trickling_its_request_head_is_cut_off(node_factory: NodeFactory) -> None:
    node = node_factory(http_idle_timeout_seconds=0.5)
    slow = socket.create_connection(("127.0.0.1", node.http_port), 5)
    try:
        slow.settimeout(0.01)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")

        def trickle_until_closed() -> bool:
            try:
                slow.sendall(b"X")
            except OSError:
                return True
            return _closed_by_peer(slow)

        wait_until(trickle_until_closed, 10, 0.05,
                   message="a client that never finished its request head kept its slot")
    finally:
        slow.close()


def test_unknown_paths_and_methods_get_json_errors(node_factory: NodeFactory) -> None:
    node = node_factory(metrics_listen="127.0.0.1:0")
    # The metrics port serves only its routes (the main port sends every other path to
    # the scan-to-resolve proxy).
    status, body, kind = _get(node.metrics_port, "/no/such/thing")
    assert (status, kind) == (404, "application/json")
    assert json.loads(body) == {"responseCode": 2, "message": "no such path /no/such/thing"}
    status, body, _ = _get(node.http_port, "/healthz", method="POST")
    assert status == 405 and "POST" in json.loads(body)["message"]
    status, body, _ = _get(node.http_port, "/healthz", method="HEAD")
    assert status == 200 and body == b""


def test_an_http_port_in_use_is_a_startup_error_naming_the_address(
        node_factory: NodeFactory, tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    address = f"127.0.0.1:{taken.getsockname()[1]}"
    try:
        with pytest.raises(StartupError, match=address.replace(".", r"\.")):
            node_factory(tmp_path / "clash", http_listen=address)
    finally:
        taken.close()
