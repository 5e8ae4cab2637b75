"""Bulk and scripting commands of ``idnode``: import, export, list, update, delete.

``idnode import FILE… --prefix P`` streams a CSV or JSONL file into ``Registry.BulkRegister``
with constant memory (the only state that grows with the file is 8 bytes per identifier,
kept to reject an identifier that appears twice in the file).

How an import runs
------------------
* **Encoding.** Before anything is written the whole file is decoded once (1 MB at a
  time): UTF-8 (a BOM is stripped), else GB18030 (a superset of GBK/GB2312), unless
  ``--encoding`` names one. A file that decodes in neither is refused (exit 2) with the
  line of the first bad byte; the summary says which encoding was used.
* **CSV.** A header row. The identifier is made from the column ``suffix`` (under
  ``--prefix``), or ``handle`` (whole identifiers), or ``--suffix-column NAME``, or
  ``--suffix-pattern 'PN-{serial}'`` (``{column}`` is replaced by the row's cell). Every
  other column is a text value whose type is the header and whose index is 1, 2, 3… in
  column order; ``--map COLUMN=TYPE[:INDEX]`` (or ``COLUMN=-`` to leave a column out)
  and ``--mapping FILE`` (TOML or JSON: ``suffix_column``, ``suffix_pattern`` and a
  ``columns`` table of ``COLUMN = "TYPE[:INDEX]"`` or ``"-"``) say otherwise; flags win
  over the file. Columns without an explicit index take the lowest free ones, in column
  order. Empty (or blank) cells are skipped.
* **JSONL.** One Handle REST record per line, ``{"handle": "88.118.8/PN-1", "values":
  [{"index": 1, "type": "URL", "data": "https://…"}]}``; ``data`` is a string or
  ``{"format": string|base64|hex|admin|vlist, "value": …}``, as ``PUT /api/handles``
  takes it. A ``handle`` without ``/`` is a suffix under ``--prefix``.
* **Rows.** Each row is checked locally first (identifier grammar, under ``--prefix``,
  ragged rows, no values, an identifier already seen in the file); a bad row goes to the
  rejects file and is not sent. Value limits are checked by the node (its reason is
  mapped back to the column), or locally by ``--dry-run``. Good rows go to the node in
  messages of up to 500 rows, ``--chunk-rows`` rows (default and maximum 10,000) per
  call, one call at a time while the next chunk is read and built.
* **Checkpoint.** After each call is acknowledged, in file order, the checkpoint
  (``FILE.idnode-checkpoint.json`` beside the input, or ``--checkpoint PATH``) records
  the input's identity (path, size, mtime, SHA-256 of the first MB), a digest of the
  options, the number of rows done and the counters. ``--resume`` skips exactly those
  rows; a checkpoint that does not match the file or the options is refused (exit 2).
  The checkpoint is removed when the file has been processed to the end.
* **Idempotence.** Every call asks the node to report rows it holds exactly as sent
  (``report_unchanged``: the values the row would store against the caller's own view
  of the record, timestamps aside); those are **unchanged** (not an error) without
  being read back. Any other row the node already holds comes back ``ALREADY_EXISTS``
  (from an older node: every one); the stored record is then read (``BatchResolve``,
  100 a call, four calls at once, with the credentials so private values count) and
  compared value by value (index, type, data, ttl, permissions): equal is
  **unchanged**, different is a **conflict**
  (reported in the rejects file, never overwritten unless ``--update-existing``, which
  replaces the record guarded by its current etag with a request id derived from the
  file and line). Running the same file twice changes nothing and exits 0. Rows that an
  interrupted call had already stored are counted as unchanged when resumed.
* **Rejects file.** ``FILE.rejects.csv`` (or ``--rejects PATH``), UTF-8 CSV with the
  columns ``line,column,identifier,reason``; written only when something was rejected.
* **Dry run.** ``--dry-run`` does every local check and writes nothing to the node (no
  checkpoint either); rows naming a metadata template at index 1001 are checked
  against it by the node, so only on a real run (their violations go to the rejects
  file).

Exit codes: **0** every row stored or unchanged; **1** some rows rejected or
conflicting (see the rejects file); **2** usage or input error (no suffix column, empty
file, undecodable file, checkpoint mismatch, credentials refused) before anything was
written; **3** the node was unreachable or unavailable after ``--retries`` attempts (run
the same command with ``--resume`` to finish); **130** interrupted (Ctrl-C; ``--resume``
finishes too).
"""

from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import io
import json
import os
import re
import sys
import time
import tomllib
import urllib.parse
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import IO, Annotated, Any

import grpc
import typer

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from node.cli.options import ClientConfig, Identity, Secret, Target, Token

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_CHUNK_ROWS = 10_000  # the node reports at most 10,000 failures per call
ROWS_PER_MESSAGE = 500
CHARS_PER_MESSAGE = 1_000_000  # x3 bytes at most: under the node's 4 MB message limit
IN_FLIGHT = 1  # calls at the node at once; the next chunk is built meanwhile
BATCH_RESOLVE = 100
RESOLVE_IN_FLIGHT = 4  # BatchResolve calls at once while reconciling existing rows
HEAD_BYTES = 1 << 20
CHECKPOINT_VERSION = 1
CALL_TIMEOUT_SECONDS = 300.0
GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 8 * 1024 * 1024)]
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.RESOURCE_EXHAUSTED}
DEFAULT_TTL = 86400
DEFAULT_PERMS = (True, True, True, False)
EXIT_OK, EXIT_REJECTS, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130



class UsageError(Exception):
    """Bad options or input found before anything was written (exit 2)."""


class NodeUnavailable(Exception):
    """The node did not answer after the retries (exit 3)."""


class StopForTest(Exception):
    """--test-stop-after-chunks: behave as a process killed after N acknowledged calls."""


def _die(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"idnode: {message}", err=True)
    raise typer.Exit(code)


def auth_metadata(identity: str, secret: str, token: str = "") -> tuple[tuple[str, str], ...]:
    """``authorization`` metadata: Basic for identity+secret, else Bearer for a token."""
    if identity:
        user = urllib.parse.quote(identity, safe="")
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        return (("authorization", f"Basic {basic}"),)
    if token:
        return (("authorization", f"Bearer {token}"),)
    return ()


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=GRPC_OPTIONS)


# --- encodings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    codec: str  # what Python decodes with
    label: str  # what the summary says


