"""Write rules, on the in-memory store: rights, etags, idempotency, merge, paging."""

from __future__ import annotations

import pytest

from registry.access.principals import Principal, Scope, identity_key, verify_secret
from registry.errors import (
    AlreadyExists,
    IdnodeError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleEtag,
    Unauthenticated,
)
from registry.identifier import Prefix
from registry.registrar import BulkRow, Registrar
from registry.stores.memory import MemoryStore
from registry.values import Value

ADMIN = Principal.of("300:88.118/ADMIN")
OWNER_8 = Principal.of("300:88.118.8/ADMIN")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reg() -> Registrar:
    return Registrar(MemoryStore(), Prefix.parse("88.118"), clock=Clock())


def url(text: str = "https://x", index: int = 1) -> Value:
    return Value(index, "URL", text)


def test_register_returns_version_one_and_an_etag(reg: Registrar) -> None:
    result = reg.register(ADMIN, "88.118.8/A", [url()])
    assert (result.handle, result.version) == ("88.118.8/A", 1)
    assert result.etag


def test_registering_twice_is_already_exists_even_in_another_case(reg: Registrar) -> None:
    reg.register(ADMIN, "88.118.8/A", [url()])
    with pytest.raises(AlreadyExists):
        reg.register(ADMIN, "88.118.8/a", [url()])


def test_anonymous_writes_are_unauthenticated(reg: Registrar) -> None:
    with pytest.raises(Unauthenticated):
        reg.register(None, "88.118.8/A", [url()])


def test_prefix_owner_writes_only_under_its_prefix(reg: Registrar) -> None:
    reg.allocate_prefix(ADMIN, "88.118.8")
    reg.register(OWNER_8, "88.118.8/A", [url()])
    with pytest.raises(PermissionDenied):  # a derived prefix is someone else's to allocate
        reg.register(OWNER_8, "88.118.8.1/A", [url()])
    with pytest.raises(PermissionDenied):  # so its ADMIN identity cannot be squatted
        reg.register(OWNER_8, "88.118.8.2/ADMIN", [url()])
    with pytest.raises(PermissionDenied):
        reg.register(OWNER_8, "88.118.9/A", [url()])
    with pytest.raises(PermissionDenied):
        reg.register(OWNER_8, "88.118.80/A", [url()])


def test_identifiers_outside_the_node_prefix_are_not_served(reg: Registrar) -> None:
    with pytest.raises(NotFound, match="not served"):
        reg.register(ADMIN, "99.1/A", [url()])


def test_repeated_request_id_with_same_content_returns_the_first_result(reg: Registrar) -> None:
    first = reg.register(ADMIN, "88.118.8/A", [url()], request_id="r1")
    again = reg.register(ADMIN, "88.118.8/A", [url()], request_id="r1")
    assert (again.version, again.etag, again.replayed) == (first.version, first.etag, True)


def test_repeated_request_id_with_other_content_is_invalid(reg: Registrar) -> None:
    reg.register(ADMIN, "88.118.8/A", [url()], request_id="r1")
    with pytest.raises(InvalidArgument, match="different request"):
        reg.register(ADMIN, "88.118.8/A", [url("https://other")], request_id="r1")


def test_update_needs_the_current_etag(reg: Registrar) -> None:
    first = reg.register(ADMIN, "88.118.8/A", [url()])
    second = reg.update(ADMIN, "88.118.8/A", [url("https://2")], first.etag)
    assert second.version == 2
    with pytest.raises(StaleEtag):
        reg.update(ADMIN, "88.118.8/A", [url("https://3")], first.etag)
    with pytest.raises(InvalidArgument, match="required"):
        reg.update(ADMIN, "88.118.8/A", [url("https://3")], "")
    with pytest.raises(InvalidArgument, match="malformed"):
        reg.update(ADMIN, "88.118.8/A", [url("https://3")], "garbage")
    stored = reg.store.get("88.118.8/a")
    assert stored is not None and stored.values[0].data == "https://2"


def test_merge_keeps_untouched_values(reg: Registrar) -> None:
    first = reg.register(ADMIN, "88.118.8/A", [url(), Value(2, "DESC", "d")])
    reg.update(ADMIN, "88.118.8/A", [url("https://new")], first.etag, merge=True)
    stored = reg.store.get("88.118.8/a")
    assert stored is not None
    assert [(v.index, v.data) for v in stored.values] == [(1, "https://new"), (2, "d")]


def test_delete_some_values_then_the_identifier(reg: Registrar) -> None:
    first = reg.register(ADMIN, "88.118.8/A", [url(), Value(2, "DESC", "d")])
    partial = reg.delete(ADMIN, "88.118.8/A", first.etag, [2])
    assert partial.version == 2
    with pytest.raises(NotFound, match="no value at index 7"):
        reg.delete(ADMIN, "88.118.8/A", partial.etag, [7])
    with pytest.raises(InvalidArgument, match="empty record"):
        reg.delete(ADMIN, "88.118.8/A", partial.etag, [1])
    gone = reg.delete(ADMIN, "88.118.8/A", partial.etag)
    assert gone.version == 0
    assert reg.store.get("88.118.8/a") is None


def test_an_etag_from_before_a_delete_does_not_match_a_re_registration(reg: Registrar) -> None:
    first = reg.register(ADMIN, "88.118.8/A", [url()])
    reg.delete(ADMIN, "88.118.8/A", first.etag)
    reg.register(ADMIN, "88.118.8/A", [url()])
    with pytest.raises(StaleEtag):
        reg.update(ADMIN, "88.118.8/A", [url("https://x2")], first.etag)


