"""Field-level data authorisation rules (registry.access.grants), without I/O: the grant
grammar of template items and DATA_GRANT values, how a record's grants override its
template's, what a caller sees, and the canonical view key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.service.resolve import view_id
from registry.access.data_access import DataAccess, table_of
from registry.access.grants import (
    NONE,
    READ,
    WRITE,
    check_grant_values,
    grant_changes,
    parse_grant_value,
    parse_item_grant,
)
from registry.access.principals import Principal, Scope
from registry.access.rights import RightsBook
from registry.audit import AuditQuery
from registry.errors import InvalidArgument, InvalidValue, PermissionDenied
from registry.identifier import Handle, Prefix
from registry.record import Record
from registry.registrar import BulkRow, Registrar
from registry.stores.memory import MemoryStore
from registry.templates import Template, TemplateState, parse_template, publish, put_draft
from registry.values import Permissions, Value, ValueList, ValueRef
from registry.views import visible

PRIVATE = Permissions(public_read=False)


def template(grants_2001: list[str], grants_2002: list[str]) -> Template:
    parsed = parse_template({"prefix": "88.1", "version": "1.0", "items": [
        {"name": "a", "idType": "a", "idIndex": 2000},
        {"name": "b", "idType": "b", "idIndex": 2001, "grants": grants_2001},
        {"name": "c", "idType": "c", "idIndex": 2002, "grants": grants_2002}]})
    return replace(parsed, state=TemplateState.PUBLISHED)


def test_an_item_grant_is_read_by_default_or_read_and_write_with_rw() -> None:
    assert parse_item_grant("300:88.1/P") == ("300:88.1/p", READ)
    assert parse_item_grant("200:88.1/G  rw") == ("200:88.1/g", WRITE)
    for bad in ("88.1/P", "300:88.1/P x", "300:nope r", "a b c"):
        with pytest.raises(InvalidArgument):
            parse_item_grant(bad)


def test_a_template_refuses_bad_or_repeated_grants_naming_each() -> None:
    with pytest.raises(InvalidArgument) as err:
        template(["300:88.1/P", "300:88.1/p rw"], ["nobody"])
    rules = [(v.index, v.rule) for v in err.value.violations]
    assert rules == [(2001, "grants"), (2002, "grants")]


def test_a_data_grant_value_names_one_identity_its_access_and_items() -> None:
    g = parse_grant_value(Value(1100, "DATA_GRANT", "300:88.2/ADMIN rw 2002,2001,2001"))
    assert (g.ref_key, g.access, g.items) == ("300:88.2/admin", WRITE, (2001, 2002))
    assert parse_grant_value(Value(1101, "DATA_GRANT", "300:88.2/ADMIN none 2001")).access \
        == NONE
    for data in ("300:88.2/ADMIN r", "300:88.2/ADMIN r 1999", "300:88.2/ADMIN x 2001",
                 "88.2/ADMIN r 2001"):
        with pytest.raises(InvalidValue):
            parse_grant_value(Value(1100, "DATA_GRANT", data))


def test_grant_indexes_are_reserved_for_grants_and_one_value_per_identity() -> None:
    with pytest.raises(InvalidValue, match="reserved"):
        check_grant_values([Value(1100, "URL", "https://x")])
    with pytest.raises(InvalidValue, match="live at"):
        check_grant_values([Value(5, "DATA_GRANT", "300:88.2/A r 2001")])
    with pytest.raises(InvalidValue, match="one value per identity"):
        check_grant_values([Value(1100, "DATA_GRANT", "300:88.2/A r 2001"),
                            Value(1101, "DATA_GRANT", "300:88.2/a rw 2002")])


def test_a_records_grant_adds_items_and_overrides_the_templates_for_its_identity() -> None:
    t = template(["300:88.1/P rw", "300:88.1/Q"], [])
    grants = [parse_grant_value(Value(1100, "DATA_GRANT", "300:88.1/P none 2001")),
              parse_grant_value(Value(1101, "DATA_GRANT", "300:88.2/ADMIN r 2001,2003"))]
    table = table_of(t, grants)
    assert table == {2001: {"300:88.1/p": NONE, "300:88.1/q": READ, "300:88.2/admin": READ},
                     2003: {"300:88.2/admin": READ}}
    assert table_of(template([], []), []) == {}


def test_restricted_values_are_seen_only_by_grantees_whatever_their_public_read() -> None:
    values = (Value(1, "URL", "u"), Value(2000, "a", "x"), Value(2001, "b", "y"),
              Value(2002, "c", "z", permissions=PRIVATE), Value(3, "N", "p", permissions=PRIVATE))
    restricted = frozenset({2001, 2002})
    shown = visible(values, private_ok=False, restricted=restricted)
    assert [v.index for v in shown] == [1, 2000]
    shown = visible(values, private_ok=False, restricted=restricted, granted=frozenset({2002}))
    assert [v.index for v in shown] == [1, 2000, 2002]
    assert [v.index for v in visible(values, private_ok=True, restricted=restricted)] == \
        [1, 2000, 2001, 2002, 3]


def test_callers_with_the_same_granted_items_share_one_view_key() -> None:
    assert view_id(False, (), (), frozenset({2002, 2001})) == \
        view_id(False, (), (), frozenset({2001, 2002})) == "a;g=2001,2002"
    assert view_id(False, (), ()) == ""  # the anonymous view: the plain handle key
    assert view_id(True, (), (), frozenset({2001})) == "p"  # read_value sees everything


def test_access_follows_groups_and_a_resolve_token_writes_nothing() -> None:
    records = {
        "88.1/g": Record(Handle.parse("88.1/G"), (Value(
            200, "HS_VLIST", ValueList((ValueRef("88.1/M", 300),))),), 1, 1, 0),
        "88.1/item": Record(Handle.parse("88.1/ITEM"), (
            Value(1001, "TEMPLATE", "1.0"), Value(2001, "b", "y"), Value(2002, "c", "z")),
            1, 2, 0),
    }
    t = template(["300:88.1/P rw"], ["200:88.1/G"])
    access = DataAccess(RightsBook(records.get), lambda prefix, version: t)
    item = Handle.parse("88.1/ITEM")
    p = Principal.of("300:88.1/P")
    m = Principal.of("300:88.1/M")
    assert access.readable(p, item) == {2001} and access.writable(p, item) == {2001}
    assert access.readable(m, item) == {2002} and access.writable(m, item) == frozenset()
    token = Principal.of("300:88.1/P", scope=Scope.RESOLVE)
    assert access.readable(token, item) == {2001} and access.writable(token, item) == set()
    bound = Principal.of("300:88.1/P", prefix_key="88.2")
    assert access.readable(bound, item) == frozenset()
    assert access.readable(None, item) == frozenset()


def test_a_write_changing_grants_is_audited_as_grant_or_revoke() -> None:
    a = Value(1100, "DATA_GRANT", "300:88.2/A r 2001")
    b = Value(1101, "DATA_GRANT", "300:88.2/B rw 2002")
    assert grant_changes([], [a]) == ("grant", "+300:88.2/A r 2001")
    assert grant_changes([a, b], [a]) == ("revoke", "-300:88.2/B")
    assert grant_changes([a], [a]) == ("", "")
    action, detail = grant_changes([a], [b])
    assert action == "grant" and detail == "+300:88.2/B rw 2002; -300:88.2/A"


def test_the_registrar_lets_a_grantee_write_only_its_items_and_audits_grants() -> None:
    node, owner = Principal.of("300:88.1/ADMIN"), Principal.of("300:88.1.8/ADMIN")
    reg = Registrar(MemoryStore(), Prefix.parse("88.1"))
    reg.allocate_prefix(node, "88.1.8", "owner-secret-0001")
    reg.register(owner, "88.1.8/P", [Value(300, "HS_SECKEY", "partner-secret-1")])
    draft = parse_template({"prefix": "88.1.8", "version": "1.0", "items": [
        {"name": "a", "idType": "a", "idIndex": 2000},
        {"name": "b", "idType": "b", "idIndex": 2001, "grants": ["300:88.1.8/P rw"]}]})
    reg.store.change_templates("88.1.8", lambda ex: put_draft(ex, draft, 1, node.id))
    reg.store.change_templates("88.1.8", lambda ex: publish(ex, "1.0", 2, node.id))
    made = reg.register(owner, "88.1.8/ITEM", [
        Value(1001, "TEMPLATE", "1.0"), Value(2000, "a", "x"), Value(2001, "b", "y")])
    partner = Principal.of("300:88.1.8/P")
    done = reg.update(partner, "88.1.8/ITEM", [Value(2001, "b", "z")], made.etag, merge=True)
    with pytest.raises(PermissionDenied):
        reg.update(partner, "88.1.8/ITEM", [Value(2000, "a", "w")], done.etag, merge=True)
    with pytest.raises(PermissionDenied):  # a whole replace would drop what it cannot see
        reg.update(partner, "88.1.8/ITEM", [Value(2001, "b", "w")], done.etag)
    granted = reg.update(owner, "88.1.8/ITEM", [Value(1100, "DATA_GRANT", "300:88.2/A r 2000")],
                         done.etag, merge=True)
    reg.delete(owner, "88.1.8/ITEM", granted.etag, indexes=[1100])
    entries = reg.store.audit_entries(AuditQuery(prefix_key="88.1.8")).entries
    assert [(e.action, e.message) for e in entries[:2]] == [
        ("revoke", "-300:88.2/A"), ("grant", "+300:88.2/A r 2000")]
    assert reg.audience(partner, Handle.parse("88.1.8/ITEM")) == (False, frozenset({2001}))
    assert reg.audience(owner, Handle.parse("88.1.8/ITEM")) == (True, frozenset())


def test_a_record_naming_a_template_the_node_lacks_shows_its_items_to_no_one_extra() -> None:
    access = DataAccess(RightsBook(lambda key: None), lambda prefix, version: None)
    values = (Value(1, "URL", "u"), Value(1001, "TEMPLATE", "9.9"), Value(2000, "a", "x"),
              Value(1100, "DATA_GRANT", "300:88.2/A r 2001"), Value(2001, "b", "y"))
    table = access.table_for("88.1", values, "9.9")
    assert set(table) == {2000, 2001} and table[2001] == {"300:88.2/a": READ}
    assert access.table_for("88.1", values[:1] + values[2:3], "") == {}


def test_bulk_rows_obey_the_grant_value_rules_as_single_registrations_do() -> None:
    node = Principal.of("300:88.1/ADMIN")
    reg = Registrar(MemoryStore(), Prefix.parse("88.1"))
    reg.ensure_node_admin("node-admin-secret-1")
    rows = [BulkRow("88.1/OK", (Value(1, "URL", "u"),
                                Value(1100, "DATA_GRANT", "300:88.2/A r 2000"))),
            BulkRow("88.1/MISPLACED", (Value(5, "DATA_GRANT", "300:88.2/A r 2000"),)),
            BulkRow("88.1/RESERVED", (Value(1100, "URL", "u"),))]
    done = reg.register_many(node, rows)
    assert not isinstance(done[0], Exception)
    assert isinstance(done[1], InvalidValue) and "live at indexes" in str(done[1])
    assert isinstance(done[2], InvalidValue) and "reserved" in str(done[2])
