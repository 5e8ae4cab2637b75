"""Metadata templates (元数据模板): what a record under a prefix must or may carry.

A template is versioned per prefix (``prefix`` + ``version``) and holds items — ``name``,
``idType`` (the value type), ``idIndex`` (≥ 2000), ``required``, ``state`` (enabled or
disabled) and a schema (``metadata`` in the SNMS shape: data type, lengths, pattern,
number range and precision, date format, enum values). A record *based on* a template
names its version at index 1001 (a ``TEMPLATE`` value, as SNMS keeps it) and is checked
against it on every write; every violation is reported at once.

Everything here is pure (no I/O): parsing with every problem reported at once, the
lifecycle (draft → published → withdrawn), the rule that an idIndex keeps its idType in
every version of a prefix's templates, checking a record's values, the dict codec (the
SNMS JSON shape; the stores keep templates as this JSON), and :class:`TemplateBook`, the
in-process cache the registrar reads templates through (it is handed a loader).
Decisions are in docs/ARCHITECTURE.md, "Metadata templates".
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from registry.access.grants import parse_item_grant
from registry.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidIdentifier,
    InvalidValue,
    NotFound,
    ResourceExhausted,
    Violation,
)
from registry.identifier import Handle, Prefix
from registry.values import MAX_DATA_BYTES, MAX_INDEX, MAX_TYPE_CHARS, Value

TEMPLATE_INDEX = 1001  # where a record names its template (SNMS reserves it)
TEMPLATE_TYPE = "TEMPLATE"  # the type of that value (SNMS's)
MIN_ITEM_INDEX = 2000  # items live at 2000 and above ("从2000开始")
MAX_ITEMS = 128  # a record holds at most 128 values (registry.values)
MAX_VERSIONS = 1000  # versions per prefix
MAX_VERSION_CHARS = 128  # SNMS: version ≤ 128
MAX_NAME_CHARS = 128
MAX_DESCRIPTION_CHARS = 1000
MAX_PATTERN_CHARS = 512
MAX_ENUM_VALUES = 256
MAX_GRANTS = 100
MAX_PRECISION = 18
MESSAGE_VIOLATIONS = 10  # listed in full in an error's message; the structured list has all
VALUE_SNIPPET_CHARS = 64
DEFAULT_DATE_FORMAT = "yyyy-MM-dd"

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")
_TYPE = re.compile(r"[^\s\x00-\x1f\x7f]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.([0-9]+))?")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_INDUSTRY = {"industryCategory": re.compile(r"[A-T]"),
             "industrySpecific": re.compile(r"[0-9]{2}"),
             "industryTrade": re.compile(r"[0-9]{3}"),
             "industrySubclass": re.compile(r"[0-9]{4}")}
_DATE_TOKENS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_DATE_TOKEN = re.compile(r"yyyy|MM|dd|HH|mm|ss|[A-Za-z]|%|.", re.DOTALL)
_SAMPLE_DATE = dt.datetime(2024, 12, 31, 23, 59, 58)


class TemplateState(StrEnum):
    """draft (editable, accepts no records) → published (immutable, accepts records) →
    withdrawn (final; records already based on it stay writable)."""

    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class ItemState(StrEnum):
    """Items are disabled, never deleted (SNMS ``state`` 1 enabled, 0 disabled)."""

    ENABLED = "enabled"
    DISABLED = "disabled"


class DataType(StrEnum):
    STRING = "string"
    NUMBER = "number"  # decimal text; precision 0 makes it an integer
    DATE = "date"  # with a format (default yyyy-MM-dd)
    URL = "url"  # absolute http or https URL
    ENUM = "enum"  # one of the schema's values
    FILE = "file"  # an http(s) URL of the file, or its digest sha256:<64 hex>
    REFERENCE = "reference"  # another identifier, <prefix>/<suffix>


# Names a file may use for a data type (SNMS sends "string"; the shared contract says
# int and decimal).
_TYPE_ALIASES = {"int": (DataType.NUMBER, 0), "integer": (DataType.NUMBER, 0),
                 "decimal": (DataType.NUMBER, None), "uri": (DataType.URL, None),
                 "handle": (DataType.REFERENCE, None), "identifier": (DataType.REFERENCE, None)}


@dataclass(frozen=True, slots=True)
class Schema:
    """The rules a value's data follows (SNMS ``metadata``). Lengths count characters."""

    type: DataType = DataType.STRING
    min_length: int | None = None
    max_length: int | None = None
    pattern: str = ""  # matched against the whole text
    minimum: Decimal | None = None  # numbers
    maximum: Decimal | None = None
    precision: int | None = None  # at most this many digits after the point
    format: str = ""  # dates; "" means yyyy-MM-dd
    values: tuple[str, ...] = ()  # enum
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    strptime: str = field(default="", compare=False, repr=False)
    date_regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    # A string without rules: nothing to check (most items of most templates).
    plain: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.pattern and self.regex is None:
            object.__setattr__(self, "regex", re.compile(self.pattern))
        if self.type is DataType.DATE and not self.strptime:
            object.__setattr__(self, "strptime", _strptime(self.format or DEFAULT_DATE_FORMAT))
        if self.strptime and self.date_regex is None:
            object.__setattr__(self, "date_regex", _date_regex(self.strptime))
        object.__setattr__(self, "plain", self.type is DataType.STRING and not self.pattern
                           and self.min_length is None and self.max_length is None)

    def broken(self, data: str) -> list[tuple[str, str]]:
        """``(rule, detail)`` for every rule ``data`` breaks (empty when none). Built
        only on failure: every templated write runs this for every value."""
        out: list[tuple[str, str]] = []
        size = len(data)
        if self.min_length is not None and size < self.min_length:
            out.append(("minLength", f"has {size} characters, at least {self.min_length}"))
        if self.max_length is not None and size > self.max_length:
            out.append(("maxLength", f"has {size} characters, at most {self.max_length}"))
        if self.regex is not None and self.regex.fullmatch(data) is None:
            out.append(("pattern", f"does not match {self.pattern}"))
        kind = self.type
        if kind is DataType.STRING:
            return out
        if kind is DataType.NUMBER:
            self._check_number(data, out)
        elif kind is DataType.DATE:
            if not _is_date(data, self.strptime, self.date_regex):
                out.append(("date", "is not a date in the format "
                                    f"{self.format or DEFAULT_DATE_FORMAT}"))
        elif kind is DataType.URL:
            if not _is_url(data):
                out.append(("url", "is not an absolute http or https URL"))
        elif kind is DataType.ENUM:
            if data not in self.values:
                out.append(("enum", f"is not one of {', '.join(self.values[:10])}"
                                     f"{', …' if len(self.values) > 10 else ''}"))
        elif kind is DataType.FILE:
            if _DIGEST.fullmatch(data) is None and not _is_url(data):
                out.append(("file", "is neither an http(s) URL nor a digest "
                                    "sha256:<64 hex digits>"))
        elif kind is DataType.REFERENCE:
            try:
                Handle.parse(data)
            except InvalidIdentifier as exc:
                out.append(("reference", f"is not an identifier ({exc.message})"))
        return out

    def _check_number(self, data: str, out: list[tuple[str, str]]) -> None:
        match = _NUMBER.fullmatch(data)
        if match is None:
            out.append(("number", "is not a number (digits, an optional '-' and '.')"))
            return
        decimals = len(match.group(1) or "")
        if self.precision is not None and decimals > self.precision:
            out.append(("precision", "is not a whole number" if self.precision == 0 else
                        f"has {decimals} digits after the point, at most {self.precision}"))
        if self.minimum is None and self.maximum is None:
            return
        number = Decimal(data)
        if self.minimum is not None and number < self.minimum:
            out.append(("minimum", f"is below the minimum {self.minimum}"))
        if self.maximum is not None and number > self.maximum:
            out.append(("maximum", f"is above the maximum {self.maximum}"))


