"""TLS on the gRPC and HTTP doors, certificate reload without restart, and client
certificates (mutual TLS) that act as the principal their identity's HS_PUBKEY proves.

Real nodes on 127.0.0.1:0; certificates from a throw-away CA in tmp_path."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from typer.testing import CliRunner

from idnode.v1 import record_pb2, registry_pb2, registry_pb2_grpc, resolver_pb2, resolver_pb2_grpc
from node.app import Node, StartupError, build
from node.cli.main import app
from node.settings import load
from tests.conftest import ADMIN, NODE_PREFIX, NodeFactory
from tests.http_client import ADMIN_AUTH, basic
from tests.tls_certs import CA, Issued, client_context, spki_pem

ADMIN_IDENTITY = f"300:{NODE_PREFIX}/ADMIN"
OWNER_SECRET = "owner-secret-of-88.118.8"


@dataclass
class Tls:
    """A node's TLS files and the CA that issued them."""

    ca: CA
    folder: Path
    server: Issued

    @property
    def cert_file(self) -> Path:
        return self.folder / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "server.key"

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    def settings(self, **extra: object) -> dict[str, object]:
        return {"tls_cert_file": str(self.cert_file), "tls_key_file": str(self.key_file),
                **extra}


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    ca = CA()
    folder = tmp_path / "tls"
    folder.mkdir()
    server = ca.issue("idnode test server", server=True)
    server.write(folder / "server.pem", folder / "server.key")
    (folder / "ca.pem").write_bytes(ca.pem)
    return Tls(ca, folder, server)


def mtls(tls: Tls) -> dict[str, object]:
    return tls.settings(tls_client_ca_file=str(tls.ca_file), grpc_tls_client_auth="require",
                        http_tls_client_auth="optional")


class Grpc:
    """Stubs on a TLS channel (a fresh connection: a local subchannel pool)."""

    def __init__(self, port: int, ca: CA, client: Issued | None = None) -> None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca.pem, private_key=client.key_pem if client else None,
            certificate_chain=client.cert_pem if client else None)
        self.channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                                           options=(("grpc.use_local_subchannel_pool", 1),))
        self.resolver = resolver_pb2_grpc.ResolverStub(self.channel)
        self.registry = registry_pb2_grpc.RegistryStub(self.channel)

    def register(self, handle: str, *values: record_pb2.Value,
                 metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        return self.registry.Register(registry_pb2.RegisterRequest(
            handle=handle, values=list(values)), metadata=metadata, timeout=10)

    def resolve(self, handle: str, metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
        answer = self.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle),
                                       metadata=metadata, timeout=10)
        record = record_pb2.Record.FromString(answer.record.payload)
        return [v.text for v in record.values]

    def close(self) -> None:
        self.channel.close()


def url(text: str, index: int = 1) -> record_pb2.Value:
    return record_pb2.Value(index=index, type="URL", text=text)


