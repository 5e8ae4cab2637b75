"""The Handle permission model on the in-memory store: prefix handles, HS_ADMIN bits,
HS_VLIST groups, secrets, and what writes refuse."""

from __future__ import annotations

import pytest

from registry.access.policy import Permission, describe, permission_string
from registry.access.principals import Principal, Scope, StoredPrincipal, verify_secret
from registry.errors import (
    InvalidArgument,
    InvalidValue,
    PermissionDenied,
    Unauthenticated,
)
from registry.identifier import Handle, Prefix
from registry.registrar import Registrar, change_bits
from registry.stores.memory import MemoryStore
from registry.values import AdminRef, Permissions, Value, ValueList, ValueRef
from registry.views import visible

NODE = Principal.of("300:88.118/ADMIN")
OWNER = Principal.of("300:88.118.8/ADMIN")
OTHER = Principal.of("300:88.118.9/ADMIN")
ERP = Principal.of("300:88.118.8/ERP")
PRIVATE = Permissions(public_read=False)


@pytest.fixture
def reg() -> Registrar:
    r = Registrar(MemoryStore(), Prefix.parse("88.118"))
    r.allocate_prefix(NODE, "88.118.8", "owner-secret-0001")
    r.allocate_prefix(NODE, "88.118.9", "other-secret-0001")
    return r


def url(index: int = 1, text: str = "https://x") -> Value:
    return Value(index, "URL", text)


def admin(index: int, handle: str, ref: int, bits: str) -> Value:
    return Value(index, "HS_ADMIN", AdminRef(handle, ref, bits))


def vlist(index: int, *members: tuple[str, int]) -> Value:
    return Value(index, "HS_VLIST", ValueList(tuple(ValueRef(h, i) for h, i in members)))


def grant(reg: Registrar, index: int, handle: str, ref: int, bits: str) -> None:
    current = reg.store.get("0.na/88.118.8")
    assert current is not None
    reg.update(OWNER, "0.NA/88.118.8", [admin(index, handle, ref, bits)], current.etag,
               merge=True)


def identity(reg: Registrar, name: str, index: int = 300) -> None:
    reg.register(OWNER, f"88.118.8/{name}",
                 [Value(index, "HS_SECKEY", f"secret-of-{name.lower()}-01")])


def test_permission_strings_read_from_the_right() -> None:
    assert permission_string(Permission.ADD_HANDLE) == "000000000001"
    assert permission_string(Permission.LIST_HANDLES) == "100000000000"
    assert describe(int("000001110011", 2)) == \
        "add_handle, delete_handle, modify_value, remove_value, add_value"


def test_an_update_needs_exactly_the_bits_of_its_difference() -> None:
    old = (url(1), Value(2, "EMAIL", "a@b"), admin(100, "88.118.8/ADMIN", 300, "1" * 12))
    assert change_bits(old, (url(1, "https://y"), old[1], old[2])) == Permission.MODIFY_VALUE
    assert change_bits(old, old[:2]) == Permission.REMOVE_ADMIN
    assert change_bits(old, (*old, url(3))) == Permission.ADD_VALUE
    assert change_bits(old, old) == Permission.MODIFY_VALUE  # a no-op is still a write
    stamped = tuple(v._replace(timestamp=99) for v in old)
    assert change_bits(old, stamped) == Permission.MODIFY_VALUE  # timestamps do not count


def test_a_writer_granted_on_the_prefix_handle_writes_but_cannot_change_rights(
        reg: Registrar) -> None:
    identity(reg, "ERP")
    grant(reg, 101, "88.118.8/ERP", 300, "000001110011")
    first = reg.register(ERP, "88.118.8/PN-1", [url()])
    second = reg.update(ERP, "88.118.8/PN-1", [url(1, "https://y")], first.etag)
    with pytest.raises(PermissionDenied, match="lacks add_admin"):
        reg.update(ERP, "88.118.8/PN-1", [admin(100, "88.118.8/ERP", 300, "1" * 12)],
                   second.etag, merge=True)
    assert not reg.can_read_private(ERP, Handle.parse("88.118.8/PN-1"))
    with pytest.raises(PermissionDenied, match="list_handles"):
        reg.list(ERP, "88.118.8")


def test_rights_on_one_identifier_come_from_its_own_hs_admin(reg: Registrar) -> None:
    identity(reg, "ERP")
    reg.register(OWNER, "88.118.8/PN-1", [url(), admin(100, "88.118.8/ERP", 300,
                                                        "000010010000")])
    reg.register(OWNER, "88.118.8/PN-2", [url()])
    current = reg.store.get("88.118.8/pn-1")
    assert current is not None
    reg.update(ERP, "88.118.8/PN-1", [url(1, "https://y"), current.values[1]], current.etag)
    assert reg.can_read_private(ERP, Handle.parse("88.118.8/PN-1"))
    other = reg.store.get("88.118.8/pn-2")
    assert other is not None
    with pytest.raises(PermissionDenied):
        reg.update(ERP, "88.118.8/PN-2", [url(1, "https://y")], other.etag)


def test_members_of_nested_groups_get_the_groups_rights_within_the_depth(
        reg: Registrar) -> None:
    identity(reg, "ERP")
    reg.register(OWNER, "88.118.8/TEAM", [vlist(1, ("88.118.8/ERP", 300))])
    current = reg.store.get("0.na/88.118.8")
    assert current is not None
    members = vlist(200, ("88.118.8/ADMIN", 300), ("88.118.8/TEAM", 1))
    reg.update(OWNER, "0.NA/88.118.8", [members], current.etag, merge=True)
    reg.register(ERP, "88.118.8/BY-GROUP", [url()])  # ERP ∈ TEAM ∈ admin group
    assert reg.list(ERP, "88.118.8")[0]


