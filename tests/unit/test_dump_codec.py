"""The whole-store dump format (registry/dump.py): lines round-trip, the digest pins
handles and values, and a bad line is refused naming its number. No I/O."""

from __future__ import annotations

import pytest

from registry import dump
from registry.identifier import Handle
from registry.record import Record
from registry.values import AdminRef, Permissions, Value, ValueList, ValueRef

PRIVATE = Permissions(public_read=False)
VALUES = (
    Value(1, "productName", "主轴 轴承", 86400, 1_700_000_000, Permissions()),
    Value(2, "blob", b"\x00\xff", 60, 1_700_000_001, Permissions()),
    Value(100, "HS_ADMIN", AdminRef("88.118/ADMIN", 300, "111111111111"), 86400, 1, Permissions()),
    Value(200, "HS_VLIST", ValueList((ValueRef("88.118/A", 300), ValueRef("88.118/B", 301))),
          86400, 1, Permissions()),
    Value(300, "HS_SECKEY", "scrypt$hash-as-stored", 86400, 1, PRIVATE),
)


def test_a_record_line_round_trips_every_kind_of_value_unchanged() -> None:
    record = Record(Handle.parse("88.118.8/PN-主轴"), VALUES, 3, 17, 1_700_000_000)
    line = dump.record_line(record)
    assert "主轴" in line  # UTF-8 as it is, not \u escapes
    parsed = dump.parse_line(line, 7)
    assert parsed == dump.RecordLine("88.118.8/PN-主轴", 3, VALUES)


def test_the_header_and_trailer_round_trip_and_say_what_is_not_exported() -> None:
    header = dump.Header("abc", "sqlite", 6, 42, 1_700_000_000)
    line = dump.header_line(header)
    assert dump.parse_header(line) == header
    assert "change log" in line and "audit log" in line
    trailer = dump.Trailer(2, {"prefixes": 1, "principals": 0, "tokens": 3,
                               "applications": 0}, "sha256:00")
    assert dump.parse_line(dump.trailer_line(trailer), 9) == trailer


def test_a_table_row_round_trips_and_an_unknown_table_is_refused() -> None:
    row = ("88.118.8", "88.118.8", "300:88.118.8/ADMIN", 5)
    assert dump.parse_line(dump.row_line("prefixes", row), 2) == dump.RowLine("prefixes", row)
    with pytest.raises(dump.DumpError):
        dump.row_line("audit", ())
    with pytest.raises(dump.DumpError, match="line 4: unknown table"):
        dump.parse_line('{"table": "audit", "row": []}', 4)


def test_the_digest_depends_on_handles_values_and_their_order() -> None:
    def digest(*items: tuple[str, tuple[Value, ...]]) -> str:
        d = dump.Digest()
        for handle, values in items:
            d.add(handle, values)
        return d.hexdigest()

    a, b = ("88.118.8/A", VALUES[:1]), ("88.118.8/B", VALUES[1:2])
    assert digest(a, b) == digest(a, b)
    assert digest(a, b) != digest(b, a)
    assert digest(a) != digest(("88.118.8/a", VALUES[:1]))
    changed = Value(1, "productName", "主轴 轴承!", 86400, 1_700_000_000, Permissions())
    assert digest(a) != digest(("88.118.8/A", (changed,)))


@pytest.mark.parametrize(("text", "words"), [
    ("not json", "line 5: not JSON"),
    ("[1, 2]", "line 5: not a JSON object"),
    ('{"handle": "88.118.8/A"}', "line 5: malformed"),
    ('{"something": 1}', "line 5: neither a record"),
])
def test_a_malformed_line_is_refused_naming_its_number(text: str, words: str) -> None:
    with pytest.raises(dump.DumpError, match=words):
        dump.parse_line(text, 5)


def test_a_file_that_is_not_a_dump_or_of_another_format_version_is_refused() -> None:
    with pytest.raises(dump.DumpError, match="not an idnode dump"):
        dump.parse_header('{"handle": "88.118.8/A"}')
    line = dump.header_line(dump.Header("abc", "sqlite", 6, 0, 0)).replace(
        '"format_version":1', '"format_version":2')
    with pytest.raises(dump.DumpError, match="format version 2"):
        dump.parse_header(line)