def https(port: int, context: ssl.SSLContext, method: str, path: str, body: object = None,
          auth: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        conn.request(method, path, json.dumps(body).encode() if body is not None else None,
                     headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def served_serial(port: int, ca: CA, alpn: str, client: Issued | None = None,
                  folder: Path | None = None) -> int:
    """The serial of the certificate a *new* TLS connection to ``port`` is shown."""
    context = client_context(ca, client, folder)
    context.set_alpn_protocols([alpn])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- TLS -----------------------------------------------------------------------------------


def test_resolve_over_tls_on_grpc_and_http(node_factory: NodeFactory, tls: Tls) -> None:
    node = node_factory(**tls.settings())
    client = Grpc(node.grpc_port, tls.ca)
    try:
        client.register("88.118.8/TLS-1", url("https://example.com/tls"), metadata=ADMIN)
        assert client.resolve("88.118.8/TLS-1") == ["https://example.com/tls"]
    finally:
        client.close()
    status, body = https(node.http_port, client_context(tls.ca), "GET",
                         "/api/handles/88.118.8/TLS-1")
    assert status == 200
    assert body["values"][0]["data"]["value"] == "https://example.com/tls"
    # The same pair serves both doors.
    assert served_serial(node.grpc_port, tls.ca, "h2") == tls.server.serial
    assert served_serial(node.http_port, tls.ca, "http/1.1") == tls.server.serial


def test_plaintext_clients_fail_cleanly_and_the_node_keeps_serving(
        node_factory: NodeFactory, tls: Tls) -> None:
    node = node_factory(**tls.settings())
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as channel:
        stub = resolver_pb2_grpc.ResolverStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/X"), timeout=3)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()
    conn.close()
    client = Grpc(node.grpc_port, tls.ca)
    try:
        client.register("88.118.8/AFTER", url("https://after"), metadata=ADMIN)
        assert client.resolve("88.118.8/AFTER") == ["https://after"]
    finally:
        client.close()
    assert https(node.http_port, client_context(tls.ca), "GET", "/healthz")[0] == 200


def test_the_health_check_probes_readyz_over_https(node_factory: NodeFactory,
                                                   tls: Tls) -> None:
    node = node_factory(**tls.settings())
    result = CliRunner().invoke(app, ["health", "--timeout-seconds", "5"], env={
        "COLUMNS": "200", "IDNODE_HTTP_LISTEN": f"0.0.0.0:{node.http_port}",
        "IDNODE_TLS_CERT_FILE": str(tls.cert_file), "IDNODE_TLS_KEY_FILE": str(tls.key_file)})
    assert result.exit_code == 0, result.output
    assert f"https://127.0.0.1:{node.http_port}/readyz" in result.output


def test_a_connection_that_never_completes_the_handshake_is_closed(
        node_factory: NodeFactory, tls: Tls) -> None:
    node = node_factory(**tls.settings(http_idle_timeout_seconds=0.5))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.http_port), timeout=10) as silent:
        assert silent.recv(1) == b""  # closed by the node, not by our timeout
    assert time.monotonic() - started < 5


def test_tls_files_are_checked_at_start_and_errors_name_the_setting(
        tmp_path: Path, tls: Tls) -> None:
    def start(**tls_settings: object) -> str:
        settings = load(env={}, overrides={
            "data_dir": str(tmp_path / "data"), "grpc_listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0", "handle_listen": "", **tls_settings})
        with pytest.raises(StartupError) as failed:
            build(settings).stop(0)
        return str(failed.value)

    assert "tls_cert_file" in start(**tls.settings(tls_cert_file=str(tmp_path / "none.pem")))
    other = tls.ca.issue("other", server=True)
    (tmp_path / "other.key").write_bytes(other.key_pem)
    assert "tls_key_file" in start(**tls.settings(tls_key_file=str(tmp_path / "other.key")))
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert "tls_client_ca_file" in start(**tls.settings(
        tls_client_ca_file=str(tmp_path / "junk.pem"), grpc_tls_client_auth="require"))


def test_a_new_certificate_is_served_to_new_connections_without_restart(
        node_factory: NodeFactory, tls: Tls, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("idnode"), "propagate", True)
    node = node_factory(**tls.settings(tls_reload_interval_seconds=0.1))
    old = tls.server.serial
    # An HTTP keep-alive connection opened before the rotation keeps working.
    kept = http.client.HTTPSConnection("127.0.0.1", node.http_port,
                                       context=client_context(tls.ca), timeout=10)
    kept.request("GET", "/healthz")
    assert kept.getresponse().read()

    renewed = tls.ca.issue("idnode test server", server=True)
    assert renewed.serial != old
    with caplog.at_level(logging.INFO, logger="idnode.tls"):
        renewed.write(tls.cert_file, tls.key_file)
        assert wait_for(lambda: served_serial(node.http_port, tls.ca, "http/1.1")
                        == renewed.serial)
        assert wait_for(lambda: served_serial(node.grpc_port, tls.ca, "h2") == renewed.serial)
    assert any(r.getMessage() == "TLS certificate reloaded" for r in caplog.records)
    kept.request("GET", "/healthz")
    assert kept.getresponse().status == 200
    kept.close()
    client = Grpc(node.grpc_port, tls.ca)
    try:
        client.register("88.118.8/ROTATED", url("https://rotated"), metadata=ADMIN)
        assert client.resolve("88.118.8/ROTATED") == ["https://rotated"]
    finally:
        client.close()