def test_a_group_that_would_contain_itself_is_refused(reg: Registrar) -> None:
    reg.register(OWNER, "88.118.8/G1", [vlist(1, ("88.118.8/ADMIN", 300))])
    reg.register(OWNER, "88.118.8/G2", [vlist(1, ("88.118.8/G1", 1))])
    current = reg.store.get("88.118.8/g1")
    assert current is not None
    with pytest.raises(InvalidValue, match="contain itself"):
        reg.update(OWNER, "88.118.8/G1", [vlist(1, ("88.118.8/G2", 1))], current.etag)
    with pytest.raises(InvalidValue, match="contain itself"):
        reg.register(OWNER, "88.118.8/G3", [vlist(1, ("88.118.8/G3", 1))])


def test_hs_admin_naming_no_principal_or_group_is_refused(reg: Registrar) -> None:
    with pytest.raises(InvalidValue, match="neither a principal nor a group"):
        reg.register(OWNER, "88.118.8/PN-1", [url(), admin(100, "88.118.8/NOBODY", 300,
                                                            "1" * 12)])
    with pytest.raises(InvalidValue, match="neither a principal nor a group"):
        reg.register(OWNER, "88.118.8/PN-2", [url(), vlist(200, ("88.118.8/PN-1", 1))])
    # ... but naming a key in the same record is fine
    reg.register(OWNER, "88.118.8/SELF", [Value(300, "HS_SECKEY", "a-secret-of-self-1"),
                                          admin(100, "88.118.8/SELF", 300, "1" * 12)])


def test_the_last_admin_of_a_prefix_cannot_be_removed(reg: Registrar) -> None:
    current = reg.store.get("0.na/88.118.8")
    assert current is not None
    with pytest.raises(InvalidArgument, match="last admin"):
        reg.delete(OWNER, "0.NA/88.118.8", current.etag, [100])
    with pytest.raises(InvalidArgument, match="last admin"):
        reg.update(OWNER, "0.NA/88.118.8", [vlist(200)], current.etag, merge=True)
    with pytest.raises(PermissionDenied, match="prefix handle"):
        reg.delete(OWNER, "0.NA/88.118.8", current.etag)
    assert reg.store.get("0.na/88.118.8") == current


def test_a_prefix_admin_cannot_touch_another_prefix_or_its_handle(reg: Registrar) -> None:
    other = reg.store.get("0.na/88.118.9")
    assert other is not None
    with pytest.raises(PermissionDenied):
        reg.update(OWNER, "0.NA/88.118.9", [vlist(200, ("88.118.8/ADMIN", 300))],
                   other.etag, merge=True)
    with pytest.raises(PermissionDenied):
        reg.register(OWNER, "88.118.9/X", [url()])
    with pytest.raises(PermissionDenied, match="created by allocating"):
        reg.register(NODE, "0.NA/88.118.77", [url()])


def test_secrets_are_sealed_kept_on_replace_and_never_visible(reg: Registrar) -> None:
    result = reg.register(OWNER, "88.118.8/SK", [url(), Value(300, "hs_seckey",
                                                              "plain-secret-000")])
    stored = reg.store.get("88.118.8/sk")
    assert stored is not None
    secret = stored.values[1]
    assert secret.type == "HS_SECKEY" and isinstance(secret.data, str)
    assert secret.data != "plain-secret-000" and verify_secret("plain-secret-000", secret.data)
    assert visible(stored.values, private_ok=True) == (stored.values[0],)
    reg.update(OWNER, "88.118.8/SK", [url(1, "https://y")], result.etag)  # replace
    after = reg.store.get("88.118.8/sk")
    assert after is not None and after.values[1] == secret
    credential = reg.credential("300:88.118.8/sk")
    assert credential is not None and credential.secret_hash == secret.data


def test_tokens_keep_only_their_scope_and_prefix(reg: Registrar) -> None:
    reader = Principal(OWNER.id, OWNER.key, Scope.RESOLVE)
    writer = Principal(OWNER.id, OWNER.key, Scope.WRITE, prefix_key="88.118.8")
    handle = Handle.parse("88.118.8/X")
    assert reg.can_read_private(reader, handle)
    with pytest.raises(PermissionDenied, match="scope is resolve"):
        reg.register(reader, "88.118.8/X", [url()])
    reg.register(writer, "88.118.8/X", [url()])
    with pytest.raises(PermissionDenied):
        reg.register(Principal(NODE.id, NODE.key, Scope.WRITE, prefix_key="88.118.8"),
                     "88.118.9/X", [url()])


def test_anonymous_writes_are_unauthenticated_before_anything_is_read(reg: Registrar) -> None:
    with pytest.raises(Unauthenticated):
        reg.update(None, "88.118.8/NOPE", [url()], "s1")
    with pytest.raises(PermissionDenied, match="holds no write rights"):
        reg.update(OTHER, "88.118.8/NOPE", [url()], "s1")  # not NotFound: nothing leaks


def test_a_principals_row_from_an_older_store_still_proves_its_identity() -> None:
    store = MemoryStore()
    reg = Registrar(store, Prefix.parse("88.118"))
    legacy = StoredPrincipal(Principal.of("300:88.118.7/ADMIN"), "scrypt$old-hash", 1)
    store.add_principal(legacy)
    assert reg.credential("300:88.118.7/admin") == legacy
    # Once the identity's record holds an HS_SECKEY at that index, the record wins.
    reg.register(NODE, "88.118.7/ADMIN", [Value(300, "HS_SECKEY", "a-newer-secret-01")])
    found = reg.credential("300:88.118.7/admin")
    assert found is not None and verify_secret("a-newer-secret-01", found.secret_hash)