@dataclass(frozen=True, slots=True)
class Item:
    """One field of a template. ``grants``: who may read (or read and write) the item's
    value, ``"index:handle"`` or ``"index:handle rw"`` (registry.access.grants); empty: the
    item is public (the value's own Handle permissions decide)."""

    name: str
    id_type: str
    id_index: int
    required: bool = False
    state: ItemState = ItemState.ENABLED
    schema: Schema = Schema()
    grants: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Industry:
    """The industry classification (GB/T 4754, as SNMS asks for it): 门类 category (a
    letter A–T), 大类 specific (2 digits), 中类 trade (3), 小类 subclass (4); each code
    starts with the one above it. All optional."""

    category: str = ""
    specific: str = ""
    trade: str = ""
    subclass: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    """One version of a prefix's template. ``serial`` is its creation order within the
    prefix (assigned when first put); times are seconds since the epoch (0: not yet)."""

    prefix: Prefix
    version: str
    items: tuple[Item, ...]
    state: TemplateState = TemplateState.DRAFT
    description: str = ""
    industry: Industry = Industry()
    object_type: int = 0  # SNMS ``type``: 1 active carrier (主动标识载体), 2 other, 0 unset
    allow_other_types: bool = False  # values at ≥ 2000 that are no item: refused unless set
    serial: int = 0
    created_at: int = 0
    updated_at: int = 0
    published_at: int = 0
    withdrawn_at: int = 0
    updated_by: str = ""
    by_index: Mapping[int, Item] = field(default_factory=dict, compare=False, repr=False)
    by_type: Mapping[str, Item] = field(default_factory=dict, compare=False, repr=False)
    required: tuple[Item, ...] = field(default=(), compare=False, repr=False)
    # Restricted items: idIndex -> ((ref key, access), ...) from the items' grants.
    access: Mapping[int, tuple[tuple[str, int], ...]] = field(default_factory=dict,
                                                              compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "access", {
            i.id_index: _grant_entries(i.grants) for i in self.items if i.grants})
        object.__setattr__(self, "by_index", {i.id_index: i for i in self.items})
        object.__setattr__(self, "by_type", {i.id_type: i for i in self.items})
        object.__setattr__(self, "required", tuple(
            i for i in self.items if i.required and i.state is ItemState.ENABLED))

    @property
    def name(self) -> str:
        return f"template {self.prefix.text} version {self.version}"


# --- parsing (every problem at once) ---------------------------------------------------------

_TEMPLATE_KEYS = {"prefix", "version", "description", "type", "allowOtherTypes", "items",
                  *_INDUSTRY}
# What a template's answer carries besides its content (and SNMS's own extras): accepted
# and ignored on input, so a template read back can be edited and put again.
_TEMPLATE_OUTPUT_KEYS = {"state", "serial", "createdAt", "updatedAt", "publishedAt",
                         "withdrawnAt", "updatedBy", "id", "name", "handle"}
_ITEM_KEYS = {"name", "idType", "idIndex", "required", "state", "metadata", "grants"}
_ITEM_OUTPUT_KEYS = {"id", "metadataId", "handle"}
_METADATA_KEYS = {"type", "minLength", "maxLength", "pattern", "minimum", "maximum",
                  "precision", "format", "enum"}


class _Problems:
    """Collects what is wrong with a template being parsed."""

    def __init__(self) -> None:
        self.found: list[Violation] = []

    def add(self, rule: str, value: object, detail: str, *, index: int = 0, id_type: str = "",
            name: str = "") -> None:
        self.found.append(_violation(index, id_type, name, rule, _shown(value), detail))

    def raise_if_any(self, what: str) -> None:
        if self.found:
            raise InvalidArgument(_listing(f"{what} is not a valid template", self.found),
                                  violations=self.found)


