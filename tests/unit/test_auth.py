"""Credentials parsing and the verification cache."""

from __future__ import annotations

import base64

import pytest

from node.security.auth import Authenticator, parse_basic
from registry.errors import Unauthenticated
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_encoded_and_plain_identities_parse_the_same() -> None:
    assert parse_basic(basic("300%3A88.118%2FADMIN", "s:e:c")) == ("300:88.118/ADMIN", "s:e:c")
    assert parse_basic(basic("300:88.118/ADMIN", "s:e:c")) == ("300:88.118/ADMIN", "s:e:c")


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    basic("300%3A88.118%2FADMIN", ""), "Bearer abc", "Digest x",
                                    "Basic " + "A" * 5000])
def test_malformed_credentials_are_unauthenticated(header: str) -> None:
    auth = Authenticator(Registrar(MemoryStore(), Prefix.parse("88.118")))
    with pytest.raises(Unauthenticated):
        auth.principal(header)


def test_successful_checks_are_remembered_and_failures_are_not_retried_at_once() -> None:
    store = MemoryStore()
    registrar = Registrar(store, Prefix.parse("88.118"))
    registrar.ensure_node_admin("the-admin-secret-1")
    calls = 0
    original = registrar.authenticate

    def counting(identity: str, secret: str):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return original(identity, secret)

    registrar.authenticate = counting  # type: ignore[method-assign]
    now = [0.0]
    auth = Authenticator(registrar, clock=lambda: now[0])
    good = basic("300%3A88.118%2FADMIN", "the-admin-secret-1")
    bad = basic("300%3A88.118%2FADMIN", "wrong-secret-here")
    assert auth.principal(good) is not None
    assert auth.principal(good) is not None
    assert calls == 1
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            auth.principal(bad)
    assert calls == 2
    now[0] = 10.0  # failure memory (5 s) expired, success memory (300 s) not
    with pytest.raises(Unauthenticated):
        auth.principal(bad)
    assert auth.principal(good) is not None
    assert calls == 3
    assert auth.principal(None) is None