def _scan(path: Path, codec: str) -> tuple[int, int] | None:
    """Decode the whole file 1 MB at a time; None when it decodes, else (line, byte offset)
    of the first bad byte."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset = 0
    lines = 1
    with path.open("rb") as f:
        while True:
            chunk = f.read(HEAD_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.start counts in the decoder's pending bytes plus this chunk
                pending = len(exc.object) - len(chunk)
                at = max(0, exc.start - pending)
                return lines + chunk[:at].count(b"\n"), offset + at
            if not chunk:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")


def detect_encoding(path: Path, given: str | None) -> tuple[Encoding, str]:
    """(the encoding, a warning or ""); raises UsageError when the file does not decode."""
    with path.open("rb") as f:
        head = f.read(4)
    bom = head.startswith(codecs.BOM_UTF8)
    if given:
        try:
            name = codecs.lookup(given).name
        except LookupError:
            raise UsageError(f"--encoding {given!r} is not an encoding Python knows "
                             "(try utf-8 or gb18030)") from None
        codec = "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name
        bad = _scan(path, codec)
        if bad is not None:
            raise UsageError(f"{path}: line {bad[0]} (byte {bad[1]}) is not valid {given}; "
                             "check --encoding (leave it out to detect UTF-8 or GB18030)")
        warning = ""
        if not name.startswith("utf-8") and _scan(path, "utf-8") is None \
                and not _is_ascii(path):
            warning = (f"{path} is valid UTF-8 but --encoding {given} was given: if "
                       "Chinese text comes out garbled, leave --encoding out")
        return Encoding(codec, name + (" (BOM)" if bom and codec == "utf-8-sig" else "")), \
            warning
    if _scan(path, "utf-8-sig") is None:
        return Encoding("utf-8-sig", "utf-8 (BOM)" if bom else "utf-8"), ""
    bad_utf8 = _scan(path, "utf-8-sig")
    if _scan(path, "gb18030") is None:
        return Encoding("gb18030", "gb18030 (detected; not UTF-8)"), ""
    assert bad_utf8 is not None
    raise UsageError(f"{path} is neither UTF-8 (line {bad_utf8[0]}, byte {bad_utf8[1]} is "
                     "not valid) nor GB18030; name the encoding with --encoding")


def _count_lines(path: Path) -> int:
    lines = 1
    with path.open("rb") as f:
        while chunk := f.read(HEAD_BYTES):
            lines += chunk.count(b"\n")
    return lines


def _is_ascii(path: Path) -> bool:
    with path.open("rb") as f:
        while chunk := f.read(HEAD_BYTES):
            if not chunk.isascii():
                return False
    return True


# --- rows ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Reject:
    line: int
    column: str
    identifier: str
    reason: str


@dataclass(slots=True)
class Row:
    """One record of the input: an identifier and its values, or why it is refused."""

    line: int
    handle: str
    # (index, type, text) triples from CSV, or idnode.v1.Value messages from JSONL; once
    # queued, the values of the BulkRow sent (one protobuf arena per 500-row message)
    values: Any = None
    key: str = ""
    reject: Reject | None = None
    chars: int = 0


class SeenKeys:
    """Identifiers met so far, 8 bytes of hash each, in an open-addressing table (an
    ``array('Q')``, linear probing) sized from the file's line count so it seldom grows:
    16 MB for a million rows, no Python object per identifier. A 63-bit hash collision
    (odds ~1e-7 per million rows) would reject a row as a duplicate; never overwrite."""

    def __init__(self, expected: int = 0) -> None:
        size = 1 << max(12, (max(expected, 1) * 2 - 1).bit_length())
        self._slots = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._count = 0

    def add(self, key: str) -> bool:
        """Record ``key``; False when it was seen before."""
        h = (hash(key) & 0xFFFFFFFFFFFFFFFF) | 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        i = h & mask
        while True:
            found = slots[i]
            if found == 0:
                break
            if found == h:
                return False
            i = (i + 1) & mask
        slots[i] = h
        self._count += 1
        if self._count * 10 > mask * 7:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        size = 2 * len(old)
        self._slots = slots = array("Q", bytes(8 * size))
        self._mask = mask = size - 1
        for h in old:
            if h:
                i = h & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = h


@dataclass(frozen=True)
class Plan:
    """How CSV columns become an identifier and values."""

    suffix_at: int | None  # column of the suffix
    handle_at: int | None  # column of whole identifiers
    pattern: tuple[tuple[str, int | None], ...]  # literal text / column position pairs
    columns: tuple[tuple[int, str, int], ...]  # (position, type, index)
    header: tuple[str, ...]

    @cached_property
    def column_of(self) -> dict[int, str]:
        """Value index → the column it comes from."""
        return {index: self.header[pos] for pos, _, index in self.columns}


_FIELD = re.compile(r"\{([^{}]+)\}")


def _parse_map_item(item: str, where: str) -> tuple[str, str | None, int | None]:
    """``COLUMN=TYPE[:INDEX]`` or ``COLUMN=-`` → (column, type or None to skip, index)."""
    column, sep, spec = item.partition("=")
    column = column.strip()
    if not sep or not column:
        raise UsageError(f"{where} {item!r} is not COLUMN=TYPE[:INDEX] or COLUMN=-")
    spec = spec.strip()
    if spec == "-":
        return column, None, None
    typ, colon, idx = spec.rpartition(":")
    if colon and idx.isdigit():
        if not typ:
            raise UsageError(f"{where} {item!r} has an index but no type")
        return column, typ, int(idx)
    if not spec:
        raise UsageError(f"{where} {item!r} names no type (use COLUMN=- to leave it out)")
    return column, spec, None


def load_mapping(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
        doc = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the mapping file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"the mapping file {path} must hold an object/table")
    unknown = set(doc) - {"suffix_column", "suffix_pattern", "columns"}
    if unknown:
        raise UsageError(f"the mapping file {path} has unknown keys: {', '.join(sorted(unknown))}"
                         " (suffix_column, suffix_pattern, columns)")
    return doc


def make_plan(header: Sequence[str], *, suffix_column: str | None, suffix_pattern: str | None,
              maps: Sequence[str], mapping: dict[str, Any]) -> Plan:
    names = [h.strip() for h in header]
    seen: dict[str, int] = {}
    for pos, name in enumerate(names):
        if not name:
            raise UsageError(f"column {pos + 1} of the header has no name")
        if name in seen:
            raise UsageError(f"the header names column {name!r} twice "
                             f"(columns {seen[name] + 1} and {pos + 1})")
        seen[name] = pos
    suffix_column = suffix_column or mapping.get("suffix_column")
    suffix_pattern = suffix_pattern or mapping.get("suffix_pattern")

    def position(name: str, what: str) -> int:
        if name not in seen:
            raise UsageError(f"{what} names column {name!r}, which the header does not have "
                             f"(header: {', '.join(names)})")
        return seen[name]

    suffix_at = handle_at = None
    pattern: list[tuple[str, int | None]] = []
    used: set[int] = set()
    if suffix_pattern:
        pattern = _pattern(suffix_pattern, position)
    elif suffix_column:
        suffix_at = position(suffix_column, "--suffix-column")
        used.add(suffix_at)
    elif "suffix" in seen:
        suffix_at = seen["suffix"]
        used.add(suffix_at)
    elif "handle" in seen:
        handle_at = seen["handle"]
        used.add(handle_at)
    else:
        raise UsageError("the header maps no identifier: name a column 'suffix' (or 'handle' "
                         "for whole identifiers), or give --suffix-column NAME or "
                         f"--suffix-pattern 'PN-{{column}}' (header: {', '.join(names)})")
    specs = _specs(mapping, maps, position)
    columns = _value_columns(names, used, specs)
    return Plan(suffix_at, handle_at, tuple(pattern), tuple(columns), tuple(names))


def _pattern(suffix_pattern: str,
             position: Callable[[str, str], int]) -> list[tuple[str, int | None]]:
    pattern: list[tuple[str, int | None]] = []
    last = 0
    for m in _FIELD.finditer(suffix_pattern):
        if m.start() > last:
            pattern.append((suffix_pattern[last:m.start()], None))
        pattern.append(("", position(m.group(1).strip(), "--suffix-pattern")))
        last = m.end()
    if last < len(suffix_pattern):
        pattern.append((suffix_pattern[last:], None))
    if not any(pos is not None for _, pos in pattern):
        raise UsageError("--suffix-pattern names no column: write e.g. 'PN-{serial}'")
    return pattern


def _specs(mapping: dict[str, Any], maps: Sequence[str], position: Callable[[str, str], int]
           ) -> dict[int, tuple[str | None, int | None]]:
    """Column position → (type or None to leave out, index or None): file, then flags."""
    specs: dict[int, tuple[str | None, int | None]] = {}
    file_columns = mapping.get("columns", {})
    if not isinstance(file_columns, dict):
        raise UsageError("the mapping file's 'columns' must be a table/object")
    items = [(f"{k}={v}" if isinstance(v, str) else f"{k}={v.get('type', '')}:"
              f"{v.get('index', '')}".rstrip(":"), "the mapping file's")
             for k, v in file_columns.items() if isinstance(v, str | dict)]
    items += [(m, "--map") for m in maps]
    for item, where in items:
        column, typ, idx = _parse_map_item(item, where)
        specs[position(column, where)] = (typ, idx)
    return specs


def _value_columns(names: Sequence[str], used: set[int],
                   specs: dict[int, tuple[str | None, int | None]]) -> list[tuple[int, str, int]]:
    taken = {idx for typ, idx in specs.values() if typ is not None and idx is not None}
    if any(idx == 0 for _, idx in specs.values()):
        raise UsageError("value indexes start at 1")
    free = (i for i in range(1, 1 << 31) if i not in taken)
    columns: list[tuple[int, str, int]] = []
    indexes: dict[int, str] = {}
    for pos, name in enumerate(names):
        if pos in used:
            continue
        typ, idx = specs.get(pos, (name, None))
        if typ is None:
            continue
        index = idx if idx is not None else next(free)
        if index in indexes:
            raise UsageError(f"columns {indexes[index]!r} and {name!r} both map to index {index}")
        indexes[index] = name
        columns.append((pos, typ, index))
    if not columns:
        raise UsageError("no column is left to become a value")
    return columns


class TemplateLookup:
    """The metadata templates rows name (index 1001), as the node at ``target`` has them:
    fetched once per (prefix, version) with GetTemplate, for ``--dry-run``. A node that
    cannot be reached turns template checks off with one warning (the other checks go
    on); a template that does not exist or is not published is the row's reject."""

    def __init__(self, target: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.target = target
        self.metadata = metadata
        self.enabled = True
        self._found: dict[tuple[str, str], Any] = {}

    def get(self, prefix: str, version: str) -> Any:
        """The template (registry.templates.Template), or a str saying why none."""
        key = (prefix.lower(), version)
        if key not in self._found:
            self._found[key] = self._fetch(prefix, version)
        return self._found[key]

    def _fetch(self, prefix: str, version: str) -> Any:
        from idnode.v1 import registry_pb2_grpc
        from node.rpc.template_wire import template_from_wire
        from registry.errors import IdnodeError

        named = f"template {prefix} version {version}"
        try:
            with channel(self.target) as ch:
                answer = registry_pb2_grpc.RegistryStub(ch).GetTemplate(
                    registry_pb2.GetTemplateRequest(prefix=prefix, version=version),
                    metadata=self.metadata, timeout=10)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return f"names {named}, which does not exist"
            self.enabled = False
            typer.echo(f"idnode: template checks skipped: the node at {self.target} did not "
                       f"answer GetTemplate ({exc.code().name})", err=True)
            return None
        if answer.template.state != registry_pb2.Template.STATE_PUBLISHED:
            return f"names {named}, which is not published"
        try:
            return template_from_wire(answer.template, prefix)
        except IdnodeError as exc:
            return f"names {named}, which this client cannot read: {exc.message}"


class Checker:
    """Local checks of one row: identifier grammar, under the prefix, value limits,
    duplicates within the file, and (``templates``) the template a row names."""

    def __init__(self, prefix: str | None, validate: bool = True, expected: int = 0,
                 templates: TemplateLookup | None = None) -> None:
        from registry.identifier import ascii_casefold

        self.prefix = prefix
        self.validate = validate  # values too (else the node checks them: ~40% faster)
        self._prefix_key = ascii_casefold(prefix) if prefix else None
        self.seen = SeenKeys(expected)
        self.templates = templates

    def identifier(self, row: Row, text: str, column: str, whole: bool) -> bool:
        """Parse the identifier into ``row``; False (with ``row.reject``) when refused."""
        from registry.errors import InvalidIdentifier
        from registry.identifier import Handle, ascii_casefold

        if not whole:
            if not text:
                row.reject = Reject(row.line, column, "", "the suffix is empty")
                return False
            text = f"{self.prefix}/{text}"
        elif "/" not in text and self.prefix:
            text = f"{self.prefix}/{text}"
        row.handle = text
        try:
            handle = Handle.parse(text)
        except InvalidIdentifier as exc:
            row.reject = Reject(row.line, column, text, f"invalid identifier: {exc.message}")
            return False
        if self._prefix_key is not None and ascii_casefold(handle.prefix) != self._prefix_key:
            row.reject = Reject(row.line, column, text,
                                f"not under --prefix {self.prefix} (its prefix is "
                                f"{handle.prefix})")
            return False
        row.key = handle.key
        if not self.seen.add(handle.key):
            row.reject = Reject(row.line, column, text, "duplicate: this identifier appears "
                                "earlier in the file; only the first row is imported")
            return False
        return True

    def values(self, row: Row, domain: Sequence[Any], columns: Sequence[str]) -> bool:
        """Validate the values (``columns[i]`` names where ``domain[i]`` came from)."""
        from registry.errors import IdnodeError
        from registry.values import validate_values

        try:
            validate_values(domain)
        except IdnodeError as exc:
            column, error = "", exc
            for value, name in zip(domain, columns, strict=True):  # which one broke it
                try:
                    validate_values([value])
                except IdnodeError as one:
                    column, error = name, one
                    break
            row.reject = Reject(row.line, column, row.handle, error.message)
            return False
        if self.templates is not None and self.templates.enabled:
            return self._template(row, domain, columns)
        return True

    def _template(self, row: Row, domain: Sequence[Any], columns: Sequence[str]) -> bool:
        """The row follows the template it names at index 1001, as the node would check
        it on registration (every violation in the reason; the column of the first)."""
        from registry.errors import IdnodeError
        from registry.templates import (
            TEMPLATE_INDEX,
            check_record,
            record_error,
            template_reference,
        )

        assert self.templates is not None
        column_of = {v.index: name for v, name in zip(domain, columns, strict=True)}
        try:
            version = template_reference(domain)
        except IdnodeError as exc:
            row.reject = Reject(row.line, column_of.get(TEMPLATE_INDEX, ""), row.handle,
                                exc.message)
            return False
        if version is None:
            return True
        template = self.templates.get(row.handle.partition("/")[0], version)
        if template is None:
            return True  # the node went away: it checks on import
        if isinstance(template, str):
            row.reject = Reject(row.line, column_of.get(TEMPLATE_INDEX, ""), row.handle,
                                template)
            return False
        violations = check_record(template, domain)
        if violations:
            row.reject = Reject(row.line, column_of.get(violations[0].index, ""), row.handle,
                                record_error(row.handle, template, violations).message)
            return False
        return True


def csv_rows(text: IO[str], plan: Plan, checker: Checker, skip: int,
             header_lines: int) -> Iterator[Row]:
    """Rows of a CSV body (after the header's ``header_lines`` lines); the first ``skip``
    records are only read for the duplicate check."""
    reader = csv.reader(text, strict=True)
    width = len(plan.header)
    number = 0
    base = header_lines
    line = base + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            if number > skip:
                yield Row(line, "", reject=Reject(line, "", "", f"unreadable CSV ({exc}); "
                                                  "is the file cut in the middle of a line?"))
            line = base + reader.line_num + 1
            continue
        start, line = line, base + reader.line_num + 1
        if not cells:
            continue  # a blank line
        number += 1
        row = Row(start, "")
        suffix, column, whole = _csv_suffix(plan, cells)
        if number <= skip:
            if suffix:
                checker.identifier(row, suffix, column, whole)
            continue
        if len(cells) != width:
            short = len(cells) < width
            checker.identifier(row, suffix, column, whole)  # counts as seen all the same
            row.reject = Reject(start, plan.header[len(cells)] if short
                                else f"column {width + 1}", row.handle,
                                f"ragged row: {len(cells)} cells where the header has {width}"
                                + ("; is the file cut in the middle of a line?" if short
                                   else ""))
            yield row
            continue
        if checker.identifier(row, suffix, column, whole):
            _csv_values(row, cells, plan, checker)
        yield row


def _csv_suffix(plan: Plan, cells: Sequence[str]) -> tuple[str, str, bool]:
    """(suffix or whole identifier, the column it came from, whether it is whole)."""
    if plan.pattern:
        return "".join(literal if pos is None else
                       (cells[pos].strip() if pos < len(cells) else "")
                       for literal, pos in plan.pattern), "suffix pattern", False
    at = plan.suffix_at if plan.suffix_at is not None else plan.handle_at
    assert at is not None
    return (cells[at].strip() if at < len(cells) else ""), plan.header[at], \
        plan.handle_at is not None


def _csv_values(row: Row, cells: Sequence[str], plan: Plan, checker: Checker) -> None:
    """The row's values as (index, type, text); checked locally when asked (else by the
    node), and always when there are none."""
    from registry.values import Value

    triples = []
    chars = len(row.handle)
    for pos, typ, index in plan.columns:
        cell = cells[pos]
        if not cell or cell.isspace():
            continue
        triples.append((index, typ, cell))
        chars += len(cell)
    if checker.validate or not triples:
        domain = [Value(i, t, x) for i, t, x in triples]
        if not checker.values(row, domain, [plan.column_of[i] for i, _, _ in triples]):
            return
    row.values = triples
    row.chars = chars


def _to_wire(v: Any) -> record_pb2.Value:
    from registry.values import DEFAULT_PERMISSIONS, AdminRef, ValueList

    msg = record_pb2.Value(index=v.index, type=v.type, ttl=v.ttl)
    data = v.data
    if isinstance(data, str):
        msg.text = data
    elif isinstance(data, bytes):
        msg.binary = data
    elif isinstance(data, AdminRef):
        msg.admin.CopyFrom(record_pb2.AdminRef(handle=data.handle, index=data.index,
                                               permissions=data.permissions))
    elif isinstance(data, ValueList):
        msg.vlist.CopyFrom(record_pb2.ValueList(refs=[
            record_pb2.ValueRef(handle=r.handle, index=r.index) for r in data.refs]))
    if v.permissions != DEFAULT_PERMISSIONS:
        p = v.permissions
        msg.permissions.CopyFrom(record_pb2.Permissions(
            admin_read=p.admin_read, admin_write=p.admin_write, public_read=p.public_read,
            public_write=p.public_write))
    return msg


def jsonl_rows(text: IO[str], checker: Checker, skip: int) -> Iterator[Row]:
    from node.web.handle_json import parse_body
    from registry.errors import IdnodeError

    number = 0
    for line_no, line in enumerate(text, 1):
        if not line.strip():
            continue
        number += 1
        row = Row(line_no, "")
        cut = "" if line.endswith("\n") else "; is the file cut in the middle of a line?"
        try:
            doc = json.loads(line)
        except ValueError as exc:
            if number > skip:
                row.reject = Reject(line_no, "", "", f"not valid JSON ({exc}){cut}")
                yield row
            continue
        handle = doc.get("handle") if isinstance(doc, dict) else None
        if not isinstance(handle, str):
            if number > skip:
                row.reject = Reject(line_no, "handle", "",
                                    'each line must be an object with a "handle" string and '
                                    'a "values" array')
                yield row
            continue
        ok = checker.identifier(row, handle.strip(), "handle", True)
        if number <= skip or not ok:
            if number > skip:
                yield row
            continue
        try:
            domain = parse_body(line.encode("utf-8"))
        except IdnodeError as exc:
            row.reject = Reject(line_no, "values", row.handle, exc.message)
            yield row
            continue
        if not checker.values(row, domain, [f"values[{i}]" for i in range(len(domain))]):
            yield row
            continue
        row.values = [_to_wire(v) for v in domain]
        row.chars = len(line)
        yield row


# --- checkpoint -------------------------------------------------------------------------


@dataclass
class Counts:
    rows: int = 0
    accepted: int = 0
    unchanged: int = 0
    updated: int = 0
    conflicts: int = 0
    rejected: int = 0


def file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    with path.open("rb") as f:
        head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "head_sha256": head}


