"""Helpers shared by the end-to-end tests (kept out of the test modules, so no test
module imports another): the CLI run in process, one plain HTTP request, the audit log
across pages, a part template, a Chinese record, CSV parts and the records under a
prefix."""

from __future__ import annotations

import csv
import http.client
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from typer.testing import CliRunner

from idnode.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    record_pb2,
    registry_pb2,
    registry_pb2_grpc,
    resolver_pb2,
    resolver_pb2_grpc,
)
from node.app import Node
from node.cli.bulk import export_records
from node.cli.main import app
from tests.conftest import ADMIN, ADMIN_SECRET, NODE_PREFIX

PREFIX = "88.118.8"
Field = registry_pb2.Template.Field
Metadata = tuple[tuple[str, str], ...]

CHINESE = (("productName", "主轴"), ("manufacturer", "某某机床厂"), ("batchNo", "B2026-0315"),
           ("productionDate", "2026-03-15"),
           ("DESC", "高速电主轴，额定转速 24000 rpm，适用于立式加工中心"),
           ("URL", "https://example.com/p/1"))


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def get(port: int, path: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> Answer:
    """One request on a fresh connection (http.client never follows redirects)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.read(),
                      {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()


def cli(node: Node | None, *args: str, env: dict[str, str] | None = None,
        target: str | None = None) -> tuple[int, str]:
    base = {"COLUMNS": "200", "IDNODE_IDENTITY": f"300:{NODE_PREFIX}/ADMIN",
            "IDNODE_SECRET": ADMIN_SECRET,
            "IDNODE_TARGET": target or (f"127.0.0.1:{node.grpc_port}" if node else "")}
    result = CliRunner().invoke(app, list(args), env={**base, **(env or {})})
    return result.exit_code, result.output


def query(stub: admin_pb2_grpc.AdminStub, metadata: Metadata = ADMIN,
          **filters: Any) -> list[admin_pb2.AuditEntry]:
    """Every entry matching ``filters``, newest first, across pages."""
    request = admin_pb2.QueryAuditRequest(**filters)
    out: list[admin_pb2.AuditEntry] = []
    while True:
        response = stub.QueryAudit(request, metadata=metadata, timeout=10)
        out.extend(response.entries)
        if not response.next_page_token:
            return out
        request.page_token = response.next_page_token


def wait_for(stub: admin_pb2_grpc.AdminStub, count: int,
             **filters: Any) -> list[admin_pb2.AuditEntry]:
    """Refused attempts are stored just after the refusal (off the request's path)."""
    deadline = time.monotonic() + 10
    while True:
        found = query(stub, **filters)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def part_template(version: str = "1.0", description: str = "零件") -> registry_pb2.Template:
    return registry_pb2.Template(version=version, description=description, fields=[
        Field(name="产品名称", type="productName", id_index=2000, required=True,
              kind=Field.KIND_STRING, min_length=1, max_length=16),
        Field(name="重量", type="weight", id_index=2001, kind=Field.KIND_DECIMAL,
              minimum="0", precision=2),
        Field(name="生产日期", type="productionDate", id_index=2002, required=True,
              kind=Field.KIND_DATE),
    ], industry_category="C", industry_specific="34", object_type=1)


def store(node: Node, prefix: str = PREFIX) -> dict[str, list[tuple[Any, ...]]]:
    """Every record under ``prefix``: handle → [(index, type, data, ttl)]."""
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as ch:
        return {r.handle: [(v.index, v.type, getattr(v, str(v.WhichOneof("data"))), v.ttl)
                           for v in r.values]
                for r in export_records(registry_pb2_grpc.RegistryStub(ch),
                                        resolver_pb2_grpc.ResolverStub(ch), prefix, ADMIN)}


def resolve(node: Node, handle: str) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as ch:
        response = resolver_pb2_grpc.ResolverStub(ch).Resolve(
            resolver_pb2.ResolveRequest(handle=handle), metadata=ADMIN, timeout=10)
    return record_pb2.Record.FromString(response.record.payload)


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


PARTS = [["suffix", "URL", "productName", "batchNo"],
         ["PN-0001", "https://example.com/p/1", "主轴", "B1"],
         ["PN-0002", "https://example.com/p/2", "轴承", ""],
         ["PN-0003", "https://example.com/p/3", "带,逗号的\"名称\"", "B3"]]
