"""Value rules and limits: every bad value is rejected with a message that names it."""

from __future__ import annotations

import pytest

from registry.errors import InvalidValue
from registry.values import (
    MAX_DATA_BYTES,
    MAX_RECORD_DATA_BYTES,
    MAX_VALUES_PER_RECORD,
    AdminRef,
    Permissions,
    Value,
    ValueList,
    ValueRef,
    stamp,
    validate_stamped,
    validate_values,
)


def v(index: int = 1, type_: str = "URL", data: object = "https://x", **kw: object) -> Value:
    return Value(index, type_, data, **kw)  # type: ignore[arg-type]


def test_values_come_back_ordered_by_index() -> None:
    out = validate_values([v(3), v(1), v(2)])
    assert [x.index for x in out] == [1, 2, 3]


@pytest.mark.parametrize(("values", "rule"), [
    ([], "at least one value"),
    ([v(0)], "index 0 is out of range"),
    ([v(2**31)], "out of range"),
    ([v(1), v(1)], "index 1 appears more than once"),
    ([v(type_="")], "empty type"),
    ([v(type_="bad type")], "whitespace"),
    ([v(type_="x" * 129)], "longer than 128"),
    ([v(data="x" * (MAX_DATA_BYTES + 1))], f"more than {MAX_DATA_BYTES} bytes"),
    ([v(i, data="x" * 60000) for i in range(1, 6)], f"at most {MAX_RECORD_DATA_BYTES} bytes"),
    ([v(i) for i in range(1, MAX_VALUES_PER_RECORD + 2)], "at most"),
    ([v(type_="HS_ADMIN")], "must carry admin data"),
    ([v(type_="URL", data=AdminRef("88.118/ADMIN", 300, "1" * 12))], "only allowed in HS_ADMIN"),
    ([v(type_="HS_ADMIN", data=AdminRef("nope", 300, "1" * 12))], "admin handle is invalid"),
    ([v(type_="HS_ADMIN", data=AdminRef("88.118/ADMIN", 300, "12"))], "12 characters"),
    ([v(ttl=-1)], "ttl"),
])
def test_bad_values_are_rejected_naming_the_rule(values: list[Value], rule: str) -> None:
    with pytest.raises(InvalidValue) as err:
        validate_values(values)
    assert rule in err.value.message
    validate_values([v()])  # "URL" is now a type seen to pass: the bulk fast path's case
    with pytest.raises(InvalidValue) as bulk:
        validate_stamped(values, 1_700_000_000)
    assert bulk.value.message == err.value.message


@pytest.mark.parametrize(("values", "plain"), [
    ([v(2, data="二"), v(1, ttl=0), v(3, "productName", "主轴 \"φ\"")], True),
    ([v(1, "HS_PUBKEY", b"\x00\x01")], True),
    ([v(1, data="x", permissions=Permissions(public_read=False))], True),
    ([v(1), v(300, "hs_seckey", "a-secret-of-enough-length")], False),
    ([v(100, "HS_ADMIN", AdminRef("88.118.8/ADMIN", 300, "011111110011"))], False),
    ([v(200, "HS_VLIST", ValueList((ValueRef("88.118.8/ADMIN", 300),)))], False),
])
def test_bulk_validation_is_validate_then_stamp_and_says_which_rows_are_plain(
        values: list[Value], plain: bool) -> None:
    assert validate_stamped(values, 1_700_000_000) == (
        stamp(validate_values(values), 1_700_000_000), plain)


def test_binary_and_admin_values_are_accepted() -> None:
    out = validate_values([v(1, "HS_PUBKEY", b"\x00\x01"),
                           v(100, "HS_ADMIN", AdminRef("88.118.8/ADMIN", 300, "011111110011"))])
    assert out[0].data == b"\x00\x01"


def test_stamp_sets_the_timestamp_and_the_default_ttl() -> None:
    (out,) = stamp([v(ttl=0)], 1_700_000_000)
    assert (out.ttl, out.timestamp) == (86400, 1_700_000_000)


def test_permission_bits_round_trip() -> None:
    for bits in range(16):
        assert Permissions.from_bits(bits).to_bits() == bits
    assert Permissions().to_bits() == 0b0111


def test_value_lists_belong_to_hs_vlist_and_name_valid_members() -> None:
    members = ValueList((ValueRef("88.118.8/ADMIN", 300), ValueRef("0.NA/88.118.8", 200)))
    assert validate_values([Value(200, "HS_VLIST", members)])[0].data == members
    with pytest.raises(InvalidValue, match="only allowed in HS_VLIST"):
        validate_values([Value(1, "DESC", members)])
    with pytest.raises(InvalidValue, match="must carry a value list"):
        validate_values([Value(200, "HS_VLIST", "300:88.118.8/ADMIN")])
    with pytest.raises(InvalidValue, match="member handle is invalid"):
        validate_values([Value(200, "HS_VLIST", ValueList((ValueRef("no-slash", 300),)))])
    with pytest.raises(InvalidValue, match="member index 0"):
        validate_values([Value(200, "HS_VLIST", ValueList((ValueRef("88.118.8/A", 0),)))])


def test_change_log_snapshots_of_text_are_the_bytes_the_generic_encoder_writes() -> None:
    from registry.record import _ENCODER, value_to_json, values_from_json, values_to_json

    values = (v(1, data='引号"\\反斜杠\n\t\x00\x1f\u2028 😀 \ud800'), v(2, "名称", ""),
              v(3, "b", b"\x00\xff"), v(4, "t", "x", ttl=60, timestamp=7,
                                        permissions=Permissions(False, True, False, True)),
              v(100, "HS_ADMIN", AdminRef("88.118.8/ADMIN", 300, "011111110011")),
              v(200, "HS_VLIST", ValueList((ValueRef("88.118.8/ADMIN", 300),))))
    text = values_to_json(values)
    assert text == _ENCODER.encode([value_to_json(x) for x in values])
    assert values_from_json(text) == values
    assert values_to_json(values) == text  # the second time from remembered heads
    assert values_to_json(()) == "[]"