def parse_template(data: Mapping[str, Any], *, prefix: str = "",
                   stored: bool = False) -> Template:
    """A draft template from its dict (the SNMS JSON shape, see :func:`template_to_dict`);
    every problem is reported at once in one InvalidArgument (message and
    ``violations``). ``prefix`` is the prefix the caller named (the body's ``prefix``
    must be absent or the same). ``stored`` reads the state and times too (the stores'
    codec); otherwise they are ignored, so an answer can be edited and put again."""
    if not isinstance(data, Mapping):
        raise InvalidArgument("a template is an object with prefix, version and items")
    problems = _Problems()
    for key in data:
        if key not in _TEMPLATE_KEYS and key not in _TEMPLATE_OUTPUT_KEYS:
            problems.add(str(key), "", "is not a field of a template")
    parsed_prefix = _parse_prefix(data.get("prefix"), prefix, problems)
    version = _parse_version(data.get("version"), problems)
    description = _text(data.get("description", ""), "description", MAX_DESCRIPTION_CHARS,
                        problems, allow_empty=True)
    industry = _parse_industry(data, problems)
    object_type = _parse_object_type(data.get("type", 0), problems)
    allow_other = data.get("allowOtherTypes", False)
    if not isinstance(allow_other, bool):
        problems.add("allowOtherTypes", allow_other, "must be true or false")
        allow_other = False
    items = _parse_items(data.get("items"), problems)
    problems.raise_if_any(f"template {parsed_prefix.text if parsed_prefix else prefix} "
                          f"version {version or '?'}")
    assert parsed_prefix is not None
    template = Template(parsed_prefix, version, items, description=description,
                        industry=industry, object_type=object_type,
                        allow_other_types=allow_other)
    if stored:
        template = replace(
            template, state=TemplateState(data.get("state", "draft")),
            serial=int(data.get("serial", 0)), created_at=int(data.get("createdAt", 0)),
            updated_at=int(data.get("updatedAt", 0)),
            published_at=int(data.get("publishedAt", 0)),
            withdrawn_at=int(data.get("withdrawnAt", 0)),
            updated_by=str(data.get("updatedBy", "")))
    return template


def _parse_prefix(value: object, named: str, problems: _Problems) -> Prefix | None:
    text = value if value not in (None, "") else named
    if not text:
        problems.add("prefix", "", "is required")
        return None
    try:
        parsed = Prefix.parse(text)
    except InvalidIdentifier as exc:
        problems.add("prefix", text, exc.message)
        return None
    if named and parsed.key != Prefix.parse(named).key:
        problems.add("prefix", text, f"differs from the prefix named in the request ({named})")
        return None
    return parsed


def _parse_version(value: object, problems: _Problems) -> str:
    if isinstance(value, bool | float):
        problems.add("version", value, "must be a string: quote it (a number such as 1.10 "
                                       "would be read as 1.1)")
        return ""
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value:
        problems.add("version", value, "is required (a string such as 1.0)")
        return ""
    if len(value) > MAX_VERSION_CHARS or _VERSION.fullmatch(value) is None:
        problems.add("version", value, f"must be 1–{MAX_VERSION_CHARS} characters of "
                                       "letters, digits, '.', '_' and '-', starting with a "
                                       "letter or digit")
        return ""
    return value


def check_version(value: str) -> str:
    """A version named in a request (GetTemplate, PublishTemplate, a record's 1001)."""
    problems = _Problems()
    version = _parse_version(value, problems)
    if problems.found:
        raise InvalidArgument(f"version {problems.found[0].detail}")
    return version


def _text(value: object, rule: str, limit: int, problems: _Problems, *,
          allow_empty: bool = False, index: int = 0, id_type: str = "",
          name: str = "") -> str:
    if not isinstance(value, str):
        problems.add(rule, value, "must be a string", index=index, id_type=id_type, name=name)
        return ""
    if not value and not allow_empty:
        problems.add(rule, value, "is required", index=index, id_type=id_type, name=name)
    elif len(value) > limit:
        problems.add(rule, value, f"is longer than {limit} characters", index=index,
                     id_type=id_type, name=name)
    elif not value.replace("\n", " ").isprintable():
        problems.add(rule, value, "contains control characters", index=index,
                     id_type=id_type, name=name)
    return value


def _parse_industry(data: Mapping[str, Any], problems: _Problems) -> Industry:
    codes: dict[str, str] = {}
    for key, shape in _INDUSTRY.items():
        value = data.get(key, "")
        if value in (None, ""):
            codes[key] = ""
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or shape.fullmatch(value) is None:
            problems.add(key, value, "is not a GB/T 4754 code of that level (category: a "
                                     "letter A–T; specific: 2 digits; trade: 3; subclass: 4)")
            value = ""
        codes[key] = value
    specific, trade, subclass = (codes["industrySpecific"], codes["industryTrade"],
                                 codes["industrySubclass"])
    if specific and trade and not trade.startswith(specific):
        problems.add("industryTrade", trade, f"does not start with industrySpecific {specific}")
    if trade and subclass and not subclass.startswith(trade):
        problems.add("industrySubclass", subclass,
                     f"does not start with industryTrade {trade}")
    return Industry(codes["industryCategory"], specific, trade, subclass)


def _parse_object_type(value: object, problems: _Problems) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or value not in (0, 1, 2):
        problems.add("type", value, "must be 1 (主动标识载体, an active carrier) or 2 (other)")
        return 0
    assert isinstance(value, int)
    return value


def _parse_items(value: object, problems: _Problems) -> tuple[Item, ...]:
    if not isinstance(value, list | tuple) or not value:
        problems.add("items", "" if value is None else value, "must be a non-empty list")
        return ()
    if len(value) > MAX_ITEMS:
        problems.add("items", len(value), f"a template has at most {MAX_ITEMS} items")
        return ()
    parsed = [_parse_item(n, raw, problems) for n, raw in enumerate(value)]
    for position, rule in ((1, "name"), (2, "idType"), (3, "idIndex")):
        seen: set[object] = set()
        for found in parsed:
            key = found[position]
            if key in seen:
                problems.add(rule, key, "appears in more than one item (it is unique in a "
                                        "template)", index=found[3], id_type=found[2],
                             name=found[1])
            if key:
                seen.add(key)
    items = [found[0] for found in parsed if found[0] is not None]
    return tuple(sorted(items, key=lambda i: i.id_index))