class Checkpoint:
    """The checkpoint file: written atomically after every acknowledged call."""

    def __init__(self, path: Path, identity: dict[str, Any], options: str) -> None:
        self.path = path
        self.identity = identity
        self.options = options

    def load(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the checkpoint {self.path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != CHECKPOINT_VERSION:
            raise UsageError(f"{self.path} is not an idnode checkpoint; remove it or give "
                             "another --checkpoint")
        if doc.get("input") != self.identity:
            raise UsageError(f"the checkpoint {self.path} was written for another version of "
                             "the input (path, size, mtime or first MB differ): the file "
                             "changed since; remove the checkpoint to start over")
        if doc.get("options") != self.options:
            raise UsageError(f"the checkpoint {self.path} was written with other options "
                             "(prefix, format, mapping, encoding): use the same options, or "
                             "remove the checkpoint to start over")
        return doc

    def save(self, rows_done: int, counts: Counts, rejects_offset: int) -> None:
        doc = {"version": CHECKPOINT_VERSION, "input": self.identity, "options": self.options,
               "rows_done": rows_done, "counts": asdict(counts),
               "rejects_offset": rejects_offset, "saved_at": time.time()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class RejectsFile:
    """line,column,identifier,reason: opened on the first reject."""

    HEADER = ("line", "column", "identifier", "reason")

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self._f: IO[str] | None = None
        self._writer: Any = None
        self.offset = offset
        self.count = 0
        if offset:  # resuming: drop what a killed run wrote after its last checkpoint
            with path.open("r+b") as f:
                f.truncate(offset)
        else:  # a new run: an old rejects file would mislead
            path.unlink(missing_ok=True)

    def write(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        if self._f is None:
            self._f = self.path.open("a" if self.offset else "w", encoding="utf-8",
                                     newline="")
            self._writer = csv.writer(self._f)
            if not self.offset:
                self._writer.writerow(self.HEADER)
        for r in rejects:
            self._writer.writerow([r.line, r.column, r.identifier, r.reason])
        self.count += len(rejects)
        self._f.flush()
        self.offset = self._f.tell()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


# --- the import ---------------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows read for one BulkRegister call; ``end`` is the record count after them."""

    end: int
    sent: list[Row] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    messages: list[registry_pb2.BulkRegisterRequest] = field(default_factory=list)
    future: Any = None
    attempts: int = 0


def _value_key(v: record_pb2.Value) -> tuple[Any, ...]:
    kind = v.WhichOneof("data")
    data: Any
    if kind in ("text", "binary"):
        data = getattr(v, kind)
    elif kind is None:
        data = None
    else:
        data = getattr(v, kind).SerializeToString(deterministic=True)
    perms = (v.permissions.admin_read, v.permissions.admin_write, v.permissions.public_read,
             v.permissions.public_write) if v.HasField("permissions") else DEFAULT_PERMS
    return (v.index, v.type, kind, data, v.ttl or DEFAULT_TTL, perms)


def _difference(stored: Sequence[record_pb2.Value], wanted: Sequence[record_pb2.Value]) -> str:
    have = {v.index: v for v in stored}
    want = {v.index: v for v in wanted}
    for index in sorted(set(have) | set(want)):
        a, b = have.get(index), want.get(index)
        if a is None:
            return f"index {index} ({b.type if b else ''}) is not stored"
        if b is None:
            return f"the stored record has index {index} ({a.type}), the file does not"
        if _value_key(a) != _value_key(b):
            def show(v: record_pb2.Value) -> str:
                data = v.text if v.WhichOneof("data") == "text" else v.WhichOneof("data")
                return f"{v.type}={str(data)[:60]!r}"
            return f"index {index}: stored {show(a)}, file {show(b)}"
    return "the values differ"


_INDEX_IN = re.compile(r"\bindex (\d+)")

# Leads every call: rows the node holds exactly as sent come back counted as unchanged,
# so only the others (conflicts, or rows this node cannot compare) are read back. A node
# that predates the field ignores it and answers ALREADY_EXISTS for all of them.
_REPORT_UNCHANGED = registry_pb2.BulkRegisterRequest(report_unchanged=True)


class Importer:
    def __init__(self, *, stub: Any, resolver: Any, metadata: tuple[tuple[str, str], ...],
                 update_existing: bool, retries: int, request_base: str,
                 counts: Counts, rejects: RejectsFile, checkpoint: Checkpoint | None,
                 on_progress: Callable[[], None], stop_after_chunks: int = 0,
                 column_of: dict[int, str] | None = None) -> None:
        self.column_of = column_of or {}
        self.stub = stub
        self.resolver = resolver
        self.metadata = metadata
        self.update_existing = update_existing
        self.retries = retries
        self.request_base = request_base
        self.counts = counts
        self.rejects = rejects
        self.checkpoint = checkpoint
        self.on_progress = on_progress
        self.stop_after_chunks = stop_after_chunks
        self.acknowledged = 0
        self.rows_done = 0

    def _submit(self, chunk: Chunk) -> None:
        chunk.attempts += 1
        chunk.future = self.stub.BulkRegister.future(iter([_REPORT_UNCHANGED, *chunk.messages]),
                                                     timeout=CALL_TIMEOUT_SECONDS,
                                                     metadata=self.metadata)

    def run(self, chunks: Iterator[Chunk]) -> None:
        """A pipeline of two: while the node stores one call, the next chunk is read,
        checked and built here (``chunks`` is a generator), and it is sent the moment
        the call before it is acknowledged. One call at a time keeps the node to one
        writing thread: two concurrent streams made its threads trade the interpreter
        lock at every SQLite row, a third more node CPU per row."""
        inflight: deque[Chunk] = deque()
        try:
            for chunk in chunks:
                while len(inflight) >= IN_FLIGHT:
                    self._finish(inflight.popleft())
                if chunk.messages:
                    self._submit(chunk)
                inflight.append(chunk)
            while inflight:
                self._finish(inflight.popleft())
        finally:
            for chunk in inflight:
                if chunk.future is not None:
                    chunk.future.cancel()

    def _finish(self, chunk: Chunk) -> None:
        response = None
        while chunk.future is not None:
            try:
                response = chunk.future.result()
                break
            except grpc.RpcError as exc:
                code = exc.code()
                if code in RETRYABLE and chunk.attempts <= self.retries:
                    time.sleep(min(8.0, 0.25 * 2 ** (chunk.attempts - 1)))
                    self._submit(chunk)
                    continue
                if code in RETRYABLE or code == grpc.StatusCode.CANCELLED:
                    raise NodeUnavailable(f"{code.name}: {exc.details()}") from None
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    raise UsageError(f"the node refused the credentials ({code.name}: "
                                     f"{exc.details()}); set IDNODE_IDENTITY and "
                                     "IDNODE_SECRET (or --identity/--secret)") from None
                raise UsageError(f"the node ended the import: {code.name}: "
                                 f"{exc.details()}") from None
        rejects = list(chunk.rejects)
        if response is not None:
            existing: list[Row] = []
            refused = 0
            for failure in response.failures:
                row = chunk.sent[failure.row]
                if failure.error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]:
                    existing.append(row)
                    continue
                if failure.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]:
                    refused += 1
                at = _INDEX_IN.search(failure.error.message)
                rejects.append(Reject(row.line, self.column_of.get(int(at.group(1)), "")
                                      if at else "", row.handle,
                                      f"{_code_name(failure.error.code)}: "
                                      f"{failure.error.message}"))
            self.counts.accepted += response.accepted
            self.counts.unchanged += response.unchanged
            if chunk.sent and refused == len(chunk.sent):
                raise UsageError("the node refused every row of a call "
                                 f"(PERMISSION_DENIED: {rejects[-1].reason}); are the "
                                 "credentials those of the prefix's admin?")
            rejects += self._reconcile(existing)
        self.counts.rejected += sum(1 for r in rejects if not r.reason.startswith("conflict"))
        self.rejects.write(rejects)
        self.rows_done = chunk.end
        self.acknowledged += 1
        if self.checkpoint is not None:
            self.checkpoint.save(self.rows_done, replace(self.counts, rows=self.rows_done),
                                 self.rejects.offset)
        self.on_progress()
        if self.stop_after_chunks and self.acknowledged >= self.stop_after_chunks:
            raise StopForTest

    def _resolve_many(self, handles: Sequence[str]) -> list[Any]:
        for attempt in range(self.retries + 1):
            try:
                return list(self.resolver.BatchResolve(
                    resolver_pb2.BatchResolveRequest(handles=handles), timeout=60,
                    metadata=self.metadata).results)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or attempt == self.retries:
                    raise NodeUnavailable(f"{exc.code().name}: {exc.details()}") from None
                time.sleep(min(8.0, 0.25 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _resolved_groups(self, rows: Sequence[Row]) -> Iterator[tuple[Sequence[Row], list[Any]]]:
        """``rows`` in groups of BATCH_RESOLVE with their BatchResolve results, in order,
        RESOLVE_IN_FLIGHT calls at a time (a re-import reads back every row); a call that
        fails is retried alone, with backoff (_resolve_many)."""
        groups = [rows[i:i + BATCH_RESOLVE] for i in range(0, len(rows), BATCH_RESOLVE)]
        pending: deque[tuple[Sequence[Row], Any]] = deque()
        for group in groups:
            pending.append((group, self.resolver.BatchResolve.future(
                resolver_pb2.BatchResolveRequest(handles=[r.handle for r in group]),
                timeout=60, metadata=self.metadata)))
            if len(pending) >= RESOLVE_IN_FLIGHT:
                yield self._resolved(*pending.popleft())
        while pending:
            yield self._resolved(*pending.popleft())

    def _resolved(self, group: Sequence[Row], future: Any) -> tuple[Sequence[Row], list[Any]]:
        try:
            return group, list(future.result().results)
        except grpc.RpcError:
            return group, self._resolve_many([r.handle for r in group])

    def _reconcile(self, rows: Sequence[Row]) -> list[Reject]:
        """Rows the node already holds: unchanged when equal, else conflicts."""
        rejects: list[Reject] = []
        for group, results in self._resolved_groups(rows):
            for row, result in zip(group, results, strict=True):
                if result.WhichOneof("outcome") != "record":
                    rejects.append(Reject(row.line, "", row.handle,
                                          "the node says it exists but cannot read it: "
                                          f"{_code_name(result.error.code)}: "
                                          f"{result.error.message}"))
                    continue
                stored = record_pb2.Record.FromString(result.record.payload).values
                if sorted(map(_value_key, stored)) == sorted(map(_value_key, row.values)):
                    self.counts.unchanged += 1
                    continue
                why = _difference(stored, row.values)
                if self.update_existing:
                    problem = self._update(row)
                    if problem is None:
                        self.counts.updated += 1
                        continue
                    rejects.append(Reject(row.line, "", row.handle, problem))
                    continue
                self.counts.conflicts += 1
                rejects.append(Reject(row.line, "", row.handle,
                                      f"conflict: already registered with other values ({why});"
                                      " not overwritten (use --update-existing to replace)"))
        return rejects

    def _update(self, row: Row) -> str | None:
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                    f"{self.request_base}:{row.line}:{row.handle}"))
        for _ in range(3):
            try:
                current = self.resolver.Resolve(resolver_pb2.ResolveRequest(handle=row.handle),
                                                timeout=30, metadata=self.metadata)
                self.stub.Update(registry_pb2.UpdateRequest(
                    handle=row.handle, values=row.values, etag=current.etag,
                    mode=registry_pb2.UpdateRequest.MODE_REPLACE, request_id=request_id),
                    timeout=30, metadata=self.metadata)
                return None
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.ABORTED:
                    continue  # changed meanwhile: read the new etag
                if exc.code() in RETRYABLE:
                    raise NodeUnavailable(f"{exc.code().name}: {exc.details()}") from None
                return f"update failed: {exc.code().name}: {exc.details()}"
        return "update failed: the record kept changing (ABORTED three times)"


def _code_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return f"code {code}"


def chunked(rows: Iterator[Row], chunk_rows: int, counts: Counts, first: int,
            tick: Callable[[int], None], build: bool = True) -> Iterator[Chunk]:
    """Group rows into calls of ``chunk_rows`` records and messages of up to 500 rows."""
    number = first
    chunk = Chunk(first)
    request = registry_pb2.BulkRegisterRequest()
    in_message = 0
    chars = 0

    def flush_message() -> None:
        nonlocal request, in_message, chars
        if in_message:
            chunk.messages.append(request)
            request, in_message, chars = registry_pb2.BulkRegisterRequest(), 0, 0

    for row in rows:
        number += 1
        counts.rows += 1
        if row.reject is not None:
            chunk.rejects.append(row.reject)
        else:
            chunk.sent.append(row)
            if build:
                # Built inside the message: one protobuf arena per message, not per value
                msg = request.rows.add(handle=row.handle)
                if row.values and isinstance(row.values[0], tuple):
                    add = msg.values.add
                    for index, typ, text in row.values:
                        add(index=index, type=typ, text=text)
                else:
                    msg.values.extend(row.values)
                row.values = msg.values
                in_message += 1
                chars += row.chars
                if in_message >= ROWS_PER_MESSAGE or chars >= CHARS_PER_MESSAGE:
                    flush_message()
        if number - chunk.end >= chunk_rows:
            flush_message()
            chunk.end = number
            tick(number)
            yield chunk
            chunk = Chunk(number)
    flush_message()
    chunk.end = number
    tick(number)
    yield chunk


def _options_digest(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def _fmt_of(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise UsageError("--format must be csv or jsonl")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "csv"


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[rows]:>10,} rows  {task.fields[rate]:>7,.0f} rows/s"
                               "  accepted {task.fields[accepted]:,}"
                               "  unchanged {task.fields[unchanged]:,}"
                               "  rejected {task.fields[rejected]:,}"),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


@dataclass
class ImportOptions:
    prefix: str | None
    fmt: str | None
    suffix_column: str | None
    suffix_pattern: str | None
    maps: list[str]
    mapping: Path | None
    encoding: str | None
    dry_run: bool
    resume: bool
    checkpoint: Path | None
    rejects: Path | None
    update_existing: bool
    chunk_rows: int
    retries: int
    progress: bool
    stop_after_chunks: int = 0
    validate_locally: bool = False


def import_file(path: Path, opts: ImportOptions, target: str,
                metadata: tuple[tuple[str, str], ...]) -> int:
    """Import one file; print the summary; return the exit code."""
    started = time.monotonic()
    fmt = _check_options(path, opts)
    encoding, warning = detect_encoding(path, opts.encoding)
    if warning:
        typer.echo(f"idnode: warning: {warning}", err=True)
    mapping = load_mapping(opts.mapping)
    raw = path.open("rb")
    text = io.TextIOWrapper(raw, encoding=encoding.codec, newline="" if fmt == "csv" else None)
    try:
        plan, header_lines = _read_plan(text, path, opts, mapping) if fmt == "csv" \
            else (None, 0)
        options = {"prefix": (opts.prefix or "").lower(), "format": fmt,
                   "encoding": encoding.codec, "plan": asdict(plan) if plan else None}
        identity = file_identity(path)
        checkpoint = None if opts.dry_run else Checkpoint(
            opts.checkpoint or path.with_name(path.name + ".idnode-checkpoint.json"),
            identity, _options_digest(options))
        skip, counts, rejects_offset = _start(checkpoint, opts.resume)
        rejects_path = opts.rejects or path.with_name(path.name + ".rejects.csv")
        rejects = RejectsFile(rejects_path, rejects_offset if rejects_path.exists() else 0)
        checker = Checker(opts.prefix, validate=opts.dry_run or opts.validate_locally,
                          expected=_count_lines(path),
                          templates=TemplateLookup(target, metadata) if opts.dry_run
                          else None)
        rows = (csv_rows(text, plan, checker, skip, header_lines) if plan is not None
                else jsonl_rows(text, checker, skip))
        code = _run(path, rows, opts, target, metadata, counts, skip, rejects, checkpoint,
                    plan.column_of if plan else {},
                    raw, identity["size"], hashlib.sha256(
                        f"{identity['path']}:{identity['head_sha256']}".encode()).hexdigest())
        rejects.close()
        if code in (EXIT_OK, EXIT_REJECTS) and checkpoint is not None:
            checkpoint.remove()
        _summary(path, counts, encoding, time.monotonic() - started, rejects, opts.dry_run,
                 skip)
        return code
    finally:
        text.close()


def _check_options(path: Path, opts: ImportOptions) -> str:
    """The input's format, after the checks that need no reading."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is empty: nothing to import")
    fmt = _fmt_of(path, opts.fmt)
    if opts.prefix:
        from registry.errors import IdnodeError
        from registry.identifier import Prefix

        try:
            Prefix.parse(opts.prefix)
        except IdnodeError as exc:
            raise UsageError(f"--prefix {opts.prefix!r}: {exc.message}") from None
    if not 1 <= opts.chunk_rows <= MAX_CHUNK_ROWS:
        raise UsageError(f"--chunk-rows must be 1..{MAX_CHUNK_ROWS}")
    return fmt


def _read_plan(text: IO[str], path: Path, opts: ImportOptions,
               mapping: dict[str, Any]) -> tuple[Plan, int]:
    """The CSV header's plan and how many lines the header took."""
    header_reader = csv.reader(iter(text.readline, ""))
    for cells in header_reader:
        if cells and any(c.strip() for c in cells):
            break
    else:
        raise UsageError(f"{path} has no header row: nothing to import")
    plan = make_plan(cells, suffix_column=opts.suffix_column,
                     suffix_pattern=opts.suffix_pattern, maps=opts.maps, mapping=mapping)
    if plan.handle_at is None and not opts.prefix:
        raise UsageError("--prefix is required: the identifiers are made of the prefix and "
                         "the suffix column (or pattern)")
    return plan, header_reader.line_num


def _start(checkpoint: Checkpoint | None, resume: bool) -> tuple[int, Counts, int]:
    """(rows to skip, counters so far, rejects file offset) from the checkpoint, which is
    (re)written at once so an unwritable place fails before the first row is sent."""
    counts = Counts()
    skip = rejects_offset = 0
    if checkpoint is None:
        return skip, counts, rejects_offset
    doc = checkpoint.load() if resume else None
    if resume and doc is None:
        typer.echo(f"idnode: no checkpoint at {checkpoint.path}: starting from the first "
                   "row", err=True)
    elif doc is not None:
        skip = int(doc["rows_done"])
        counts = Counts(**doc["counts"])
        rejects_offset = int(doc.get("rejects_offset", 0))
        typer.echo(f"idnode: resuming after {skip:,} rows ({checkpoint.path})", err=True)
    elif checkpoint.path.exists():
        typer.echo(f"idnode: an earlier run left {checkpoint.path}; starting over (use "
                   "--resume to continue it)", err=True)
    try:
        checkpoint.save(skip, counts, rejects_offset)
    except OSError as exc:
        raise UsageError(f"cannot write the checkpoint {checkpoint.path} ({exc}); give "
                         "--checkpoint PATH somewhere writable") from None
    return skip, counts, rejects_offset


def _run(path: Path, rows: Iterator[Row], opts: ImportOptions, target: str,
         metadata: tuple[tuple[str, str], ...], counts: Counts, skip: int,
         rejects: RejectsFile, checkpoint: Checkpoint | None, column_of: dict[int, str],
         raw: IO[bytes], size: int,
         request_base: str) -> int:
    from idnode.v1 import registry_pb2_grpc, resolver_pb2_grpc

    progress = _progress(opts.progress and sys.stderr.isatty())
    started = time.monotonic()
    first_rows = counts.rows
    task = progress.add_task(path.name, total=size, rows=counts.rows, rate=0.0,
                             accepted=counts.accepted, unchanged=counts.unchanged,
                             rejected=counts.rejected)

    def refresh() -> None:
        elapsed = max(1e-6, time.monotonic() - started)
        progress.update(task, completed=raw.tell(), rows=counts.rows,
                        rate=(counts.rows - first_rows) / elapsed, accepted=counts.accepted,
                        unchanged=counts.unchanged, rejected=counts.rejected + counts.conflicts)

    chunks = chunked(rows, opts.chunk_rows, counts, skip, lambda _: refresh(),
                     build=not opts.dry_run)
    with progress:
        if opts.dry_run:
            for chunk in chunks:
                counts.accepted += len(chunk.sent)
                counts.rejected += len(chunk.rejects)
                rejects.write(chunk.rejects)
            refresh()
            return EXIT_REJECTS if counts.rejected else EXIT_OK
        with channel(target) as ch:
            importer = Importer(
                stub=registry_pb2_grpc.RegistryStub(ch),
                resolver=resolver_pb2_grpc.ResolverStub(ch), metadata=metadata,
                update_existing=opts.update_existing, retries=opts.retries,
                request_base=request_base, counts=counts, rejects=rejects,
                checkpoint=checkpoint, on_progress=refresh,
                stop_after_chunks=opts.stop_after_chunks, column_of=column_of)
            try:
                importer.run(chunks)
            except NodeUnavailable as exc:
                typer.echo(f"idnode: the node at {target} is unavailable ({exc}) after "
                           f"{opts.retries} retries; {importer.rows_done:,} rows are done. "
                           "Run the same command with --resume to finish.", err=True)
                counts.rows = importer.rows_done
                return EXIT_UNAVAILABLE
            except StopForTest:
                typer.echo(f"idnode: stopped after {importer.acknowledged} calls (test)",
                           err=True)
                return EXIT_UNAVAILABLE
            except KeyboardInterrupt:
                typer.echo(f"idnode: interrupted; {importer.rows_done:,} rows are done. "
                           "Run the same command with --resume to finish.", err=True)
                return EXIT_INTERRUPTED
    return EXIT_REJECTS if counts.rejected or counts.conflicts else EXIT_OK


def _summary(path: Path, counts: Counts, encoding: Encoding, elapsed: float,
             rejects: RejectsFile, dry_run: bool, skipped: int) -> None:
    rate = (counts.rows - skipped) / elapsed if elapsed > 0 else 0.0
    head = "dry run (nothing written): " if dry_run else ""
    stored = "valid" if dry_run else "accepted"
    typer.echo(f"{head}{path}: {counts.rows:,} rows, {stored} {counts.accepted:,}, "
               f"unchanged {counts.unchanged:,}, updated {counts.updated:,}, "
               f"conflicts {counts.conflicts:,}, rejected {counts.rejected:,}; "
               f"encoding {encoding.label}; {elapsed:.1f} s, {rate:,.0f} rows/s"
               + (f" (resumed after {skipped:,} rows)" if skipped else ""))
    if rejects.count or rejects.offset:
        typer.echo(f"rejected and conflicting rows: {rejects.path}")


# --- export, list, update, delete ----------------------------------------------------------


def list_handles(registry: Any, prefix: str, metadata: tuple[tuple[str, str], ...],
                 page_size: int = 1000) -> Iterator[str]:
    token = ""
    while True:
        page = registry.List(registry_pb2.ListRequest(prefix=prefix, page_size=page_size,
                                                      page_token=token),
                             timeout=60, metadata=metadata)
        yield from page.handles
        token = page.next_page_token
        if not token:
            return


def export_records(registry: Any, resolver: Any, prefix: str,
                   metadata: tuple[tuple[str, str], ...]) -> Iterator[record_pb2.Record]:
    """Every record under ``prefix``, streaming: List pages, BatchResolve 100 at a time."""
    group: list[str] = []

    def fetch(handles: list[str]) -> Iterator[record_pb2.Record]:
        results = resolver.BatchResolve(resolver_pb2.BatchResolveRequest(handles=handles),
                                        timeout=60, metadata=metadata).results
        for result in results:
            if result.WhichOneof("outcome") == "record":
                yield record_pb2.Record.FromString(result.record.payload)

    for handle in list_handles(registry, prefix, metadata):
        group.append(handle)
        if len(group) == BATCH_RESOLVE:
            yield from fetch(group)
            group = []
    if group:
        yield from fetch(group)


def record_dict(record: record_pb2.Record) -> dict[str, Any]:
    """A record as Handle REST JSON (what ``import`` reads back as JSONL)."""
    from node.web.handle_json import value_json

    return {"handle": record.handle, "values": [value_json(v) for v in record.values]}


def _cell(v: record_pb2.Value) -> tuple[str, str]:
    kind = v.WhichOneof("data")
    if kind == "text":
        return "string", v.text
    if kind == "binary":
        return "base64", base64.b64encode(v.binary).decode()
    from node.web.handle_json import value_json

    return str(kind), json.dumps(value_json(v)["data"]["value"], ensure_ascii=False)


def write_export(records: Iterator[record_pb2.Record], out: IO[str], fmt: str,
                 columns: Sequence[str]) -> int:
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record_dict(record), ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(out)
    if columns:
        writer.writerow(["handle", *columns])
        for record in records:
            by_type: dict[str, str] = {}
            for v in record.values:
                by_type.setdefault(v.type, _cell(v)[1])
            writer.writerow([record.handle, *(by_type.get(c, "") for c in columns)])
            count += 1
        return count
    writer.writerow(["handle", "index", "type", "format", "data", "ttl", "permissions"])
    for record in records:
        for v in record.values:
            fmt_name, data = _cell(v)
            perms = "".join("1" if b else "0" for b in (
                v.permissions.admin_read, v.permissions.admin_write,
                v.permissions.public_read, v.permissions.public_write)) \
                if v.HasField("permissions") else "1110"
            writer.writerow([record.handle, v.index, v.type, fmt_name, data, v.ttl, perms])
        count += 1
    return count


_UPDATE_ITEM = re.compile(r"(?:(\d+):)?([^=]+)=(.*)", re.DOTALL)


def parse_update_items(items: Sequence[str]) -> list[tuple[int | None, str, str]]:
    out = []
    for item in items:
        m = _UPDATE_ITEM.fullmatch(item)
        if m is None:
            raise UsageError(f"{item!r} is not [INDEX:]TYPE=TEXT")
        out.append((int(m.group(1)) if m.group(1) else None, m.group(2), m.group(3)))
    return out


def plan_update(current: Sequence[record_pb2.Value], items: Sequence[tuple[int | None, str, str]],
                replace: bool) -> list[record_pb2.Value]:
    """The values to send. Merge (default): a TYPE=TEXT replaces the value of that type
    (the lowest index holding it) or takes the next free index; INDEX:TYPE=TEXT sets that
    index. Replace: the record becomes exactly these values, indexes 1, 2, … unless given."""
    by_type: dict[str, int] = {}
    used: set[int] = set()
    if not replace:
        for v in current:
            by_type.setdefault(v.type, v.index)
            used.add(v.index)
    used |= {i for i, _, _ in items if i is not None}
    out: list[record_pb2.Value] = []
    next_free = 1
    for given, typ, text in items:
        index = given if given is not None else by_type.get(typ)
        if index is None:
            while next_free in used:
                next_free += 1
            index = next_free
            used.add(index)
        out.append(record_pb2.Value(index=index, type=typ, text=text))
    return out


# --- commands -----------------------------------------------------------------------------


IMPORT_HELP = __doc__.split("How an import runs\n------------------\n", 1)[1] \
    if __doc__ else ""


def import_command(
    files: Annotated[list[Path], typer.Argument(help="CSV or JSONL files (by extension: "
                                                ".jsonl/.ndjson are JSONL, else CSV).",
                                                show_default=False)],
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="The prefix the identifiers go under, e.g. 88.118.8.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or jsonl (default: by "
                                            "the file's extension).")] = None,
    suffix_column: Annotated[str | None, typer.Option(
        "--suffix-column", help="The column holding the suffix (default: 'suffix', or "
                                "'handle' for whole identifiers).")] = None,
    suffix_pattern: Annotated[str | None, typer.Option(
        "--suffix-pattern", help="Build the suffix from columns, e.g. 'PN-{serial}'.")]
    = None,
    maps: Annotated[list[str] | None, typer.Option(
        "--map", help="COLUMN=TYPE[:INDEX], or COLUMN=- to leave the column out "
                      "(repeatable).")] = None,
    mapping: Annotated[Path | None, typer.Option(
        "--mapping", help="A TOML or JSON file: suffix_column, suffix_pattern, columns "
                          "{COLUMN = \"TYPE[:INDEX]\" or \"-\"}.")] = None,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help="The file's encoding (default: UTF-8 with or without BOM, "
                           "else GB18030/GBK, detected).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; write "
                                          "nothing.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue after the rows the "
                                         "checkpoint says are done.")] = False,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Checkpoint file (default: FILE.idnode-checkpoint.json).")]
    = None,
    rejects: Annotated[Path | None, typer.Option(
        "--rejects", help="Rejects file (default: FILE.rejects.csv).")] = None,
    update_existing: Annotated[bool, typer.Option(
        "--update-existing", help="Replace records that exist with other values (guarded "
                                  "by their etag) instead of reporting a conflict.")] = False,
    chunk_rows: Annotated[int, typer.Option(
        "--chunk-rows", help=f"Rows per BulkRegister call, 1..{MAX_CHUNK_ROWS}; a "
                             "checkpoint is written after each.")] = MAX_CHUNK_ROWS,
    retries: Annotated[int, typer.Option(
        "--retries", help="Retries of a call while the node is unavailable (backoff "
                          "0.25 s doubling, at most 8 s).")] = 5,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Progress bar on a terminal.")] = True,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
    stop_after_chunks: Annotated[int, typer.Option("--test-stop-after-chunks",
                                                   hidden=True)] = 0,
) -> None:
    """Import parts from CSV or JSONL files through BulkRegister: resumable, idempotent."""
    if len(files) > 1 and (checkpoint or rejects):
        _die("--checkpoint and --rejects name one file: import one input at a time with them")
    metadata = auth_metadata(identity, secret, token)
    if not metadata and not dry_run:
        _die("writes need credentials: set IDNODE_IDENTITY and IDNODE_SECRET (or "
             "--identity/--secret, or IDNODE_TOKEN, or identity and secret in the client "
             "config file, --config)")
    opts = ImportOptions(prefix, fmt, suffix_column, suffix_pattern, maps or [], mapping,
                         encoding, dry_run, resume, checkpoint, rejects, update_existing,
                         chunk_rows, retries, progress, stop_after_chunks)
    worst = EXIT_OK
    for path in files:
        try:
            code = import_file(path, opts, target, metadata)
        except UsageError as exc:
            text = str(exc)
            typer.echo(f"idnode: {text if str(path) in text else f'{path}: {text}'}", err=True)
            code = EXIT_USAGE
        if code in (EXIT_UNAVAILABLE, EXIT_INTERRUPTED):
            raise typer.Exit(code)
        worst = max(worst, code)
    raise typer.Exit(worst)


