"""Log lines cannot be forged or blown up by what a caller sends (handles, request ids)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

from node.observe.logs import JsonFormatter, TextFormatter

MAX_FIELD_CHARS = 512  # node.observe.logs.MAX_FIELD_CHARS

FORGED = "88.118.8/X\n2026-11-29T01:15:04Z AUDIT forged write principal=300:88.118/ADMIN"
SNEAKY = "a\rb\tc\x00d\x1be\x7ff\x85g\u2028h\u2029i\x0bj\x0ck\x1cl"


def record(message: str = "write", exc: bool = False, **fields: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad handle " + FORGED)
        except ValueError:
            exc_info = sys.exc_info()
    r = logging.LogRecord("idnode.audit", logging.INFO, __file__, 1, message, None, exc_info)
    r.fields = fields
    return r


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()],
                         ids=["text", "json"])
@pytest.mark.parametrize("value", [FORGED, SNEAKY])
def test_a_field_with_line_breaks_yields_exactly_one_line(formatter: logging.Formatter,
                                                          value: str) -> None:
    line = formatter.format(record(handle=value, request_id=value, principal="300:x/ADMIN"))
    assert len(line.splitlines()) == 1, line
    assert "\n" not in line and "\r" not in line


def test_text_format_escapes_control_characters_visibly() -> None:
    line = TextFormatter().format(record(handle=FORGED, request_id=SNEAKY))
    assert "handle=\"88.118.8/X\\n2026-11-29T01:15:04Z AUDIT forged write " in line
    for escaped in ("\\r", "\\t", "\\x00", "\\x1b", "\\x7f", "\\x85", "\\u2028", "\\u2029",
                    "\\x0b", "\\x0c", "\\x1c"):
        assert escaped in line, escaped


def test_text_format_cannot_forge_fields_on_the_same_line() -> None:
    line = TextFormatter().format(record(handle="x principal=300:88.118/ADMIN", version=3))
    assert ' handle="x principal=300:88.118/ADMIN" version=3' in line
    assert line.count("=") == 3  # handle=, principal= inside the quotes, version=


def test_text_format_escapes_the_message_and_indents_tracebacks() -> None:
    line = TextFormatter().format(record(message="refused " + FORGED, exc=True))
    lines = line.splitlines()
    assert "\\n2026" in lines[0]
    assert all(extra.startswith("    ") for extra in lines[1:]), lines


def test_json_format_is_escaped_and_round_trips() -> None:
    line = JsonFormatter().format(record(handle=FORGED, request_id=SNEAKY, version=7))
    assert len(line.splitlines()) == 1
    out = json.loads(line)
    assert out["handle"] == FORGED and out["request_id"] == SNEAKY and out["version"] == 7
    assert {"ts", "level", "logger", "event"} <= set(out)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()],
                         ids=["text", "json"])
def test_a_million_character_value_is_truncated(formatter: logging.Formatter) -> None:
    huge = "A" * 1_000_000
    line = formatter.format(record(message="write refused", handle=huge, code="INVALID"))
    assert len(line) < 2 * MAX_FIELD_CHARS
    assert f"…(+{1_000_000 - MAX_FIELD_CHARS} chars)" in line
    assert "A" * MAX_FIELD_CHARS in line and "A" * (MAX_FIELD_CHARS + 1) not in line
    assert "INVALID" in line  # the other fields are kept


def test_short_values_and_field_names_are_unchanged() -> None:
    fields: dict[str, Any] = {"operation": "register", "handle": "88.118.8/PN-0001", "version": 1,
              "sequence": 42, "request_id": "import-0001"}
    line = TextFormatter().format(record(**fields))
    assert line.endswith(" write operation=register handle=88.118.8/PN-0001 version=1 "
                         "sequence=42 request_id=import-0001")
    assert {k: v for k, v in json.loads(JsonFormatter().format(record(**fields))).items()
            if k in fields} == fields