def test_a_half_written_or_mismatched_pair_keeps_the_old_one(
        node_factory: NodeFactory, tls: Tls, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("idnode"), "propagate", True)
    # A long interval: this test drives the checks itself.
    node = node_factory(**tls.settings(tls_reload_interval_seconds=3600))
    assert node.tls is not None
    renewed = tls.ca.issue("idnode test server", server=True)
    with caplog.at_level(logging.WARNING, logger="idnode.tls"):
        tls.cert_file.write_bytes(renewed.cert_pem)  # the key is still the old one
        assert node.tls.check() is False
        tls.key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntruncat")
        assert node.tls.check() is False
    rejected = [r for r in caplog.records
                if r.getMessage() == "new TLS files rejected; keeping the current certificate"]
    assert len(rejected) == 2
    assert "tls_key_file" in rejected[0].fields["reason"]  # type: ignore[attr-defined]
    for port, alpn in ((node.grpc_port, "h2"), (node.http_port, "http/1.1")):
        assert served_serial(port, tls.ca, alpn) == tls.server.serial
    client = Grpc(node.grpc_port, tls.ca)
    try:
        client.register("88.118.8/KEPT", url("https://kept"), metadata=ADMIN)
        assert client.resolve("88.118.8/KEPT") == ["https://kept"]
    finally:
        client.close()
    assert https(node.http_port, client_context(tls.ca), "GET",
                 "/api/handles/88.118.8/KEPT")[0] == 200
    # The key arrives: the pair is whole now, and it is taken.
    tls.key_file.write_bytes(renewed.key_pem)
    assert node.tls.check() is True
    assert served_serial(node.grpc_port, tls.ca, "h2") == renewed.serial
    assert wait_for(lambda: served_serial(node.http_port, tls.ca, "http/1.1")
                    == renewed.serial)


# --- mutual TLS ------------------------------------------------------------------------------


CERT_IDENTITY = "301:88.118.8/ADMIN"


def enrol_certificate(node: Node, tls: Tls, cert: Issued, auth: str = ADMIN_AUTH) -> None:
    """The Handle way, over HTTPS with a secret: the identity record ``88.118.8/ADMIN``
    gets the certificate's key as an HS_PUBKEY at index 301 (making ``301:88.118.8/ADMIN``
    a principal), and the prefix's admin group (HS_VLIST 200 on ``0.NA/88.118.8``) gets
    that principal as a member (giving it the prefix admin's rights)."""
    context = client_context(tls.ca)
    status, _ = https(node.http_port, context, "PUT", "/api/handles/88.118.8/ADMIN?index=301",
                      {"values": [{"index": 301, "type": "HS_PUBKEY", "data": {
                          "format": "string", "value": spki_pem(cert.key)}}]}, auth=auth)
    assert status in (200, 201)
    status, _ = https(node.http_port, context, "PUT", "/api/handles/0.NA/88.118.8?index=200",
                      {"values": [{"index": 200, "type": "HS_VLIST", "data": {
                          "format": "vlist", "value": [
                              {"handle": "88.118.8/ADMIN", "index": 300},
                              {"handle": "88.118.8/ADMIN", "index": 301}]}}]}, auth=auth)
    assert status in (200, 201)


