"""Metadata templates, no I/O: parsing (every problem at once), the lifecycle, stable
indexes, every rule a record is checked against, the cache; and the registrar checking
records on every write (on the in-memory store)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from registry.access.principals import Principal
from registry.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidValue,
    NotFound,
    Violation,
)
from registry.identifier import Prefix
from registry.registrar import BulkRow, Registrar
from registry.stores.memory import MemoryStore
from registry.templates import (
    DataType,
    ItemState,
    Template,
    TemplateBook,
    TemplateState,
    backtracking_risk,
    check_record,
    check_version,
    latest_published,
    parse_template,
    publish,
    put_draft,
    template_reference,
    template_to_dict,
    withdraw,
)
from registry.values import Permissions, Value

ADMIN = Principal.of("300:88.118/ADMIN")


def body(*items: dict[str, Any], version: str = "1.0", **extra: Any) -> dict[str, Any]:
    return {"prefix": "88.118.8", "version": version, "items": list(items), **extra}


def item(id_type: str, index: int, *, name: str = "", required: bool = False,
         **metadata: Any) -> dict[str, Any]:
    return {"name": name or id_type, "idType": id_type, "idIndex": index,
            "required": required, "metadata": metadata or {"type": "string"}}


PART = body(
    item("productName", 2000, name="产品名称", required=True, minLength=1, maxLength=16),
    item("weight", 2001, name="重量", type="number", minimum=0, maximum=1000, precision=2),
    item("productionDate", 2002, name="生产日期", type="date", required=True),
    item("color", 2003, type="enum", enum=["red", "blue"]),
    item("manual", 2004, type="url"),
    item("drawing", 2005, type="file"),
    item("madeFrom", 2006, type="reference"),
    item("batchNo", 2007, pattern="[A-Z]{2}[0-9]{4}"),
)


def rules(violations: Sequence[Violation]) -> list[tuple[int, str]]:
    return [(v.index, v.rule) for v in violations]


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        parse_template(data)
    return [v.rule for v in caught.value.violations]


# --- parsing -------------------------------------------------------------------------------


def test_a_template_in_the_snms_shape_parses_with_its_items_in_index_order() -> None:
    t = parse_template(body(item("b", 2001), {"name": "a", "idType": "a", "idIndex": "2000",
                                              "metadata": {"type": "string", "minLength": 1,
                                                           "maxLength": 10}},
                            industryCategory="C", industrySpecific="34", industryTrade="342",
                            industrySubclass="3421", type=1, description="机床"))
    assert [i.id_index for i in t.items] == [2000, 2001]  # "2000" as SNMS sends it
    first = t.items[0]
    assert (first.state, first.required, first.schema.type) == \
        (ItemState.ENABLED, False, DataType.STRING)
    assert (first.schema.min_length, first.schema.max_length) == (1, 10)
    assert (t.state, t.industry.subclass, t.object_type) == (TemplateState.DRAFT, "3421", 1)


def test_every_problem_of_a_template_is_reported_at_once() -> None:
    found = problems({"prefix": "88.118.8", "version": 1.10, "itmes": [],
                      "industryTrade": "34x", "items": [
                          item("b", 1999),
                          item("a", 2001),
                          item("a", 2009),
                          item("HS_ADMIN", 2002),
                          item("n", 2003, type="number", minimum=5, maximum=1),
                          item("p", 2004, pattern="(a+)+"),
                          item("e", 2005, type="enum"),
                          item("d", 2006, type="date", format="yy-M"),
                          item("s", 2007, precision=2, minLength=3, maxLength=2),
                          {"name": "x", "idType": "x", "idIndex": 2008, "requried": True},
                      ]})
    assert found == ["itmes", "version", "industryTrade", "idIndex", "idType", "minimum",
                     "pattern", "enum", "format", "minLength", "precision",
                     "items[9].requried", "name", "idType"]


def test_a_template_problem_message_lists_the_problems() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_template(body(item("a", 12)))
    assert caught.value.message.startswith("template 88.118.8 version 1.0 is not a valid "
                                           "template (1 violation): index 12: idIndex:")


def test_the_prefix_named_by_the_request_is_the_templates_prefix() -> None:
    assert parse_template({"version": "1", "items": [item("a", 2000)]},
                          prefix="88.118.8").prefix.key == "88.118.8"
    with pytest.raises(InvalidArgument, match="differs from the prefix named"):
        parse_template(body(item("a", 2000)), prefix="88.118.9")


def test_the_dict_codec_keeps_everything_and_ignores_answer_fields_on_input() -> None:
    t = put_draft((), parse_template(PART), 10, "300:88.118/ADMIN")
    data = template_to_dict(t)
    again = parse_template(data, stored=True)
    assert again == t and again.updated_by == "300:88.118/ADMIN"
    assert data["items"][1]["metadata"] == {"type": "number", "minimum": 0, "maximum": 1000,
                                            "precision": 2}
    edited = parse_template(data)  # an answer edited and put again
    assert edited.state is TemplateState.DRAFT and edited.items == t.items


@pytest.mark.parametrize(("version", "ok"), [
    ("1.0", True), ("v2_beta-3", True), ("666", True), ("x" * 128, True),
    ("", False), (".1", False), ("1 0", False), ("x" * 129, False), ("1/0", False)])
def test_versions_are_short_strings_of_letters_digits_and_dots(version: str,
                                                                ok: bool) -> None:
    if ok:
        assert check_version(version) == version
    else:
        with pytest.raises(InvalidArgument):
            check_version(version)


@pytest.mark.parametrize(("pattern", "risky"), [
    ("(a+)+", True), ("(a|ab)*", True), ("(?:a|b)+", True), ("((ab)+c)*", True),
    ("(a{1,3}){2,}", True), ("[A-Z]{2}-[0-9]+", False), ("(\\.[0-9]+)?", False),
    ("(ab)+", False), ("(\\d{3}-){2}", False), ("(?:abc)+", False), ("[(+]+", False)])
def test_patterns_that_can_backtrack_for_ever_are_refused(pattern: str, risky: bool) -> None:
    assert bool(backtracking_risk(pattern)) is risky


@pytest.mark.parametrize(("fmt", "good", "bad"), [
    ("yyyy-MM-dd", "2024-02-29", "2024-2-29"),
    ("yyyyMMdd", "20240131", "20240132"),
    ("yyyy-MM-dd HH:mm:ss", "2024-01-31 23:59:59", "2024-01-31T23:59:59"),
    ("%Y/%m/%d", "2024/01/31", "2024-01-31"),
    ("yyyy年MM月dd日", "2024年01月31日", "2024年1月31日")])
def test_date_items_follow_their_format(fmt: str, good: str, bad: str) -> None:
    t = parse_template(body(item("d", 2000, type="date", format=fmt)))
    assert check_record(t, [Value(2000, "d", good)]) == []
    assert rules(check_record(t, [Value(2000, "d", bad)])) == [(2000, "date")]


# --- the lifecycle -------------------------------------------------------------------------


def test_a_draft_is_edited_in_place_and_keeps_its_serial_and_creation_time() -> None:
    first = put_draft((), parse_template(PART), 10, "a")
    other = put_draft((first,), parse_template(body(item("productName", 2000),
                                                    version="2.0")), 11, "a")
    edited = put_draft((first, other), parse_template(body(item("productName", 2000))),
                       12, "b")
    assert (first.serial, other.serial, edited.serial) == (1, 2, 1)
    assert (edited.created_at, edited.updated_at, edited.updated_by) == (10, 12, "b")
    assert len(edited.items) == 1


def test_a_published_version_never_changes_and_a_withdrawn_one_stays_withdrawn() -> None:
    draft = put_draft((), parse_template(PART), 10, "a")
    published = publish((draft,), "1.0", 11, "a")
    assert (published.state, published.published_at) == (TemplateState.PUBLISHED, 11)
    assert publish((published,), "1.0", 12, "a") is published  # again: nothing changes
    with pytest.raises(AlreadyExists, match="published and cannot change: put a new"):
        put_draft((published,), parse_template(PART), 12, "a")
    withdrawn = withdraw((published,), "1.0", 13, "a")
    assert (withdrawn.state, withdrawn.withdrawn_at) == (TemplateState.WITHDRAWN, 13)
    assert withdraw((withdrawn,), "1.0", 14, "a") is withdrawn
    with pytest.raises(AlreadyExists, match="stays withdrawn"):
        publish((withdrawn,), "1.0", 14, "a")
    with pytest.raises(AlreadyExists):
        put_draft((withdrawn,), parse_template(PART), 14, "a")


def test_a_draft_is_not_withdrawn_and_unknown_versions_are_not_found() -> None:
    draft = put_draft((), parse_template(PART), 10, "a")
    with pytest.raises(InvalidArgument, match="is a draft"):
        withdraw((draft,), "1.0", 11, "a")
    with pytest.raises(NotFound, match="version 9 not found"):
        publish((draft,), "9", 11, "a")


def test_an_index_keeps_its_type_and_a_type_its_index_in_every_version() -> None:
    v1 = publish((put_draft((), parse_template(PART), 10, "a"),), "1.0", 11, "a")
    with pytest.raises(InvalidArgument) as caught:
        put_draft((v1,), parse_template(body(item("colour", 2003), item("weight", 2010),
                                             item("size", 2100), version="2.0")), 12, "a")
    assert rules(caught.value.violations) == [(2003, "idIndex"), (2010, "idIndex")]
    assert "2003 is color in version 1.0" in caught.value.message
    # Adding new items and disabling old ones is how a template grows.
    v2 = parse_template(body({**item("color", 2003), "state": 0}, item("size", 2100),
                             version="2.0"))
    assert put_draft((v1,), v2, 12, "a").serial == 2


def test_the_latest_published_version_is_the_most_recently_published_one() -> None:
    a = publish((put_draft((), parse_template(PART), 1, "x"),), "1.0", 5, "x")
    b = put_draft((a,), parse_template({**PART, "version": "0.9"}), 2, "x")
    assert latest_published((a, b)) is a
    b = publish((a, b), "0.9", 6, "x")
    assert latest_published((a, b)) is b
    assert latest_published((a, withdraw((b,), "0.9", 7, "x"))) is a
    assert latest_published(()) is None


# --- checking a record ---------------------------------------------------------------------


@pytest.fixture
def part() -> Template:
    return publish((put_draft((), parse_template(PART), 1, "x"),), "1.0", 2, "x")


def good(**changes: str) -> list[Value]:
    data = {2000: ("productName", "Spindle"), 2001: ("weight", "12.50"),
            2002: ("productionDate", "2024-05-01"), 2003: ("color", "red"),
            2004: ("manual", "https://example.com/m.pdf"),
            2005: ("drawing", "sha256:" + "a" * 64), 2006: ("madeFrom", "88.118.9/STEEL-1"),
            2007: ("batchNo", "AB1234")}
    values = [Value(1001, "TEMPLATE", "1.0"), Value(1, "URL", "https://x")]
    for index, (id_type, usual) in data.items():
        text = changes.get(id_type, usual)
        if text != "-":
            values.append(Value(index, id_type, text))
    return sorted(values, key=lambda v: v.index)


def test_a_record_that_follows_its_template_has_no_violations(part: Template) -> None:
    assert check_record(part, good()) == []
    assert check_record(part, good(weight="-", color="-", manual="-", drawing="-",
                                   madeFrom="-", batchNo="-")) == []


@pytest.mark.parametrize(("field", "text", "rule"), [
    ("productName", "", "minLength"), ("productName", "x" * 17, "maxLength"),
    ("weight", "heavy", "number"), ("weight", "1e3", "number"),
    ("weight", "1.234", "precision"), ("weight", "-1", "minimum"),
    ("weight", "1000.01", "maximum"), ("productionDate", "2024-02-30", "date"),
    ("color", "green", "enum"), ("manual", "ftp://example.com/m", "url"),
    ("manual", "example.com", "url"), ("drawing", "sha256:abc", "file"),
    ("madeFrom", "no-slash", "reference"), ("batchNo", "ab1234", "pattern")])
def test_every_rule_of_a_schema_is_checked(part: Template, field: str, text: str,
                                           rule: str) -> None:
    found = check_record(part, good(**{field: text}))
    assert [v.rule for v in found] == [rule]
    assert found[0].item and found[0].type == field and found[0].value == text[:64]


def test_every_violation_is_reported_at_once_required_items_last(part: Template) -> None:
    found = check_record(part, good(productName="-", weight="heavy", batchNo="x" * 70,
                                    productionDate="31/12/2024"))
    assert rules(found) == [(2001, "number"), (2002, "date"), (2007, "pattern"),
                            (2000, "required")]
    assert found[2].value == "x" * 63 + "…"  # cut to 64 characters


def test_types_and_indexes_must_match_the_items(part: Template) -> None:
    values = [Value(1001, "TEMPLATE", "1.0"), Value(5, "weight", "1"),
              Value(2000, "productNam", "x"), Value(2002, "productionDate", "2024-01-01"),
              Value(2500, "extra", "x")]
    assert rules(check_record(part, values)) == [(5, "idIndex"), (2000, "idType"),
                                                 (2500, "unknown")]
    lenient = publish((put_draft((), parse_template({**PART, "allowOtherTypes": True}), 1,
                                 "x"),), "1.0", 2, "x")
    assert rules(check_record(lenient, values)) == [(5, "idIndex"), (2000, "idType")]


def test_values_below_2000_are_the_handle_systems_own(part: Template) -> None:
    values = [*good(), Value(2, "EMAIL", "a@b"), Value(300, "HS_SECKEY", "s" * 12)]
    assert check_record(part, sorted(values, key=lambda v: v.index)) == []


def test_a_disabled_item_keeps_its_values_and_refuses_new_or_changed_ones() -> None:
    t = parse_template(body(item("a", 2000), {**item("old", 2001, required=True),
                                              "state": "disabled"}))
    kept = [Value(2000, "a", "x"), Value(2001, "old", "legacy")]
    assert check_record(t, [Value(2000, "a", "x")]) == []  # disabled: never required
    assert check_record(t, kept, old=kept) == []
    assert rules(check_record(t, kept)) == [(2001, "disabled")]
    assert rules(check_record(t, [Value(2000, "a", "x"), Value(2001, "old", "new")],
                              old=kept)) == [(2001, "disabled")]


def test_binary_data_is_refused_for_items(part: Template) -> None:
    values = [v if v.index != 2000 else Value(2000, "productName", b"x") for v in good()]
    assert rules(check_record(part, values)) == [(2000, "text")]


def test_the_reference_at_1001_is_a_public_template_value_naming_a_version() -> None:
    assert template_reference([Value(1, "URL", "x")]) is None
    assert template_reference([Value(1, "URL", "x"), Value(1001, "TEMPLATE", "1.0")]) == "1.0"
    for bad in (Value(1001, "HS_TEMPLATE", "1.0"), Value(1001, "TEMPLATE", b"1.0"),
                Value(1001, "TEMPLATE", "1 0"),
                Value(1001, "TEMPLATE", "1.0",
                      permissions=Permissions(public_read=False))):
        with pytest.raises(InvalidValue):
            template_reference([bad])


# --- the cache -----------------------------------------------------------------------------


def test_the_book_keeps_published_versions_and_rechecks_their_state() -> None:
    stored: dict[tuple[str, str], Template] = {}
    reads: list[str] = []
    clock = [0.0]

    def load(prefix_key: str, version: str) -> Template | None:
        reads.append(version)
        return stored.get((prefix_key, version))

    book = TemplateBook(load, recheck_seconds=5, clock=lambda: clock[0])
    draft = put_draft((), parse_template(PART), 1, "x")
    stored["88.118.8", "1.0"] = draft
    assert book.get("88.118.8", "1.0") is draft and book.get("88.118.8", "1.0") is draft
    assert reads == ["1.0", "1.0"]  # drafts are never kept
    published = stored["88.118.8", "1.0"] = publish((draft,), "1.0", 2, "x")
    assert book.get("88.118.8", "1.0") is published
    stored["88.118.8", "1.0"] = withdrawn = withdraw((published,), "1.0", 3, "x")
    assert book.get("88.118.8", "1.0") is published and len(reads) == 3  # kept
    clock[0] = 5.0
    assert book.get("88.118.8", "1.0") is withdrawn  # re-read after recheck_seconds
    clock[0] = 1e9
    assert book.get("88.118.8", "1.0") is withdrawn and len(reads) == 4  # final: kept
    book.forget("88.118.8", "1.0")
    assert book.get("88.118.8", "1.0") is withdrawn and len(reads) == 5
    assert book.get("88.118.8", "2.0") is None and len(book) == 1


# --- the registrar checks every write ------------------------------------------------------


@pytest.fixture
def reg() -> Registrar:
    registrar = Registrar(MemoryStore(), Prefix.parse("88.118"), clock=lambda: 1_700_000_000)
    registrar.allocate_prefix(ADMIN, "88.118.8")
    return registrar


def put(reg: Registrar, data: dict[str, Any], *, published: bool = True) -> Template:
    template = parse_template(data)
    reg.store.change_templates("88.118.8", lambda ex: put_draft(ex, template, 1, "x"))
    if not published:
        return template
    return reg.store.change_templates("88.118.8",
                                      lambda ex: publish(ex, template.version, 2, "x"))


def test_a_record_breaking_three_rules_gets_one_error_naming_all_three(
        reg: Registrar) -> None:
    put(reg, PART)
    with pytest.raises(InvalidValue) as caught:
        reg.register(ADMIN, "88.118.8/P1", good(productName="x" * 17, weight="heavy",
                                               productionDate="-"))
    error = caught.value
    assert rules(error.violations) == [(2000, "maxLength"), (2001, "number"),
                                       (2002, "required")]
    assert error.message.startswith("88.118.8/P1 does not follow template 88.118.8 version "
                                    "1.0 (3 violations): index 2000 (产品名称): maxLength: ")
    assert "index 2001 (重量): number: 'heavy' is not a number" in error.message
    assert "index 2002 (生产日期): required:" in error.message
    assert reg.store.get("88.118.8/p1") is None


def test_a_record_without_index_1001_is_not_checked(reg: Registrar) -> None:
    put(reg, PART)
    assert reg.register(ADMIN, "88.118.8/FREE", [Value(2000, "anything", "")]).version == 1


def test_unknown_draft_and_withdrawn_templates_are_refused_naming_them(
        reg: Registrar) -> None:
    with pytest.raises(InvalidValue, match=r"template 88\.118\.8 version 1\.0 at index "
                                           r"1001, which does not exist"):
        reg.register(ADMIN, "88.118.8/P1", good())
    put(reg, PART, published=False)
    with pytest.raises(InvalidValue, match="which is a draft"):
        reg.register(ADMIN, "88.118.8/P1", good())
    reg.store.change_templates("88.118.8", lambda ex: publish(ex, "1.0", 2, "x"))
    kept = reg.register(ADMIN, "88.118.8/P1", good())
    reg.store.change_templates("88.118.8", lambda ex: withdraw(ex, "1.0", 3, "x"))
    reg.templates.forget("88.118.8", "1.0")
    with pytest.raises(InvalidValue, match="which was withdrawn: no new record"):
        reg.register(ADMIN, "88.118.8/P2", good())
    # A record already based on it stays writable, and is still checked against it.
    after = reg.update(ADMIN, "88.118.8/P1", good(color="blue"), kept.etag)
    with pytest.raises(InvalidValue, match="enum"):
        reg.update(ADMIN, "88.118.8/P1", good(color="green"), after.etag)


def test_updates_merges_partial_deletes_and_rest_puts_check_the_whole_record(
        reg: Registrar) -> None:
    put(reg, PART)
    first = reg.register(ADMIN, "88.118.8/P1", good())
    with pytest.raises(InvalidValue, match="maxLength"):
        reg.update(ADMIN, "88.118.8/P1", [Value(2000, "productName", "y" * 20)],
                   first.etag, merge=True)
    with pytest.raises(InvalidValue, match="required"):
        reg.delete(ADMIN, "88.118.8/P1", first.etag, [2002])
    with pytest.raises(InvalidValue, match="number"):
        reg.put(ADMIN, "88.118.8/P1", [Value(2001, "weight", "x")], indexes=[2001])
    with pytest.raises(InvalidValue, match="date"):
        reg.put(ADMIN, "88.118.8/P9", good(productionDate="soon"))
    # Taking the record off its template is a write like any other.
    assert reg.delete(ADMIN, "88.118.8/P1", first.etag, [1001, 2002]).version == 2


def test_bulk_rows_fail_alone_each_with_its_violations(reg: Registrar) -> None:
    put(reg, PART)
    out = reg.register_many(ADMIN, [BulkRow("88.118.8/B1", tuple(good())),
                                    BulkRow("88.118.8/B2", tuple(good(weight="x",
                                                                      color="pink"))),
                                    BulkRow("88.118.8/B3", tuple(good()))])
    assert [isinstance(r, InvalidValue) for r in out] == [False, True, False]
    failed = out[1]
    assert isinstance(failed, InvalidValue)
    assert rules(failed.violations) == [(2001, "number"), (2003, "enum")]


def test_a_long_list_of_violations_is_cut_in_the_message_but_whole_in_the_list(
        reg: Registrar) -> None:
    items = [item(f"f{n}", 2000 + n, maxLength=1) for n in range(15)]
    put(reg, body(*items))
    values = [Value(1001, "TEMPLATE", "1.0")] + [Value(2000 + n, f"f{n}", "xx")
                                                 for n in range(15)]
    with pytest.raises(InvalidValue) as caught:
        reg.register(ADMIN, "88.118.8/MANY", values)
    assert len(caught.value.violations) == 15
    assert caught.value.message.endswith("; and 5 more")
    assert caught.value.message.count("maxLength") == 10


def test_schema_numbers_are_exact_decimals() -> None:
    t = parse_template(body(item("w", 2000, type="decimal", minimum="0.1", maximum=0.3)))
    assert t.items[0].schema.minimum == Decimal("0.1")
    assert t.items[0].schema.maximum == Decimal("0.3")
    assert check_record(t, [Value(2000, "w", "0.3")]) == []
    assert parse_template(body(item("n", 2000, type="int"))).items[0].schema.precision == 0