def _parse_item(n: int, raw: object,
                problems: _Problems) -> tuple[Item | None, str, str, int]:
    """The item (None when it has a problem) and its name, idType and idIndex, which
    are unique in a template."""
    where = f"items[{n}]"
    if not isinstance(raw, Mapping):
        problems.add(where, raw, "must be an object with name, idType, idIndex")
        return None, "", "", 0
    before = len(problems.found)
    for key in raw:
        if key not in _ITEM_KEYS and key not in _ITEM_OUTPUT_KEYS:
            problems.add(f"{where}.{key}", "", "is not a field of an item")
    index = _parse_index(raw.get("idIndex"), where, problems)
    id_type = raw.get("idType")
    if not isinstance(id_type, str) or not id_type or len(id_type) > MAX_TYPE_CHARS \
            or _TYPE.fullmatch(id_type) is None:
        problems.add("idType", id_type, f"must be a value type: 1–{MAX_TYPE_CHARS} "
                                        "characters without whitespace", index=index)
        id_type = ""
    elif id_type.upper().startswith("HS_") or id_type.upper() == TEMPLATE_TYPE:
        problems.add("idType", id_type, "is a Handle system type, not a metadata field",
                     index=index, id_type=id_type)
    name = _text(raw.get("name"), "name", MAX_NAME_CHARS, problems, index=index,
                 id_type=id_type)
    required = raw.get("required", False)
    if required in (0, 1) and not isinstance(required, bool):
        required = bool(required)
    if not isinstance(required, bool):
        problems.add("required", required, "must be true or false", index=index,
                     id_type=id_type, name=name)
        required = False
    state = _parse_item_state(raw.get("state", 1), problems, index, id_type, name)
    schema = _parse_schema(raw.get("metadata"), problems, index, id_type, name)
    grants = _parse_grants(raw.get("grants", []), problems, index, id_type, name)
    if len(problems.found) > before or schema is None:
        return None, name, id_type, index
    return Item(name, id_type, index, required, state, schema, grants), name, id_type, index


def _parse_index(value: object, where: str, problems: _Problems) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())  # SNMS examples send "2000"
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add("idIndex", "" if value is None else value,
                     f"{where} needs an idIndex (a whole number from {MIN_ITEM_INDEX})")
        return 0
    if not MIN_ITEM_INDEX <= value <= MAX_INDEX:
        problems.add("idIndex", value, f"must be {MIN_ITEM_INDEX}..{MAX_INDEX} (items live "
                                       f"at {MIN_ITEM_INDEX} and above)", index=value)
    return value


def _parse_item_state(value: object, problems: _Problems, index: int, id_type: str,
                      name: str) -> ItemState:
    if value in (1, "1", "enabled", True):
        return ItemState.ENABLED
    if value in (0, "0", "disabled", False):
        return ItemState.DISABLED
    problems.add("state", value, "must be 1 (enabled) or 0 (disabled)", index=index,
                 id_type=id_type, name=name)
    return ItemState.ENABLED


