"""The identifier grammar: what parses, what is rejected and why, how matching works."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import InvalidIdentifier
from registry.identifier import Handle, Prefix, ascii_casefold


def test_parse_splits_at_the_first_slash_and_keeps_the_registered_spelling() -> None:
    h = Handle.parse("88.118.8/EQ/CNC-7")
    assert (h.prefix, h.suffix, str(h)) == ("88.118.8", "EQ/CNC-7", "88.118.8/EQ/CNC-7")
    assert h.key == "88.118.8/eq/cnc-7"
    assert h.prefix_key == "88.118.8"


def test_matching_is_case_insensitive_for_ascii_only() -> None:
    assert Handle.parse("88.118.8/PN-0001").key == Handle.parse("88.118.8/pn-0001").key
    # Non-ASCII letters keep their case: the Handle default folds ASCII only.
    assert Handle.parse("88.118.8/Ä").key != Handle.parse("88.118.8/ä").key


def test_suffix_is_nfc_normalised() -> None:
    decomposed = "88.118.8/Cafe\u0301"
    composed = "88.118.8/Caf\u00e9"
    assert Handle.parse(decomposed) == Handle.parse(composed)
    assert Handle.parse(decomposed).suffix == "Caf\u00e9"


@pytest.mark.parametrize(("text", "rule"), [
    ("", "identifier is empty"),
    ("no-slash", "no '/'"),
    ("/suffix", "prefix is empty"),
    ("88.118.8/", "suffix is empty"),
    ("88..118/x", "segment 2 is empty"),
    ("88.1 18/x", "segment 2"),
    ("88.11_8/x", "may only contain"),
    (".".join(["1"] * 11) + "/x", "more than 10 segments"),
    ("8" * 129 + "/x", "longer than 128"),
    ("88.118.8/a\x00b", "control character"),
    ("88.118.8/a\tb", "control character"),
    ("88.118.8/a b", "whitespace"),
    ("88.118.8/a\u3000b", "whitespace"),
    ("88.118.8/a\u200bb", "control character"),
    ("88.118.8/" + "x" * 513, "longer than 512 bytes"),
    ("88.118.8/" + "主" * 171, "longer than 512 bytes"),
    ("88.118.8/\ud800", "not valid UTF-8"),
])
def test_malformed_identifiers_name_the_rule_they_break(text: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        Handle.parse(text)
    assert rule in err.value.message


def test_invalid_utf8_bytes_are_rejected_not_crashed_on() -> None:
    with pytest.raises(InvalidIdentifier, match="not valid UTF-8"):
        Handle.from_bytes(b"88.118.8/\xff\xfe")


def test_suffix_of_exactly_512_bytes_is_accepted() -> None:
    assert len(Handle.parse("88.118.8/" + "x" * 512).suffix) == 512


def test_non_string_input_is_rejected() -> None:
    with pytest.raises(InvalidIdentifier):
        Handle.parse(42)


def test_prefix_contains_itself_and_its_children_only() -> None:
    p = Prefix.parse("88.118")
    assert p.contains("88.118") and p.contains("88.118.8")
    assert not p.contains("88.1180") and not p.contains("88.11")


def test_ascii_casefold_leaves_other_scripts_alone() -> None:
    assert ascii_casefold("AbC-Ω-主") == "abc-Ω-主"


_segment = st.text(alphabet="0123456789abcXYZ-", min_size=1, max_size=6)
_prefix = st.lists(_segment, min_size=1, max_size=10).map(".".join).filter(lambda p: len(p) <= 128)
_suffix = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp")),
    min_size=1, max_size=60).filter(lambda s: not any(c.isspace() for c in s))


@given(_prefix, _suffix)
@settings(max_examples=300, deadline=None)
def test_parse_of_format_round_trips(prefix: str, suffix: str) -> None:
    h = Handle.parse(f"{prefix}/{suffix}")
    again = Handle.parse(str(h))
    assert again == h
    assert again.key == h.key


@given(st.text(max_size=80))
@settings(max_examples=500, deadline=None)
def test_no_text_crashes_the_parser(text: str) -> None:
    try:
        h = Handle.parse(text)
    except InvalidIdentifier as exc:
        assert exc.message
    else:
        assert "/" in str(h)


@given(st.binary(max_size=80))
@settings(max_examples=300, deadline=None)
def test_no_bytes_crash_the_parser(raw: bytes) -> None:
    try:
        Handle.from_bytes(raw)
    except InvalidIdentifier as exc:
        assert exc.message
