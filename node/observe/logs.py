"""Structured logs: JSON lines in containers (or when asked), readable text in a terminal.

One line per write (the audit log: principal, identifier, request id) and per error;
secrets never reach a log line.

A log line is one record, whatever a caller sent: in the text format every control
character (C0, DEL, C1, the Unicode line and paragraph separators) in the message and in
field values is escaped, so a handle or request id cannot start a forged line; the JSON
format escapes them through ``json.dumps`` (plus the separators ``json.dumps`` leaves
raw). Every string field value is cut to ``MAX_FIELD_CHARS`` in both formats, so a
refused megabyte-long handle costs a line, not a megabyte.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

AUDIT = "idnode.audit"
MAX_FIELD_CHARS = 512

# C0 controls, DEL, C1 controls (NEL among them) and U+2028/U+2029 (line/paragraph
# separators), which str.splitlines() and many log viewers treat as line breaks.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What json.dumps(ensure_ascii=False) leaves raw although a line splitter may break there.
_JSON_RAW_RE = re.compile("[\x7f-\x9f\u2028\u2029]")


def truncate(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``value`` cut to ``limit`` characters, with a marker saying how much was cut."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…(+{len(value) - limit} chars)"


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(value: str) -> str:
    """Control characters and line separators as visible escapes; backslashes doubled
    first, so an escape in the output always means a control character in the value."""
    return _CONTROL_RE.sub(_escape_char, value.replace("\\", "\\\\"))


def _text_value(value: Any) -> str:
    text = escape(truncate(value if isinstance(value, str) else str(value)))
    if not text or any(c in text for c in ' "='):
        # logfmt quoting: a value with a space or '=' cannot pose as further fields.
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _json_value(value: Any) -> Any:
    return truncate(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": truncate(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: _json_value(v) for k, v in fields.items()})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        line = json.dumps(out, ensure_ascii=False, default=lambda o: truncate(str(o)))
        # Those characters can only occur inside JSON strings here, where \uXXXX is valid.
        return _JSON_RAW_RE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", line)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = ""
        if isinstance(fields, dict):
            extra = " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        line = (time.strftime("%H:%M:%S", time.localtime(record.created))
                + f" {record.levelname:<7} {escape(truncate(record.getMessage()))}{extra}")
        if record.exc_info:
            # A traceback spans lines by nature; indented, none of them looks like a record.
            line += "".join("\n    " + escape(part)
                            for part in self.formatException(record.exc_info).splitlines())
        return line


def configure(log_format: str = "auto", level: str = "info") -> None:
    """``auto`` is text on a terminal and JSON otherwise (containers, files)."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger("idnode")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def event(logger: logging.Logger, message: str, level: int = logging.INFO,
          **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": fields})
