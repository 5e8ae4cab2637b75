"""Prefix applications without I/O: the unified social credit code (GB 32100-2015), the
other details an enterprise gives, and the paging tokens of a listing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from registry.applications import (
    ApplicationState,
    Enterprise,
    check_application_id,
    check_credit_code,
    check_enterprise,
    check_reason,
    decode_page_token,
    encode_page_token,
    fingerprint,
    page_size,
)
from registry.errors import InvalidArgument
from registry.identifier import Prefix

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def with_check(body: str) -> str:
    """The standard's computation, written out independently of the code under test:
    weights 3^(i-1) mod 31, check value 31 - (sum mod 31), where 31 stands for 0."""
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(ALPHABET.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + ALPHABET[(31 - total % 31) % 31]


# Codes computed with the algorithm (bodies chosen to exercise letters, a check value of
# 0 and of 30), and the example code of the standard's explanatory material.
VALID = [with_check("91350100M000100Y4"), with_check("9111010855138508Q"),
         with_check("Y1440300MA5DXWTRU"), with_check("12100000400000000"),
         "91350100M000100Y43"]
ACME = Enterprise("某某机械有限公司", VALID[0], "张三", "13800138000", "zhang@example.com",
                  "C34 通用设备制造业", "福建省福州市")


def error(call: object) -> str:
    with pytest.raises(InvalidArgument) as caught:
        call()  # type: ignore[operator]
    return caught.value.message


@pytest.mark.parametrize("code", VALID)
def test_credit_codes_with_the_gb_32100_check_character_are_accepted(code: str) -> None:
    assert check_credit_code(code) == code


def test_the_check_values_zero_and_thirty_are_both_reachable() -> None:
    # '0' is what 31 (sum divisible by 31) becomes; 'Y' is value 30.
    checks = {with_check(f"9111010855138{n:04d}")[-1] for n in range(2000)}
    assert {"0", "Y"} <= checks


def test_a_lower_case_or_padded_credit_code_is_normalised() -> None:
    assert check_credit_code(f"  {VALID[0].lower()} ") == VALID[0]


def test_a_wrong_check_character_names_the_expected_one() -> None:
    good = VALID[0]
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    message = error(lambda: check_credit_code(wrong))
    assert "check character (position 18)" in message
    assert f"gives {good[-1]!r}" in message and "GB 32100-2015" in message


def test_a_swapped_pair_of_characters_fails_the_check() -> None:
    code = VALID[1]
    swapped = code[:3] + code[4] + code[3] + code[5:]
    assert swapped != code
    assert "check character" in error(lambda: check_credit_code(swapped))


@pytest.mark.parametrize(("code", "rule"), [
    ("", "credit_code is required"),
    ("   ", "credit_code is required"),
    ("91350100M000100Y4", "must be 18 characters long (GB 32100-2015), got 17"),
    ("91350100M000100Y433", "got 19"),
    ("91350100I000100Y43", "character 9 ('I') is not allowed"),
    ("91350100O000100Y43", "character 9 ('O') is not allowed"),
    ("9135010SM000100Y43", "character 8 ('S') is not allowed"),
    ("91350100M000100V43", "character 16 ('V') is not allowed"),
    ("Z1350100M000100Y43", "character 1 ('Z') is not allowed"),
    ("91350100M000100Y4-", "character 18 ('-') is not allowed"),
    ("91350100M0001００Y43", "character 14 ('０') is not allowed"),
])
def test_a_malformed_credit_code_names_the_rule_it_breaks(code: str, rule: str) -> None:
    message = error(lambda: check_credit_code(code))
    assert message.startswith("credit_code")
    assert rule in message


def test_the_enterprise_details_are_trimmed_and_the_code_normalised() -> None:
    padded = replace(ACME, name=f" {ACME.name} ", credit_code=ACME.credit_code.lower(),
                     contact_email=" zhang@example.com ")
    assert check_enterprise(padded) == ACME
    assert check_enterprise(replace(ACME, address="")).address == ""


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("name", "", "name is required"),
    ("name", "厂" * 201, "name is at most 200 characters, got 201"),
    ("name", "某某\u200b机械", "name may not contain control, format"),
    ("contact_name", " ", "contact_name is required"),
    ("contact_name", "张\n三", "contact_name may not contain control"),
    ("contact_phone", "", "contact_phone is required"),
    ("contact_phone", "call me", "contact_phone must be a telephone number"),
    ("contact_phone", "1234", "contact_phone must be a telephone number"),
    ("contact_phone", "1" * 33, "contact_phone is at most 32 characters"),
    ("contact_email", "", "contact_email is required"),
    ("contact_email", "zhang.example.com", "contact_email must be an e-mail address"),
    ("contact_email", "zhang@localhost", "contact_email must be an e-mail address"),
    ("contact_email", "a b@example.com", "contact_email must be an e-mail address"),
    ("industry", "", "industry is required"),
    ("address", "路" * 301, "address is at most 300 characters"),
])
def test_each_enterprise_field_has_a_rule_and_the_message_names_the_field(
        field: str, value: str, rule: str) -> None:
    assert rule in error(lambda: check_enterprise(replace(ACME, **{field: value})))


@pytest.mark.parametrize("phone", ["13800138000", "+86 10-1234-5678", "(010) 6552 9988",
                                   "0591-87654321"])
def test_ordinary_telephone_spellings_are_accepted(phone: str) -> None:
    assert check_enterprise(replace(ACME, contact_phone=phone)).contact_phone == phone


def test_a_rejection_needs_a_reason_and_an_approval_note_is_optional() -> None:
    assert "reason is required" in error(lambda: check_reason("reason", "  ",
                                                              required=True))
    assert check_reason("note", "", required=False) == ""
    assert "at most 1000" in error(lambda: check_reason("note", "x" * 1001, required=False))


def test_an_application_id_is_required_and_bounded() -> None:
    assert "application_id is required" in error(lambda: check_application_id(""))
    assert "printable ASCII" in error(lambda: check_application_id("x" * 65))
    assert check_application_id(" 0123abcd ") == "0123abcd"


def test_the_fingerprint_covers_the_prefix_and_every_detail() -> None:
    base = fingerprint(Prefix.parse("88.118.8"), ACME)
    assert fingerprint(Prefix.parse("88.118.8"), ACME) == base
    assert fingerprint(Prefix.parse("88.118.9"), ACME) != base
    assert fingerprint(Prefix.parse("88.118.8"), replace(ACME, address="别处")) != base


def test_page_tokens_continue_the_listing_they_came_from_only() -> None:
    token = encode_page_token(ApplicationState.PENDING, 42)
    assert decode_page_token(token, ApplicationState.PENDING) == 42
    assert decode_page_token("", None) == 0
    assert "another listing" in error(lambda: decode_page_token(token, None))
    for bad in ("!!", "bm90IGEgdG9rZW4", encode_page_token(None, 0)):
        assert "malformed" in error(lambda bad=bad: decode_page_token(bad, None))
    assert page_size(0) == 50 and page_size(500) == 500
    assert "at most 500" in error(lambda: page_size(501))