def _rpc_die(exc: grpc.RpcError, target: str) -> None:
    code = exc.code()
    hint = {grpc.StatusCode.UNAVAILABLE: f" (is a node listening on {target}? --target / "
                                         "IDNODE_TARGET)",
            grpc.StatusCode.UNAUTHENTICATED: " (IDNODE_IDENTITY / IDNODE_SECRET, or the "
                                             "client config file)",
            grpc.StatusCode.PERMISSION_DENIED: " (credentials without rights here)"}
    _die(f"{code.name}: {exc.details()}{hint.get(code, '')}",
         EXIT_UNAVAILABLE if code in RETRYABLE else EXIT_REJECTS)


def export_command(
    prefix: Annotated[str, typer.Option("--prefix", help="Export every identifier under "
                                        "this prefix.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl (Handle REST records, what "
                                     "import reads back) or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of standard output.")] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="CSV only: one row per identifier with these types as columns "
                          "(comma-separated; the first value of each type), importable "
                          "with a 'handle' column. Default: one row per value "
                          "(handle,index,type,format,data,ttl,permissions).")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="Output encoding, e.g. "
                                          "utf-8-sig for Excel, gb18030.")] = "utf-8",
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Stream every record under a prefix as JSONL or CSV (List, then BatchResolve)."""
    from idnode.v1 import registry_pb2_grpc, resolver_pb2_grpc

    if fmt not in ("jsonl", "csv"):
        _die("--format must be jsonl or csv")
    if columns and fmt != "csv":
        _die("--columns goes with --format csv")
    metadata = auth_metadata(identity, secret, token)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else []
    try:
        out: IO[str] = (output.open("w", encoding=encoding, newline="") if output
                        else io.TextIOWrapper(sys.stdout.buffer, encoding=encoding,
                                              newline=""))
    except (OSError, LookupError) as exc:
        _die(f"cannot write {output or 'standard output'}: {exc}")
        raise
    count = 0
    try:
        with channel(target) as ch:
            count = write_export(export_records(registry_pb2_grpc.RegistryStub(ch),
                                                resolver_pb2_grpc.ResolverStub(ch), prefix,
                                                metadata), out, fmt, wanted)
    except grpc.RpcError as exc:
        out.flush()
        _rpc_die(exc, target)
    finally:
        out.flush()
        if output:
            out.close()
        elif isinstance(out, io.TextIOWrapper):
            out.detach()
    typer.echo(f"exported {count:,} identifiers under {prefix}", err=True)


def list_command(
    prefix: Annotated[str, typer.Option("--prefix", help="List identifiers under this "
                                        "prefix.")],
    limit: Annotated[int, typer.Option("--limit", help="Stop after N (0: all).")] = 0,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Print the identifiers under a prefix, one per line (needs rights on the prefix)."""
    from idnode.v1 import registry_pb2_grpc

    metadata = auth_metadata(identity, secret, token)
    try:
        with channel(target) as ch:
            for n, handle in enumerate(list_handles(registry_pb2_grpc.RegistryStub(ch),
                                                    prefix, metadata), 1):
                typer.echo(handle)
                if limit and n >= limit:
                    break
    except grpc.RpcError as exc:
        _rpc_die(exc, target)


