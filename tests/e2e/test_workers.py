"""``idnode serve --workers 2``: processes share the port, the store and freshness."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from tests.conftest import ADMIN, ADMIN_SECRET, Client
from tests.servers import free_port, http_get, wait_port, wait_until


def test_two_workers_serve_one_port_without_stale_reads_and_drain_together(
        tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = dict(os.environ, IDNODE_DATA_DIR=str(tmp_path / "data"),
               IDNODE_GRPC_LISTEN=f"127.0.0.1:{grpc_port}", IDNODE_HANDLE_LISTEN="",
               IDNODE_HTTP_LISTEN=f"127.0.0.1:{http_port}", IDNODE_NODE_PREFIX="88.118",
               IDNODE_ADMIN_SECRET=ADMIN_SECRET, IDNODE_LOG_FORMAT="json", IDNODE_WORKERS="2")
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "node", "serve"], env=env,
                                stderr=log_file)
        try:
            wait_port(grpc_port, proc)
            wait_port(http_port, proc)
            wait_until(lambda: log_path.read_text().count('"event": "serving"') >= 2, 20, 0.1,
                       "both workers should log serving")
            serving = [json.loads(line) for line in log_path.read_text().splitlines()
                       if '"serving"' in line]
            assert len({s["pid"] for s in serving}) == 2

            writer = Client(f"127.0.0.1:{grpc_port}")
            etag = writer.register("88.118.8/W", ("URL", "v0")).etag
            stale = 0
            resolves = 0
            for round_ in range(1, 41):
                etag = writer.registry.Update(registry_pb2.UpdateRequest(
                    handle="88.118.8/W", etag=etag,
                    values=[record_pb2.Value(index=1, type="URL", text=f"v{round_}")]),
                    metadata=ADMIN, timeout=10).etag
                # A new channel per read lands on either worker (SO_REUSEPORT).
                for _ in range(3):
                    reader = Client(f"127.0.0.1:{grpc_port}")
                    response = reader.resolver.Resolve(
                        resolver_pb2.ResolveRequest(handle="88.118.8/W"), timeout=10)
                    reader.close()
                    resolves += 1
                    if record_pb2.Record.FromString(response.record.payload).version != \
                            round_ + 1:
                        stale += 1
            writer.close()
            assert stale == 0

            _, metrics = http_get(f"http://127.0.0.1:{http_port}/metrics")
            ok = sum(float(m) for m in re.findall(
                r'^idnode_grpc_requests_total\{code="OK",method="Resolve"\} ([0-9.e+]+)$',
                metrics, re.M))
            assert ok == resolves, "metrics must sum over both workers"
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    assert code == 0
    assert log_path.read_text().count('"event": "stopped"') == 2
