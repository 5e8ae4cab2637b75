"""``idnode db status|migrate|export|import`` on real stores: SQLite files, a real
PostgreSQL (tests/pg_server.py) and nodes built on the restored store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from idnode.v1 import record_pb2, registry_pb2, registry_pb2_grpc, resolver_pb2, resolver_pb2_grpc
from node.app import Node, StartupError, build
from node.cli.main import app
from node.settings import load
from registry.record import Record
from registry.stores import SQLiteStore, open_store
from registry.stores.sqlite import _migrations as sqlite_migrations
from tests.conftest import ADMIN, ADMIN_SECRET, NODE_PREFIX, basic
from tests.e2e.helpers import part_template
from tests.pg_server import ExternalServer, PostgresServer

NodeFactory = Callable[..., Node]
OPS_SECRET = "ops-secret-0001-abcdef"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def every_record(url: str) -> list[Record]:
    store = open_store(url)
    try:
        out: list[Record] = []
        after = ""
        while page := store.iter_records(after, 100):  # type: ignore[attr-defined]
            out.extend(page)
            after = page[-1].handle.key
        return out
    finally:
        store.close()


def contents(url: str) -> list[tuple[str, tuple[object, ...]]]:
    return [(str(r.handle), r.values) for r in every_record(url)]


def templates_of(url: str) -> list[object]:
    store = open_store(url)
    try:
        return list(store.list_templates(f"{NODE_PREFIX}.8"))
    finally:
        store.close()


def drop_migration_5(path: Path) -> None:
    """A store that lacks migration 5 (applications), as an older build left it."""
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE applications")
    conn.execute("DELETE FROM schema_version WHERE version = 5")
    conn.close()


# --- status and migrate ------------------------------------------------------------------


def test_status_of_a_fresh_store_shows_every_migration_pending_and_migrate_applies_them(
        tmp_path: Path) -> None:
    code, out = cli("db", "status", "--data-dir", str(tmp_path / "d"))
    assert code == 1, out
    shipped = [v for v, _ in sqlite_migrations()]
    listed = ", ".join(map(str, shipped))
    assert "backend:        sqlite" in out and f"pending:        {listed}\n" in out
    code, out = cli("db", "migrate", "--data-dir", str(tmp_path / "d"))
    assert code == 0 and f"applied migration(s) {listed}; schema version {shipped[-1]}" in out
    code, out = cli("db", "status", "--data-dir", str(tmp_path / "d"))
    assert code == 0 and "pending:        none" in out and "up to date" in out
    code, out = cli("db", "migrate", "--data-dir", str(tmp_path / "d"))
    assert code == 0 and "nothing to apply" in out


def test_status_shows_a_deleted_migration_pending_and_migrate_applies_only_it(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    drop_migration_5(path)
    code, out = cli("db", "status", "--database-url", sqlite_url(path))
    newest = max(v for v, _ in sqlite_migrations())
    assert code == 1 and "pending:        5\n" in out and f"schema version: {newest}" in out, out
    code, out = cli("db", "migrate", "--database-url", sqlite_url(path))
    assert code == 0 and "applied migration(s) 5;" in out, out
    code, out = cli("db", "status", "--database-url", sqlite_url(path))
    assert code == 0, out


def test_a_node_without_auto_migrate_refuses_a_store_lacking_migrations_naming_them(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    drop_migration_5(path)
    settings = load(env={}, overrides={
        "data_dir": str(tmp_path / "d"), "database_url": sqlite_url(path),
        "database_auto_migrate": False, "grpc_listen": "127.0.0.1:0", "http_listen": "",
        "handle_listen": ""})
    with pytest.raises(StartupError, match=r"lacks migration 5 .*idnode db migrate"):
        build(settings)
    store = SQLiteStore(path, auto_migrate=False)
    try:
        assert store.pending_migrations() == [5]  # refusing changed nothing
    finally:
        store.close()


# --- export and import -------------------------------------------------------------------


@pytest.fixture
def source(node_factory: NodeFactory, tmp_path: Path) -> Path:
    """A node's SQLite store with every kind of value; the node is stopped."""
    node = node_factory(tmp_path / "src")
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as ch:
        reg = registry_pb2_grpc.RegistryStub(ch)
        private = record_pb2.Permissions(admin_read=True, admin_write=True,
                                         public_read=False)
        reg.Register(registry_pb2.RegisterRequest(handle=f"{NODE_PREFIX}/OPS", values=[
            record_pb2.Value(index=300, type="HS_SECKEY", text=OPS_SECRET)]),
            metadata=ADMIN, timeout=10)
        reg.Register(registry_pb2.RegisterRequest(handle=f"{NODE_PREFIX}/GROUP", values=[
            record_pb2.Value(index=200, type="HS_VLIST", vlist=record_pb2.ValueList(refs=[
                record_pb2.ValueRef(handle=f"{NODE_PREFIX}/OPS", index=300)]))]),
            metadata=ADMIN, timeout=10)
        for i in range(30):
            reg.Register(registry_pb2.RegisterRequest(handle=f"{NODE_PREFIX}/PN-{i:03d}", values=[
                record_pb2.Value(index=1, type="productName", text=f"主轴 {i}"),
                record_pb2.Value(index=2, type="cost", text="秘密", permissions=private),
                record_pb2.Value(index=100, type="HS_ADMIN", admin=record_pb2.AdminRef(
                    handle=f"{NODE_PREFIX}/OPS", index=300, permissions="111111111111"))]),
                metadata=ADMIN, timeout=10)
        reg.PutTemplate(registry_pb2.PutTemplateRequest(
            prefix=f"{NODE_PREFIX}.8", template=part_template()), metadata=ADMIN, timeout=10)
        reg.PublishTemplate(registry_pb2.PublishTemplateRequest(
            prefix=f"{NODE_PREFIX}.8", version="1.0"), metadata=ADMIN, timeout=10)
    node.stop(0)
    return tmp_path / "src" / "idnode.sqlite3"


