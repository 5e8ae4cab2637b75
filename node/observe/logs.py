"""Structured logs: JSON lines in containers (or when asked), readable text in a terminal.

One line per write (the audit log: principal, identifier, request id) and per error;
secrets never reach a log line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

AUDIT = "idnode.audit"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = ""
        if isinstance(fields, dict):
            extra = " " + " ".join(f"{k}={v}" for k, v in fields.items())
        line = (time.strftime("%H:%M:%S", time.localtime(record.created))
                + f" {record.levelname:<7} {record.getMessage()}{extra}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
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