def _parse_grants(value: object, problems: _Problems, index: int, id_type: str,
                  name: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_GRANTS:
        problems.add("grants", value, f"must be a list of at most {MAX_GRANTS} identities",
                     index=index, id_type=id_type, name=name)
        return ()
    out = []
    seen: set[str] = set()
    for grant in value:
        if not isinstance(grant, str):
            problems.add("grants", grant, "must be a string: index:handle, optionally "
                                          "followed by r or rw", index=index,
                         id_type=id_type, name=name)
            continue
        try:
            ref, _ = parse_item_grant(grant)
        except InvalidArgument as exc:
            problems.add("grants", grant, exc.message, index=index, id_type=id_type,
                         name=name)
            continue
        if ref in seen:
            problems.add("grants", grant, "names an identity twice", index=index,
                         id_type=id_type, name=name)
            continue
        seen.add(ref)
        out.append(" ".join(grant.split()))
    return tuple(out)


def _grant_entries(grants: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """Parsed item grants; strings that no longer parse (stored by an older build) are
    left out: they grant nothing."""
    out: list[tuple[str, int]] = []
    for grant in grants:
        try:
            out.append(parse_item_grant(grant))
        except InvalidArgument:
            continue
    return tuple(out)


def _parse_schema(raw: object, problems: _Problems, index: int, id_type: str,
                  name: str) -> Schema | None:
    """The item's ``metadata``; absent means a string without limits."""
    def bad(rule: str, value: object, detail: str) -> None:
        problems.add(rule, value, detail, index=index, id_type=id_type, name=name)

    if raw is None:
        return Schema()
    if not isinstance(raw, Mapping):
        bad("metadata", raw, "must be an object (type, minLength, maxLength, ...)")
        return None
    before = len(problems.found)
    for key in raw:
        if key not in _METADATA_KEYS:
            bad(f"metadata.{key}", "", "is not a rule of an item's metadata")
    kind_text = raw.get("type", "string")
    precision_default: int | None = None
    kind = DataType.STRING
    if not isinstance(kind_text, str):
        bad("type", kind_text, "must be a data type name")
    elif kind_text.lower() in _TYPE_ALIASES:
        kind, precision_default = _TYPE_ALIASES[kind_text.lower()]
    else:
        try:
            kind = DataType(kind_text.lower())
        except ValueError:
            bad("type", kind_text, "is not a data type (string, number, date, url, enum, "
                                   "file, reference)")
    min_length = _bound(raw.get("minLength"), "minLength", MAX_DATA_BYTES, bad)
    max_length = _bound(raw.get("maxLength"), "maxLength", MAX_DATA_BYTES, bad)
    if min_length is not None and max_length is not None and min_length > max_length:
        bad("minLength", min_length, f"is above maxLength {max_length}")
    pattern = raw.get("pattern", "") or ""
    regex = _parse_pattern(pattern, bad)
    minimum = _decimal(raw.get("minimum"), "minimum", bad)
    maximum = _decimal(raw.get("maximum"), "maximum", bad)
    precision = _bound(raw.get("precision", precision_default), "precision", MAX_PRECISION,
                       bad)
    for rule, given in (("minimum", minimum), ("maximum", maximum), ("precision", precision)):
        if given is not None and kind is not DataType.NUMBER and rule in raw:
            bad(rule, given, "applies to number items only")
    if minimum is not None and maximum is not None and minimum > maximum:
        bad("minimum", minimum, f"is above maximum {maximum}")
    date_format = raw.get("format", "") or ""
    strptime = ""
    if not isinstance(date_format, str):
        bad("format", date_format, "must be a date format such as yyyy-MM-dd")
    elif date_format and kind is not DataType.DATE:
        bad("format", date_format, "applies to date items only")
    elif kind is DataType.DATE:
        strptime = _strptime(date_format or DEFAULT_DATE_FORMAT)
        if not strptime:
            bad("format", date_format, "is not a date format: use yyyy MM dd HH mm ss and "
                                       "separators (yyyy-MM-dd), or a strftime format (%Y-%m-%d)")
    values = _parse_enum(raw.get("enum"), kind, bad)
    if len(problems.found) > before:
        return None
    return Schema(kind, min_length, max_length, pattern, minimum, maximum, precision,
                  date_format, values, regex, strptime)


def _bound(value: object, rule: str, limit: int,
           bad: Callable[[str, object, str], None]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        bad(rule, value, f"must be a whole number 0..{limit}")
        return None
    return value


def _decimal(value: object, rule: str,
             bad: Callable[[str, object, str], None]) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        bad(rule, value, "must be a number")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        bad(rule, value, "must be a number")
        return None
    if not number.is_finite():
        bad(rule, value, "must be a finite number")
        return None
    return number


def _parse_enum(value: object, kind: DataType,
                bad: Callable[[str, object, str], None]) -> tuple[str, ...]:
    if value is None:
        if kind is DataType.ENUM:
            bad("enum", "", "an enum item lists its values in enum")
        return ()
    if kind is not DataType.ENUM:
        bad("enum", value, "applies to enum items only")
        return ()
    if not isinstance(value, list | tuple) or not value or len(value) > MAX_ENUM_VALUES \
            or not all(isinstance(v, str) and v for v in value):
        bad("enum", value, f"must be a list of 1–{MAX_ENUM_VALUES} non-empty strings")
        return ()
    if len(set(value)) != len(value):
        bad("enum", value, "lists a value twice")
        return ()
    return tuple(value)


def _parse_pattern(pattern: object, bad: Callable[[str, object, str], None]) \
        -> re.Pattern[str] | None:
    if not isinstance(pattern, str):
        bad("pattern", pattern, "must be a regular expression")
        return None
    if not pattern:
        return None
    if len(pattern) > MAX_PATTERN_CHARS:
        bad("pattern", pattern, f"is longer than {MAX_PATTERN_CHARS} characters")
        return None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        bad("pattern", pattern, f"is not a regular expression ({exc})")
        return None
    risky = backtracking_risk(pattern)
    if risky:
        bad("pattern", pattern, risky)
        return None
    return regex


def backtracking_risk(pattern: str) -> str:
    """Why ``pattern`` could take exponential time on some text ('' when it cannot in
    the way this looks for): a group repeated without bound (``*``, ``+``, ``{n,}``)
    whose body has a variable quantifier or an alternation, like ``(a+)+`` or
    ``(a|ab)*``. Every templated write runs the pattern, so such patterns are refused;
    a character class or an unrolled group says the same safely. Conservative: some
    refused patterns (``(-[0-9]+)*``) would in fact be fast."""
    stack: list[bool] = []  # per open group: does its body vary (quantifier or |)?
    last_group_varies = False  # the token just before is a group whose body varies
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            last_group_varies = False
            continue
        if c == "[":
            i = _class_end(pattern, i)
            last_group_varies = False
            continue
        if c == "(":
            i = _group_body(pattern, i, stack)
            last_group_varies = False
            continue
        if c == ")":
            varies = stack.pop() if stack else False
            if varies and stack:
                stack[-1] = True
            last_group_varies = varies
            i += 1
            continue
        braces = _BRACES.match(pattern, i) if c == "{" else None
        if c in "*+?" or braces is not None:
            text = braces.group(0) if braces is not None else c
            unbounded = c in "*+" or text.endswith(",}")
            if unbounded and last_group_varies:
                return ("repeats a group that itself varies (a nested quantifier or an "
                        "alternation under *, + or {n,}): it can backtrack for ever; use a "
                        "character class or unroll the group")
            if (c in "*+?" or _variable_braces(text)) and stack:
                stack[-1] = True
            i += len(text)
            if i < n and pattern[i] in "?+":  # lazy or possessive
                i += 1
            last_group_varies = False
            continue
        if c == "|" and stack:
            stack[-1] = True
        last_group_varies = False
        i += 1
    return ""


_BRACES = re.compile(r"\{[0-9]*,?[0-9]*\}")


def _class_end(pattern: str, i: int) -> int:
    """The position after the character class that starts at ``i``."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _group_body(pattern: str, i: int, stack: list[bool]) -> int:
    """Open the group at ``i`` (pushed on ``stack``) and return where its body starts;
    inline flags ``(?i)`` and references ``(?P=name)`` open nothing."""
    if not pattern.startswith("(?", i):
        stack.append(False)
        return i + 1
    for opener in ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"):
        if pattern.startswith(opener, i):
            stack.append(False)
            return i + len(opener)
    if pattern.startswith("(?P<", i):
        stack.append(False)
        return pattern.find(">", i) + 1 or len(pattern)
    close = pattern.find(")", i)  # (?i), (?P=name), (?#comment)
    return close + 1 if close >= 0 else len(pattern)


def _variable_braces(quantifier: str) -> bool:
    body = quantifier.strip("{}")
    low, sep, high = body.partition(",")
    return bool(sep) and low.strip() != high.strip()


def _strptime(fmt: str) -> str:
    """A strptime format for ``fmt`` (yyyy-MM-dd tokens, or strftime as is); '' when it
    is not a usable date format."""
    if "%" in fmt:
        out = fmt
    else:
        parts = []
        for match in _DATE_TOKEN.finditer(fmt):
            token = match.group(0)
            if token in _DATE_TOKENS:
                parts.append(_DATE_TOKENS[token])
            elif token.isascii() and token.isalpha():
                return ""  # a letter that is no token (yy, M, d): ambiguous
            else:
                parts.append(token)
        out = "".join(parts)
    try:
        sample = _SAMPLE_DATE.strftime(out)
        if sample == out or dt.datetime.strptime(sample, out).strftime(out) != sample:
            return ""
    except ValueError:
        return ""
    return out


def _date_regex(fmt: str) -> re.Pattern[str] | None:
    """A regular expression for a strptime format made of %Y %m %d %H %M %S (each at
    most once) and literal text: ten times faster than strptime; None for any other
    format (strptime then)."""
    parts = []
    seen = set()
    for match in re.finditer(r"%(.)|[^%]+", fmt, re.DOTALL):
        directive = match.group(1)
        if directive is None:
            parts.append(re.escape(match.group(0)))
        elif directive == "%":
            parts.append("%")
        elif directive in _DATE_FIELDS and directive not in seen:
            seen.add(directive)
            parts.append(f"(?P<{directive}>[0-9]{{{4 if directive == 'Y' else 2}}})")
        else:
            return None
    return re.compile("".join(parts))


_DATE_FIELDS = {"Y": 1900, "m": 1, "d": 1, "H": 0, "M": 0, "S": 0}


def _is_date(text: str, fmt: str, regex: re.Pattern[str] | None = None) -> bool:
    if regex is not None:
        match = regex.fullmatch(text)
        if match is None:
            return False
        found = match.groupdict()
        y, mo, d, h, mi, sec = (int(found[k]) if k in found else default
                                for k, default in _DATE_FIELDS.items())
        try:
            dt.datetime(y, mo, d, h, mi, sec)  # a real day and time (no 30 February)
        except ValueError:
            return False
        return True
    try:
        # Round trip: strptime alone takes "2024-1-5" for %m and %d.
        return dt.datetime.strptime(text, fmt).strftime(fmt) == text
    except ValueError:
        return False


def _is_url(text: str) -> bool:
    if not text.isprintable() or " " in text:
        return False
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# --- the dict codec (SNMS shape) ---------------------------------------------------------------


def template_to_dict(t: Template) -> dict[str, Any]:
    """The template in the SNMS JSON shape (``idType``, ``idIndex``, ``required``,
    ``state`` 1/0, ``metadata``), with idnode's lifecycle fields beside it."""
    out: dict[str, Any] = {"prefix": t.prefix.text, "version": t.version,
                           "state": t.state.value}
    industry = t.industry
    for key, code in (("industryCategory", industry.category),
                      ("industrySpecific", industry.specific),
                      ("industryTrade", industry.trade),
                      ("industrySubclass", industry.subclass)):
        if code:
            out[key] = code
    if t.object_type:
        out["type"] = t.object_type
    if t.description:
        out["description"] = t.description
    if t.allow_other_types:
        out["allowOtherTypes"] = True
    out["items"] = [item_to_dict(i) for i in t.items]
    for key, number in (("serial", t.serial), ("createdAt", t.created_at),
                        ("updatedAt", t.updated_at), ("publishedAt", t.published_at),
                        ("withdrawnAt", t.withdrawn_at)):
        if number:
            out[key] = number
    if t.updated_by:
        out["updatedBy"] = t.updated_by
    return out


def item_to_dict(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {"name": item.name, "idType": item.id_type,
                           "idIndex": item.id_index, "required": item.required,
                           "state": 1 if item.state is ItemState.ENABLED else 0,
                           "metadata": schema_to_dict(item.schema)}
    if item.grants:
        out["grants"] = list(item.grants)
    return out


def schema_to_dict(s: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {"type": s.type.value}
    if s.min_length is not None:
        out["minLength"] = s.min_length
    if s.max_length is not None:
        out["maxLength"] = s.max_length
    if s.pattern:
        out["pattern"] = s.pattern
    for key, number in (("minimum", s.minimum), ("maximum", s.maximum)):
        if number is not None:
            out[key] = int(number) if number == number.to_integral_value() else str(number)
    if s.precision is not None:
        out["precision"] = s.precision
    if s.format:
        out["format"] = s.format
    if s.values:
        out["enum"] = list(s.values)
    return out


# --- the lifecycle (run by the store under its write lock) ----------------------------------


def put_draft(existing: Sequence[Template], new: Template, now: int, by: str) -> Template:
    """``new`` as the draft to store, given every template of its prefix: a new version,
    or an edit of a draft (a published or withdrawn version never changes). Its items
    must agree with every other version (:func:`index_conflicts`)."""
    same = _find(existing, new.version)
    if same is not None and same.state is not TemplateState.DRAFT:
        raise AlreadyExists(f"{same.name} is {same.state.value} and cannot change: put "
                            "a new version")
    if same is None and len(existing) >= MAX_VERSIONS:
        raise ResourceExhausted(f"prefix {new.prefix.text} has {MAX_VERSIONS} template "
                                "versions already (the most a prefix may have)")
    conflicts = index_conflicts(new, [t for t in existing if t.version != new.version])
    if conflicts:
        raise InvalidArgument(_listing(f"{new.name} disagrees with other versions",
                                       conflicts), violations=conflicts)
    serial = same.serial if same is not None else \
        max((t.serial for t in existing), default=0) + 1
    return replace(new, state=TemplateState.DRAFT, serial=serial,
                   created_at=same.created_at if same is not None else now, updated_at=now,
                   published_at=0, withdrawn_at=0, updated_by=by)


def publish(existing: Sequence[Template], version: str, now: int, by: str) -> Template:
    """Draft → published (publishing a published version again changes nothing)."""
    current = _require(existing, version)
    if current.state is TemplateState.PUBLISHED:
        return current
    if current.state is TemplateState.WITHDRAWN:
        raise AlreadyExists(f"{current.name} was withdrawn and stays withdrawn: put and "
                            "publish a new version")
    return replace(current, state=TemplateState.PUBLISHED, published_at=now, updated_at=now,
                   updated_by=by)


def withdraw(existing: Sequence[Template], version: str, now: int, by: str) -> Template:
    """Published → withdrawn (withdrawing again changes nothing); a draft is edited or
    left alone, not withdrawn."""
    current = _require(existing, version)
    if current.state is TemplateState.WITHDRAWN:
        return current
    if current.state is TemplateState.DRAFT:
        raise InvalidArgument(f"{current.name} is a draft: only a published version is "
                              "withdrawn (edit the draft with PutTemplate instead)")
    return replace(current, state=TemplateState.WITHDRAWN, withdrawn_at=now, updated_at=now,
                   updated_by=by)


def index_conflicts(new: Template, others: Iterable[Template]) -> list[Violation]:
    """An idIndex keeps its idType (and an idType its idIndex) in every version of a
    prefix's templates, so a record moving between versions keeps its values where
    they are, and an index never changes meaning. One violation per disagreeing item."""
    out: list[Violation] = []
    others = sorted(others, key=lambda t: t.serial)
    for item in new.items:
        for other in others:
            there = other.by_index.get(item.id_index)
            if there is not None and there.id_type != item.id_type:
                out.append(_violation(item.id_index, item.id_type, item.name, "idIndex", "",
                                      f"idIndex {item.id_index} is {there.id_type} in version "
                                      f"{other.version}: an index keeps its type in every "
                                      "version"))
                break
            moved = other.by_type.get(item.id_type)
            if moved is not None and moved.id_index != item.id_index:
                out.append(_violation(item.id_index, item.id_type, item.name, "idIndex", "",
                                      f"{item.id_type} is at idIndex {moved.id_index} in "
                                      f"version {other.version}: a type keeps its index in "
                                      "every version"))
                break
    return out


def with_indexes(body: Mapping[str, Any], existing: Sequence[Template]) -> dict[str, Any]:
    """``body`` with an ``idIndex`` for every item that has none (SNMS v3 has no
    indexes; v5's are optional on update): the index its ``idType`` has in another
    version of the prefix (indexes are stable), else the next one no version uses, from
    2000. Items that are not objects are left for the parser to name."""
    used: dict[str, int] = {}
    taken: set[int] = set()
    for t in existing:
        for item in t.items:
            used.setdefault(item.id_type, item.id_index)
            taken.add(item.id_index)
    raw_items = body.get("items")
    if not isinstance(raw_items, list):
        return dict(body)
    for raw in raw_items:
        if isinstance(raw, Mapping) and raw.get("idIndex") not in (None, ""):
            with_index = raw.get("idIndex")
            if isinstance(with_index, int) and not isinstance(with_index, bool):
                taken.add(with_index)
            elif isinstance(with_index, str) and with_index.strip().isdigit():
                taken.add(int(with_index.strip()))
    out_items: list[object] = []
    next_free = MIN_ITEM_INDEX
    for raw in raw_items:
        if isinstance(raw, Mapping) and raw.get("idIndex") in (None, ""):
            id_type = raw.get("idType")
            index = used.get(id_type) if isinstance(id_type, str) else None
            if index is None:
                while next_free in taken:
                    next_free += 1
                index = next_free
            taken.add(index)
            if isinstance(id_type, str):
                used.setdefault(id_type, index)
            out_items.append({**raw, "idIndex": index})
        else:
            out_items.append(raw)
    return {**body, "items": out_items}


def increment(current: Template, body: Mapping[str, Any]) -> dict[str, Any]:
    """SNMS's incremental update (``PUT /snms/api/v5/template``) of ``current`` as a whole
    template body: the body's template fields replace the current ones (``version``
    cannot change); an item whose ``idIndex`` *and* ``idType`` match an existing item
    replaces it (its grants kept unless the body names some), any other item is new;
    items the body leaves out stay as they are (items are disabled, never deleted)."""
    if not isinstance(body, Mapping):
        raise InvalidArgument("a template is an object with prefix, version and items")
    if "version" in body and str(body.get("version")) != current.version:
        raise InvalidArgument(f"version cannot change (不允许修改): this is version "
                              f"{current.version}")
    out = template_to_dict(current)
    for key in _TEMPLATE_KEYS - {"items", "prefix", "version"}:
        if key in body:
            out[key] = body[key]
    items = [dict(i) for i in out["items"]]
    raw_items = body.get("items", [])
    if not isinstance(raw_items, list):
        raise InvalidArgument("items must be an array of items")
    for raw in raw_items:
        if not isinstance(raw, Mapping):
            items.append(raw)  # the parser names the problem
            continue
        index = raw.get("idIndex")
        if isinstance(index, str) and index.strip().isdigit():
            index = int(index.strip())
        match = next((n for n, i in enumerate(items)
                      if i["idIndex"] == index and i["idType"] == raw.get("idType")), None)
        if match is None:
            items.append(dict(raw))
        else:
            merged = {**items[match], **raw, "idIndex": index}
            items[match] = merged
    out["items"] = items
    for key in _TEMPLATE_OUTPUT_KEYS:
        out.pop(key, None)
    return out


def latest_published(templates: Iterable[Template]) -> Template | None:
    """The most recently published version that is still published."""
    published = [t for t in templates if t.state is TemplateState.PUBLISHED]
    return max(published, key=lambda t: (t.published_at, t.serial), default=None)


def _find(existing: Iterable[Template], version: str) -> Template | None:
    return next((t for t in existing if t.version == version), None)


def _require(existing: Sequence[Template], version: str) -> Template:
    found = _find(existing, version)
    if found is None:
        prefix = existing[0].prefix.text if existing else "this prefix"
        raise NotFound(f"template {prefix} version {version} not found")
    return found


# --- records ---------------------------------------------------------------------------------


def template_reference(values: Sequence[Value]) -> str | None:
    """The template version a record names at index 1001 (None: not based on one)."""
    for v in values:
        if v.index == TEMPLATE_INDEX:
            return _reference(v)
    return None


def _reference(v: Value) -> str:
    data = v.data
    if v.type == TEMPLATE_TYPE and isinstance(data, str) and v.permissions.public_read \
            and len(data) <= MAX_VERSION_CHARS and _VERSION.fullmatch(data) is not None:
        return data  # the usual case, without building anything
    if v.type != TEMPLATE_TYPE:
        raise InvalidValue(f"index {TEMPLATE_INDEX} is reserved for the template reference: "
                           f"a {TEMPLATE_TYPE} value whose data is the template's version "
                           f"(got type {_shown(v.type)})")
    if not isinstance(v.data, str):
        raise InvalidValue(f"the {TEMPLATE_TYPE} value at index {TEMPLATE_INDEX} carries the "
                           "template's version as text")
    if not v.permissions.public_read:
        raise InvalidValue(f"the {TEMPLATE_TYPE} value at index {TEMPLATE_INDEX} must be "
                           "public_read: readers need the template to interpret the record")
    try:
        return check_version(v.data)
    except InvalidArgument as exc:
        raise InvalidValue(f"the {TEMPLATE_TYPE} value at index {TEMPLATE_INDEX} names no "
                           f"template: {exc.message}") from None


def check_record(template: Template, values: Sequence[Value],
                 old: Sequence[Value] = ()) -> list[Violation]:
    """Every rule ``values`` (a whole record) break against ``template``, in index order,
    required items last. ``old`` are the record's values before this write: a value at a
    disabled item is kept only if it is unchanged (same type and data)."""
    out: list[Violation] = []
    by_index = template.by_index
    by_type = template.by_type
    present: set[int] = set()
    previous: dict[int, Value] | None = None
    disabled = ItemState.DISABLED
    for index, id_type, data, *_ in values:
        item = by_index.get(index)
        if item is None:
            home = by_type.get(id_type)
            if home is not None:
                out.append(_violation(index, id_type, home.name, "idIndex", _text_of(data),
                                      f"{id_type} belongs at index {home.id_index} in "
                                      f"{template.name}"))
            elif index >= MIN_ITEM_INDEX and not template.allow_other_types:
                out.append(_violation(index, id_type, "", "unknown", _text_of(data),
                                      f"index {index} is no item of {template.name}"))
            continue
        present.add(index)
        if id_type != item.id_type:
            out.append(_violation(index, id_type, item.name, "idType", _text_of(data),
                                  f"index {index} holds {item.id_type}, not {id_type}"))
            continue
        if item.state is disabled:
            if previous is None:
                previous = {o.index: o for o in old}
            was = previous.get(index)
            if was is None or (was.type, was.data) != (id_type, data):
                out.append(_violation(index, id_type, item.name, "disabled", _text_of(data),
                                      "the item is disabled: existing values are kept, new "
                                      "or changed ones are refused"))
            continue
        if not isinstance(data, str):
            out.append(_violation(index, id_type, item.name, "text", "",
                                  "template items carry text data"))
            continue
        schema = item.schema
        if schema.plain:
            continue
        for rule, detail in schema.broken(data):
            out.append(_violation(index, id_type, item.name, rule, data, detail))
    for item in template.required:
        if item.id_index not in present:
            out.append(_violation(item.id_index, item.id_type, item.name, "required", "",
                                  "the item is required and has no value"))
    return out


def record_error(handle: object, template: Template,
                 violations: Sequence[Violation]) -> InvalidValue:
    """The one error a write gets for every violation of its record."""
    return InvalidValue(_listing(f"{handle} does not follow {template.name}", violations),
                        violations=violations)


def _listing(head: str, violations: Sequence[Violation]) -> str:
    n = len(violations)
    shown = "; ".join(v.describe() for v in violations[:MESSAGE_VIOLATIONS])
    more = f"; and {n - MESSAGE_VIOLATIONS} more" if n > MESSAGE_VIOLATIONS else ""
    return f"{head} ({n} violation{'s' if n != 1 else ''}): {shown}{more}"


def _violation(index: int, id_type: str, name: str, rule: str, value: str,
               detail: str) -> Violation:
    return Violation(index, id_type, name, rule, _cut(value),
                     f"{_shown(value)!r} {detail}" if value else detail)


def _text_of(data: object) -> str:
    return data if isinstance(data, str) else ""


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_SNIPPET_CHARS else text[:VALUE_SNIPPET_CHARS - 1] + "…"


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return _cut(text)


# --- the in-process cache ------------------------------------------------------------------------


Loader = Callable[[str, str], Template | None]


class TemplateBook:
    """Templates as the registrar reads them on every templated write.

    A published version's content never changes, so it is kept; only its state may
    still move (to withdrawn), which this process learns at once when it made the
    change (:meth:`forget`) and other processes within ``recheck_seconds`` (the entry
    is read again then). A withdrawn version is final and kept for good. Drafts and
    unknown versions are not kept (a write naming one is refused, and publishing it in
    another process must take effect at once). Bounded: at ``max_entries`` the map is
    cleared (templates are few; this only guards against a flood of versions)."""

    def __init__(self, load: Loader, *, recheck_seconds: float = 5.0,
                 max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._recheck = recheck_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[Template, float]] = {}
        self._lock = threading.Lock()

    def get(self, prefix_key: str, version: str) -> Template | None:
        key = (prefix_key, version)
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None:
            kept, read_at = entry
            if kept.state is TemplateState.WITHDRAWN or now - read_at < self._recheck:
                return kept
        template = self._load(prefix_key, version)
        with self._lock:
            if template is None or template.state is TemplateState.DRAFT:
                self._entries.pop(key, None)
            else:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[key] = (template, now)
        return template

    def forget(self, prefix_key: str, version: str) -> None:
        with self._lock:
            self._entries.pop((prefix_key, version), None)

    def __len__(self) -> int:
        return len(self._entries)


__all__ = [
    "MIN_ITEM_INDEX", "TEMPLATE_INDEX", "TEMPLATE_TYPE", "DataType", "Industry", "Item",
    "ItemState", "Schema", "Template", "TemplateBook", "TemplateState", "check_record",
    "check_version", "increment", "index_conflicts", "latest_published", "parse_template",
    "publish", "put_draft", "record_error", "template_reference", "template_to_dict",
    "with_indexes", "withdraw",
]