def test_export_then_import_into_sqlite_restores_every_record_and_secrets_still_log_in(
        source: Path, tmp_path: Path, node_factory: NodeFactory) -> None:
    dump_file = tmp_path / "store.jsonl"
    code, out = cli("db", "export", str(dump_file), "--database-url", sqlite_url(source))
    assert code == 0, out
    text = dump_file.read_text(encoding="utf-8")
    assert OPS_SECRET not in text and ADMIN_SECRET not in text  # hashes only
    assert "主轴 7" in text and "秘密" in text
    assert dump_file.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "dst" / "idnode.sqlite3"
    code, out = cli("db", "import", str(dump_file), "--database-url", sqlite_url(target))
    assert code == 0 and "verified" in out, out
    before, after = contents(sqlite_url(source)), contents(sqlite_url(target))
    assert after == before and len(after) >= 32
    assert templates_of(sqlite_url(target)) == templates_of(sqlite_url(source)) != []
    assert [r.version for r in every_record(sqlite_url(target))] == [1] * len(after)
    # A node on the restored store: the identity's stored hash still checks its secret.
    node = node_factory(tmp_path / "dst")
    ops = basic(f"300:{NODE_PREFIX}/OPS", OPS_SECRET)
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as ch:
        resolver = resolver_pb2_grpc.ResolverStub(ch)
        answer = resolver.Resolve(resolver_pb2.ResolveRequest(handle=f"{NODE_PREFIX}/PN-003"),
                                  metadata=ops, timeout=10)
        record = record_pb2.Record.FromString(answer.record.payload)
        assert "秘密" in [v.text for v in record.values]  # admin_read via HS_ADMIN
        with pytest.raises(grpc.RpcError) as refused:
            resolver.Resolve(resolver_pb2.ResolveRequest(handle=f"{NODE_PREFIX}/PN-003"),
                             metadata=basic(f"300:{NODE_PREFIX}/OPS", "wrong-secret-0001"),
                             timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_cut_dump_is_refused_before_anything_is_written(source: Path,
                                                         tmp_path: Path) -> None:
    dump_file = tmp_path / "store.jsonl"
    assert cli("db", "export", str(dump_file), "--database-url", sqlite_url(source))[0] == 0
    lines = dump_file.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-3]), encoding="utf-8")
    target = tmp_path / "dst.sqlite3"
    code, out = cli("db", "import", str(cut), "--database-url", sqlite_url(target))
    assert code == 1 and "the file is cut" in out and "nothing was imported" in out, out
    assert contents(sqlite_url(target)) == []


def test_import_into_a_store_that_is_not_empty_is_refused(source: Path,
                                                          tmp_path: Path) -> None:
    dump_file = tmp_path / "store.jsonl"
    assert cli("db", "export", str(dump_file), "--database-url", sqlite_url(source))[0] == 0
    code, out = cli("db", "import", str(dump_file), "--database-url", sqlite_url(source))
    assert code == 1 and "the store is not empty" in out, out



def test_export_from_sqlite_then_import_into_postgresql_restores_every_record(
        source: Path, tmp_path: Path, pg_server: PostgresServer | ExternalServer) -> None:
    url = pg_server.create_database()
    try:
        dump_file = tmp_path / "store.jsonl"
        assert cli("db", "export", str(dump_file), "--database-url", sqlite_url(source))[0] == 0
        code, out = cli("db", "import", str(dump_file), "--database-url", url)
        assert code == 0 and "verified" in out, out
        assert contents(url) == contents(sqlite_url(source))
        code, out = cli("db", "status", "--database-url", url)
        assert code == 0 and "backend:        postgresql" in out, out
    finally:
        pg_server.drop_database(url)
