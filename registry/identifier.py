"""Identifiers in Handle syntax: ``<prefix>/<suffix>``.

Parsing validates, NFC-normalises and computes the lookup key once, so everything
downstream (store, cache, change log) works on a value that is known to be well formed.
Matching is case-insensitive for ASCII letters only (the Handle default); the registered
spelling is kept for display.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from registry.errors import InvalidIdentifier

MAX_PREFIX_CHARS = 128
MAX_PREFIX_SEGMENTS = 10
MAX_SUFFIX_BYTES = 512

_SEGMENT = re.compile(r"[0-9A-Za-z-]+")
_PREFIX = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+){0,9}")
# Characters that are invisible or break lines: control (Cc), format (Cf, e.g. zero-width
# space), surrogates (Cs), unassigned (Cn) and separators (Zs, Zl, Zp).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp"})


def ascii_casefold(text: str) -> str:
    """Lower-case ASCII letters only: the Handle rule for case-insensitive matching."""
    if text.isascii():
        return text.lower()
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)


@dataclass(frozen=True, slots=True)
class Prefix:
    """A naming authority, e.g. ``88.118.8``: dot-separated segments of ``[0-9A-Za-z-]``."""

    text: str
    key: str

    @classmethod
    def parse(cls, text: object) -> Prefix:
        if not isinstance(text, str):
            raise InvalidIdentifier("prefix must be a string")
        _check_prefix(text)
        return cls(text, text.lower())

    def contains(self, other_key: str) -> bool:
        """True when ``other_key`` (a prefix key) is this prefix or below it."""
        return other_key == self.key or other_key.startswith(self.key + ".")

    def __str__(self) -> str:
        return self.text


def _check_prefix(prefix: str) -> None:
    if not prefix:
        raise InvalidIdentifier("prefix is empty")
    if len(prefix) > MAX_PREFIX_CHARS:
        raise InvalidIdentifier(f"prefix is longer than {MAX_PREFIX_CHARS} characters")
    if _PREFIX.fullmatch(prefix) is not None:
        return
    segments = prefix.split(".")
    if len(segments) > MAX_PREFIX_SEGMENTS:
        raise InvalidIdentifier(f"prefix has more than {MAX_PREFIX_SEGMENTS} segments")
    for n, segment in enumerate(segments, 1):
        if not segment:
            raise InvalidIdentifier(f"prefix segment {n} is empty")
        if _SEGMENT.fullmatch(segment) is None:
            raise InvalidIdentifier(
                f"prefix segment {n} ({segment!r}) may only contain 0-9, A-Z, a-z and '-'")
    raise InvalidIdentifier("prefix is malformed")  # pragma: no cover - the regex agrees


def _check_suffix(suffix: str) -> str:
    """Validate a suffix and return its NFC form."""
    if not suffix:
        raise InvalidIdentifier("suffix is empty")
    if suffix.isascii():
        if not suffix.isprintable() or " " in suffix:
            bad = next(c for c in suffix if not c.isprintable() or c == " ")
            kind = "whitespace" if bad == " " else "a control character"
            raise InvalidIdentifier(f"suffix contains {kind} (U+{ord(bad):04X})")
        if len(suffix) > MAX_SUFFIX_BYTES:
            raise InvalidIdentifier(f"suffix is longer than {MAX_SUFFIX_BYTES} bytes")
        return suffix
    for c in suffix:
        category = unicodedata.category(c)
        if category in _FORBIDDEN_CATEGORIES or c.isspace():
            if category == "Cs":
                raise InvalidIdentifier("suffix is not valid UTF-8 (lone surrogate)")
            kind = "whitespace" if c.isspace() or category[0] == "Z" else "a control character"
            if category == "Cn":
                kind = "an unassigned code point"
            raise InvalidIdentifier(f"suffix contains {kind} (U+{ord(c):04X})")
    if not unicodedata.is_normalized("NFC", suffix):
        suffix = unicodedata.normalize("NFC", suffix)
    if len(suffix.encode("utf-8")) > MAX_SUFFIX_BYTES:
        raise InvalidIdentifier(f"suffix is longer than {MAX_SUFFIX_BYTES} bytes of UTF-8")
    return suffix


class Handle(NamedTuple):
    """A parsed identifier: ``prefix`` and ``suffix`` as registered, ``key`` for matching.

    A NamedTuple (immutable, cheap to build): imports parse millions of these."""

    prefix: str
    suffix: str
    key: str

    @classmethod
    def parse(cls, text: object) -> Handle:
        """Parse ``text``; raise :class:`InvalidIdentifier` naming the rule it breaks."""
        if not isinstance(text, str):
            raise InvalidIdentifier("identifier must be a string")
        if not text:
            raise InvalidIdentifier("identifier is empty")
        prefix, sep, suffix = text.partition("/")
        if not sep:
            raise InvalidIdentifier(
                "identifier has no '/' between prefix and suffix (expected <prefix>/<suffix>)")
        _check_prefix(prefix)
        suffix = _check_suffix(suffix)
        return cls(prefix, suffix, prefix.lower() + "/" + ascii_casefold(suffix))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Handle:
        """Parse UTF-8 bytes; invalid UTF-8 is an :class:`InvalidIdentifier`, not a crash."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidIdentifier(f"identifier is not valid UTF-8 (byte {exc.start})") from None
        return cls.parse(text)

    @property
    def prefix_key(self) -> str:
        return self.key[: len(self.prefix)]

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"