def test_list_pages_through_every_identifier_once(reg: Registrar) -> None:
    for i in range(25):
        reg.register(ADMIN, f"88.118.8/P-{i:03d}", [url()])
    reg.register(ADMIN, "88.118.9/OTHER", [url()])
    seen: list[str] = []
    token = ""
    while True:
        page, token = reg.list(ADMIN, "88.118.8", 10, token)
        seen += page
        if not token:
            break
    assert seen == [f"88.118.8/P-{i:03d}" for i in range(25)]
    with pytest.raises(InvalidArgument, match="page_token"):
        reg.list(ADMIN, "88.118.8", 10, "%%%")
    with pytest.raises(Unauthenticated):
        reg.list(None, "88.118.8")


def test_allocate_prefix_creates_owner_and_admin_record(reg: Registrar) -> None:
    allocation = reg.allocate_prefix(ADMIN, "88.118.8")
    assert allocation.owner == "300:88.118.8/ADMIN"
    assert len(allocation.generated_secret) >= 16
    stored = reg.credential(identity_key("300:88.118.8/ADMIN"))
    assert stored is not None and verify_secret(allocation.generated_secret, stored.secret_hash)
    owner = stored.principal
    assert owner.key == "300:88.118.8/admin" and owner.scope is Scope.FULL
    admin_record = reg.store.get("88.118.8/admin")
    assert admin_record is not None
    assert [(v.index, v.type) for v in admin_record.values] == [(100, "HS_ADMIN"),
                                                                  (300, "HS_SECKEY")]
    prefix_handle = reg.store.get("0.na/88.118.8")
    assert prefix_handle is not None
    assert [(v.index, v.type) for v in prefix_handle.values] == [(100, "HS_ADMIN"),
                                                                   (200, "HS_VLIST")]
    assert {r.key for r in allocation.results} == {"88.118.8/admin", "0.na/88.118.8"}
    with pytest.raises(AlreadyExists):
        reg.allocate_prefix(ADMIN, "88.118.8", "another-long-secret")
    with pytest.raises(PermissionDenied):
        reg.allocate_prefix(owner, "88.118.9")
    with pytest.raises(InvalidArgument, match="not under the node prefix"):
        reg.allocate_prefix(ADMIN, "99.1")


def test_the_node_admin_is_created_once_with_a_hashed_secret(reg: Registrar) -> None:
    assert reg.ensure_node_admin("a-long-enough-secret")
    assert not reg.ensure_node_admin("another-long-secret")
    stored = reg.credential(identity_key("300:88.118/admin"))
    assert stored is not None and stored.principal.key == "300:88.118/admin"
    assert "a-long-enough-secret" not in stored.secret_hash
    assert verify_secret("a-long-enough-secret", stored.secret_hash)
    assert not verify_secret("another-long-secret", stored.secret_hash)


def test_bulk_rows_fail_alone(reg: Registrar) -> None:
    reg.register(ADMIN, "88.118.8/EXISTS", [url()])
    out = reg.register_many(ADMIN, [BulkRow("88.118.8/B1", (url(),)),
                                    BulkRow("bad", (url(),)),
                                    BulkRow("88.118.8/EXISTS", (url(),)),
                                    BulkRow("88.118.8/B2", (Value(0, "URL", "x"),)),
                                    BulkRow("88.118.8/B3", (url(),))])
    kinds = [type(o).__name__ for o in out]
    assert kinds == ["WriteResult", "InvalidIdentifier", "AlreadyExists", "InvalidValue",
                     "WriteResult"]


def test_an_owner_secret_too_long_to_ever_log_in_is_refused(reg: Registrar) -> None:
    with pytest.raises(InvalidArgument, match="at most 1024 characters"):
        reg.allocate_prefix(ADMIN, "88.118.8", "x" * 1_000_000)
    assert reg.store.get("88.118.8/admin") is None


def test_bulk_rights_are_decided_per_prefix_as_row_by_row_registration_decides(
        reg: Registrar) -> None:
    """Rights are looked up once per prefix in a bulk call; every refusal is still the
    row's own, with the error a single registration of it gets."""
    reg.allocate_prefix(ADMIN, "88.118.8")
    reg.allocate_prefix(ADMIN, "88.118.9")
    scoped = Principal.of("300:88.118.8/ADMIN", scope=Scope.WRITE, prefix_key="88.118.9")
    rows = ["88.118.8/OWN-1", "88.118.9/OTHER", "0.NA/88.118.8.1", "99.1/OUTSIDE",
            "88.118.8/OWN-2"]

    def single(principal: Principal | None, handle: str) -> str:
        try:
            reg.register(principal, handle, [url()])
        except IdnodeError as exc:
            return f"{type(exc).__name__}: {exc}"
        reg.delete(ADMIN, handle, None)
        return "WriteResult"

    for principal in (OWNER_8, scoped, None, ADMIN):
        expected = [single(principal, h) for h in rows]
        got = [o if isinstance(o, Exception) else None for o in reg.register_many(
            principal, [BulkRow(h, (url(),)) for h in rows])]
        assert [f"{type(o).__name__}: {o}" if o is not None else "WriteResult"
                for o in got] == expected
        for handle, outcome in zip(rows, got, strict=True):
            if outcome is None:
                reg.delete(ADMIN, handle, None)
    again = reg.register_many(OWNER_8, [BulkRow("88.118.8/OWN-1", (url(),))])[0]
    assert not isinstance(again, IdnodeError) and again.version == 1