def test_a_grpc_client_certificate_is_the_principal_its_hs_pubkey_proves(
        node_factory: NodeFactory, tls: Tls, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("idnode"), "propagate", True)
    node = node_factory(**mtls(tls))
    admin = Grpc(node.grpc_port, tls.ca, tls.ca.issue("admin's machine"))
    try:
        admin.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix="88.118.8", owner_secret=OWNER_SECRET), metadata=ADMIN, timeout=10)
    finally:
        admin.close()
    admin_cert = tls.ca.issue("ops laptop", uris=(f"hdl:{CERT_IDENTITY}",))
    enrol_certificate(node, tls, admin_cert)

    proved = Grpc(node.grpc_port, tls.ca, admin_cert)
    try:
        with caplog.at_level(logging.INFO, logger="idnode.audit"):
            proved.register("88.118.8/BY-CERT", url("https://by-cert"))  # no authorization
        written = [r for r in caplog.records if r.getMessage() == "write"]
        assert written[-1].fields["principal"] == CERT_IDENTITY  # type: ignore[attr-defined]
        listed = proved.registry.List(registry_pb2.ListRequest(prefix="88.118.8"), timeout=10)
        assert "88.118.8/BY-CERT" in listed.handles
    finally:
        proved.close()

    # Same claimed identity, another key: not that principal (anonymous), so a write is
    # UNAUTHENTICATED and a resolve gets the public view.
    impostor = tls.ca.issue("impostor", uris=(f"hdl:{CERT_IDENTITY}",))
    other = Grpc(node.grpc_port, tls.ca, impostor)
    try:
        with caplog.at_level(logging.WARNING, logger="idnode.tls"), \
                pytest.raises(grpc.RpcError) as refused:
            other.register("88.118.8/IMPOSTOR", url("https://nope"))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert any("not mapped" in r.getMessage() for r in caplog.records)
        assert other.resolve("88.118.8/BY-CERT") == ["https://by-cert"]
        # An authorization header wins over the certificate.
        other.register("88.118.8/BY-SECRET", url("https://by-secret"), metadata=ADMIN)
    finally:
        other.close()

    # mTLS is required on gRPC: a client without a certificate does not get in.
    bare = Grpc(node.grpc_port, tls.ca)
    try:
        with pytest.raises(grpc.RpcError) as shut_out:
            bare.resolve("88.118.8/BY-CERT")
        assert shut_out.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        bare.close()


def test_an_http_client_certificate_is_the_principal_its_hs_pubkey_proves(
        node_factory: NodeFactory, tls: Tls, tmp_path: Path) -> None:
    node = node_factory(**mtls(tls))
    owner = "300:88.118.8/ADMIN"
    admin = Grpc(node.grpc_port, tls.ca, tls.ca.issue("admin's machine"))
    try:
        admin.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(
            prefix="88.118.8", owner_secret=OWNER_SECRET), metadata=ADMIN, timeout=10)
    finally:
        admin.close()
    # The prefix owner enrols its certificate itself, with its secret (README,
    # Operations: TLS).
    owner_cert = tls.ca.issue("factory MES", uris=(f"hdl:{CERT_IDENTITY}",))
    bare = client_context(tls.ca)
    enrol_certificate(node, tls, owner_cert, auth=basic(owner, OWNER_SECRET))
    values = {"values": [{"index": 1, "type": "URL",
                          "data": {"format": "string", "value": "https://http-cert"}}]}
    folder = tmp_path / "client"

    proved = client_context(tls.ca, owner_cert, folder)
    status, _ = https(node.http_port, proved, "PUT", "/api/handles/88.118.8/HTTP-CERT", values)
    assert status in (200, 201)
    status, body = https(node.http_port, proved, "GET", "/api/handles?prefix=88.118.8")
    assert status == 200 and "88.118.8/HTTP-CERT" in body["handles"]
    # The owner's rights, not more: another prefix is still refused.
    assert https(node.http_port, proved, "PUT", "/api/handles/88.118.9/X", values)[0] == 403

    impostor = client_context(tls.ca, tls.ca.issue("x", uris=(f"hdl:{CERT_IDENTITY}",)),
                              folder)
    assert https(node.http_port, impostor, "PUT", "/api/handles/88.118.8/NO", values)[0] == 401
    # http_tls_client_auth=optional: no certificate is an anonymous caller (phones
    # scanning QR labels), and a secret still works.
    assert https(node.http_port, bare, "GET", "/api/handles/88.118.8/HTTP-CERT")[0] == 200
    assert https(node.http_port, bare, "PUT", "/api/handles/88.118.8/NO", values)[0] == 401
    assert https(node.http_port, bare, "PUT", "/api/handles/88.118.8/SECRET", values,
                 auth=ADMIN_AUTH)[0] in (200, 201)