def _current(resolver: Any, handle: str,
             metadata: tuple[tuple[str, str], ...]) -> tuple[list[record_pb2.Value], str]:
    response = resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=30,
                                metadata=metadata)
    return list(record_pb2.Record.FromString(response.record.payload).values), response.etag


def update_command(
    handle: str,
    values: Annotated[list[str], typer.Argument(
        help="[INDEX:]TYPE=TEXT. Without an index a value replaces the one of that type, "
             "or is added at the next free index.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="The record becomes exactly these values (indexes 1, 2, … "
                          "unless given).")] = False,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Change values of an identifier (guarded by the etag of a fresh resolve)."""
    from idnode.v1 import registry_pb2_grpc, resolver_pb2_grpc

    try:
        items = parse_update_items(values)
    except UsageError as exc:
        _die(str(exc))
    metadata = auth_metadata(identity, secret, token)
    try:
        with channel(target) as ch:
            current, etag = _current(resolver_pb2_grpc.ResolverStub(ch), handle, metadata)
            response = registry_pb2_grpc.RegistryStub(ch).Update(registry_pb2.UpdateRequest(
                handle=handle, values=plan_update(current, items, replace), etag=etag,
                mode=(registry_pb2.UpdateRequest.MODE_REPLACE if replace
                      else registry_pb2.UpdateRequest.MODE_MERGE),
                request_id=str(uuid.uuid4())), timeout=30, metadata=metadata)
    except grpc.RpcError as exc:
        _rpc_die(exc, target)
        raise
    typer.echo(f"updated {response.handle} version {response.version} etag {response.etag}")


def delete_command(
    handle: str,
    indexes: Annotated[list[int] | None, typer.Option(
        "--index", help="Delete only the value at this index (repeatable); without it the "
                        "whole identifier.")] = None,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Delete an identifier, or some of its values (guarded by the etag of a resolve)."""
    from idnode.v1 import registry_pb2_grpc, resolver_pb2_grpc

    metadata = auth_metadata(identity, secret, token)
    try:
        with channel(target) as ch:
            _, etag = _current(resolver_pb2_grpc.ResolverStub(ch), handle, metadata)
            response = registry_pb2_grpc.RegistryStub(ch).Delete(registry_pb2.DeleteRequest(
                handle=handle, etag=etag, indexes=indexes or [],
                request_id=str(uuid.uuid4())), timeout=30, metadata=metadata)
    except grpc.RpcError as exc:
        _rpc_die(exc, target)
        raise
    if response.version:
        typer.echo(f"deleted index {', '.join(map(str, indexes or []))} of {response.handle}; "
                   f"version {response.version} etag {response.etag}")
    else:
        typer.echo(f"deleted {response.handle}")


def resolve_json(record: record_pb2.Record, etag: str, key_id: str) -> str:
    """``resolve --json``: one line, the Handle REST record plus version, etag and key."""
    doc = record_dict(record)
    doc.update(version=record.version, etag=etag, verified_by=key_id)
    return json.dumps(doc, ensure_ascii=False)


def register(app: typer.Typer) -> None:
    """Add the bulk and scripting commands to the ``idnode`` app."""
    app.command("import", help=(import_command.__doc__ or "") + "\n\n\b\n" + IMPORT_HELP)(
        import_command)
    app.command("export")(export_command)
    app.command("list")(list_command)
    app.command("update")(update_command)
    app.command("delete")(delete_command)
