"""The whole-store dump format of ``idnode db export`` / ``import`` (node/cli/db.py):
JSON lines, no I/O here.

1. a header: ``{"format": "idnode-dump", "format_version": 1, "store_id", "backend",
   "schema_version", "last_sequence", "exported_at", "not_exported"}``;
2. rows of the other tables, as stored (hashes of secrets stay hashes):
   ``{"table": "prefixes"|"principals"|"tokens"|"applications", "row": [...]}``;
3. one line per record, in key order: ``{"handle", "version", "values"}``, the values
   in the change log's JSON codec (registry/record.py ``value_to_json``; an HS_SECKEY
   value carries the hash the store holds, never a secret);
4. a trailer: ``{"end": true, "records": n, "rows": {table: n}, "digest": "sha256:…"}``.

The digest covers every record's handle and values (:class:`Digest`), so an import
checks the file against the trailer and then the store it wrote against both. A file
without its trailer was cut short.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from registry.record import Record, value_from_json, value_to_json
from registry.values import Value

FORMAT = "idnode-dump"
FORMAT_VERSION = 1
TABLES = ("prefixes", "principals", "tokens", "applications", "templates")
NOT_EXPORTED = ("audit log", "change log", "idempotency keys")


class DumpError(ValueError):
    """A line is not what the format says; the message names the line."""


@dataclass(frozen=True)
class Header:
    store_id: str
    backend: str
    schema_version: int
    last_sequence: int
    exported_at: int


@dataclass(frozen=True)
class RecordLine:
    handle: str
    version: int
    values: tuple[Value, ...]


@dataclass(frozen=True)
class RowLine:
    table: str
    row: tuple[Any, ...]


@dataclass(frozen=True)
class Trailer:
    records: int
    rows: dict[str, int]
    digest: str


@dataclass
class Digest:
    """SHA-256 over every record's handle and values, in the dump's order."""

    _h: Any = field(default_factory=hashlib.sha256)
    records: int = 0

    def add(self, handle: str, values: tuple[Value, ...]) -> None:
        self._h.update(_compact([handle, [value_to_json(v) for v in values]]).encode())
        self._h.update(b"\n")
        self.records += 1

    def hexdigest(self) -> str:
        return "sha256:" + str(self._h.hexdigest())


def _compact(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def header_line(h: Header) -> str:
    return _compact({"format": FORMAT, "format_version": FORMAT_VERSION,
                     "store_id": h.store_id, "backend": h.backend,
                     "schema_version": h.schema_version, "last_sequence": h.last_sequence,
                     "exported_at": h.exported_at, "not_exported": list(NOT_EXPORTED)})


def record_line(record: Record) -> str:
    return _compact({"handle": str(record.handle), "version": record.version,
                     "values": [value_to_json(v) for v in record.values]})


def row_line(table: str, row: tuple[object, ...]) -> str:
    if table not in TABLES:
        raise DumpError(f"a dump carries no table {table!r}")
    return _compact({"table": table, "row": list(row)})


def trailer_line(t: Trailer) -> str:
    return _compact({"end": True, "records": t.records, "rows": t.rows, "digest": t.digest})


def parse_header(text: str) -> Header:
    """The first line; DumpError unless it is this format's header."""
    obj = _object(text, 1)
    if obj.get("format") != FORMAT:
        raise DumpError("line 1: not an idnode dump (no idnode-dump header)")
    if obj.get("format_version") != FORMAT_VERSION:
        raise DumpError(f"line 1: dump format version {obj.get('format_version')!r} is not "
                        f"{FORMAT_VERSION}, the one this build reads")
    try:
        return Header(str(obj["store_id"]), str(obj["backend"]), int(obj["schema_version"]),
                      int(obj["last_sequence"]), int(obj["exported_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DumpError(f"line 1: the header lacks or garbles {exc}") from None


def parse_line(text: str, number: int) -> RecordLine | RowLine | Trailer:
    """A line after the header; DumpError naming ``number`` when it is malformed."""
    obj = _object(text, number)
    try:
        if "handle" in obj:
            values = tuple(value_from_json(item) for item in obj["values"])
            return RecordLine(str(obj["handle"]), int(obj["version"]), values)
        if "table" in obj:
            if obj["table"] not in TABLES:
                raise DumpError(f"line {number}: unknown table {obj['table']!r}")
            return RowLine(str(obj["table"]), tuple(obj["row"]))
        if obj.get("end") is True:
            rows = {str(k): int(v) for k, v in dict(obj["rows"]).items()}
            return Trailer(int(obj["records"]), rows, str(obj["digest"]))
    except DumpError:
        raise
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise DumpError(f"line {number}: malformed ({type(exc).__name__}: {exc})") from None
    raise DumpError(f"line {number}: neither a record, a table row nor the trailer")


def _object(text: str, number: int) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpError(f"line {number}: not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise DumpError(f"line {number}: not a JSON object")
    return obj
