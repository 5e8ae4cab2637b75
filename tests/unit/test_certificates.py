"""Client certificate → principal (node.security.certificates), without a server: the
claim (hdl: URI, CN fallback), the proof (HS_PUBKEY as DER or PEM at the identity's
index), the anonymous outcomes, the verdict cache and the header's precedence."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from node.security.certificates import (
    CertificatePrincipals,
    ClientCertificate,
    Credentials,
    client_certificate,
)
from registry.access.principals import Principal
from registry.identifier import Handle
from registry.record import Record
from registry.values import Value
from tests.tls_certs import CA, Issued, new_key, spki_der, spki_pem

IDENTITY = "300:88.118.8/ADMIN"
OWNER = Principal.of(IDENTITY)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


def der(issued: Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.DER)


class Records:
    """An in-memory lookup by handle key, counting lookups."""

    def __init__(self, *records: Record) -> None:
        self.records = {r.handle.key: r for r in records}
        self.lookups = 0

    def __call__(self, key: str) -> Record | None:
        self.lookups += 1
        return self.records.get(key)


def record(handle: str, *values: Value) -> Record:
    return Record(Handle.parse(handle), values, 1, 1, 0)


def principals(records: Records, now: list[float] | None = None) -> CertificatePrincipals:
    clock = now or [0.0]
    return CertificatePrincipals(records, lambda identity: OWNER if identity.endswith(
        "8/ADMIN") else None, clock=lambda: clock[0])


def test_the_identity_is_the_hdl_uri_else_an_exact_cn(ca: CA) -> None:
    by_uri = client_certificate(ca.issue("someone", uris=(f"hdl:{IDENTITY}",)).cert_pem)
    assert by_uri is not None and by_uri.identity == IDENTITY
    encoded = client_certificate(der(ca.issue("x", uris=("HDL:300:88.118.8%2FADMIN",))))
    assert encoded is not None and encoded.identity == IDENTITY
    by_cn = client_certificate(ca.issue(IDENTITY).cert_pem)
    assert by_cn is not None and by_cn.identity == IDENTITY
    # The URI wins over the CN; other URIs do not count; two hdl: URIs claim nothing.
    both = client_certificate(ca.issue("301:88.118.8/ADMIN", uris=(
        "https://example.com", f"hdl:{IDENTITY}")).cert_pem)
    assert both is not None and both.identity == IDENTITY
    two = client_certificate(ca.issue(IDENTITY, uris=(f"hdl:{IDENTITY}",
                                                      "hdl:300:88.118.9/ADMIN")).cert_pem)
    assert two is not None and two.identity is None
    for name in ("partner system", "88.118.8/ADMIN", "300:bad prefix/x"):
        plain = client_certificate(ca.issue(name).cert_pem)
        assert plain is not None and plain.identity is None
    assert client_certificate(b"not a certificate") is None


def test_a_certificate_is_the_principal_whose_hs_pubkey_holds_its_key(ca: CA) -> None:
    key = new_key()
    cert = client_certificate(ca.issue("c", uris=(f"hdl:{IDENTITY}",), key=key).cert_pem)
    assert cert is not None
    for data in (spki_der(key), spki_pem(key)):
        records = Records(record("88.118.8/ADMIN", Value(300, "HS_PUBKEY", data)))
        assert principals(records).principal(cert) == OWNER
    lower = Records(record("88.118.8/admin", Value(300, "hs_pubkey", spki_der(key))))
    assert principals(lower).principal(cert) == OWNER


@pytest.mark.parametrize("values", [
    (),                                                     # no record value at all
    (Value(301, "HS_PUBKEY", b"?"),),                       # another index
    (Value(300, "URL", "https://x"),),                      # not an HS_PUBKEY
    (Value(300, "HS_PUBKEY", b"another key"),),             # another key (DER)
    (Value(300, "HS_PUBKEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),),
])
def test_an_unproved_claim_is_anonymous(ca: CA, values: tuple[Value, ...]) -> None:
    cert = client_certificate(ca.issue("c", uris=(f"hdl:{IDENTITY}",)).cert_pem)
    assert cert is not None
    records = Records(record("88.118.8/ADMIN", *values)) if values else Records()
    assert principals(records).principal(cert) is None


def test_a_proved_identity_the_node_does_not_know_is_anonymous(ca: CA) -> None:
    key = new_key()
    cert = client_certificate(ca.issue("c", uris=("hdl:301:88.118.9/ALICE",),
                                       key=key).cert_pem)
    assert cert is not None
    records = Records(record("88.118.9/ALICE", Value(301, "HS_PUBKEY", spki_der(key))))
    assert principals(records).principal(cert) is None


def test_verdicts_are_remembered_for_a_while(ca: CA) -> None:
    key = new_key()
    cert = client_certificate(ca.issue("c", uris=(f"hdl:{IDENTITY}",), key=key).cert_pem)
    assert cert is not None
    records = Records(record("88.118.8/ADMIN", Value(300, "HS_PUBKEY", spki_der(key))))
    now = [0.0]
    checker = principals(records, now)
    assert checker.principal(cert) == OWNER
    assert checker.principal(cert) == OWNER
    assert records.lookups == 1
    records.records.clear()  # the owner removed the key
    now[0] = 11.0
    assert checker.principal(cert) is None
    assert records.lookups == 2


class Headers:
    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def principal(self, header: str | None) -> Principal | None:
        self.seen.append(header)
        return Principal.of("300:88.118/ADMIN") if header else None


def test_an_authorization_header_wins_over_the_certificate(ca: CA) -> None:
    key = new_key()
    cert = client_certificate(ca.issue("c", uris=(f"hdl:{IDENTITY}",), key=key).cert_pem)
    assert cert is not None
    records = Records(record("88.118.8/ADMIN", Value(300, "HS_PUBKEY", spki_der(key))))
    headers = Headers()
    credentials = Credentials(headers, principals(records))
    admin = credentials.principal("Basic x", cert)
    assert admin is not None and admin.id == "300:88.118/ADMIN"
    assert credentials.principal(None, cert) == OWNER
    assert credentials.principal(None, None) is None
    # Without mutual TLS configured, a certificate is ignored.
    assert Credentials(headers).principal(None, cert) is None
    assert records.lookups == 1
    assert ClientCertificate(None, b"").identity is None
