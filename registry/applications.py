"""Enterprise onboarding (企业前缀申请与实名审核): an enterprise applies for a prefix under
the node prefix with its details; a reviewer approves (the prefix is allocated) or
rejects it with a reason. This module holds the values and the rules that need no I/O:
what an application is, how an enterprise's details are checked (the unified social
credit code with its GB 32100-2015 check character among them), and the paging tokens of
a listing. The use case that ties them to the store, the registrar and the rights is
``node.service.applications.Applications``.

States: ``PENDING`` → ``APPROVED`` (the prefix, its admin identity and its prefix handle
were allocated in the same commit) or ``REJECTED`` (with a reason). A decision is taken
once; a prefix has at most one pending application at a time.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, replace

from registry import paging
from registry.errors import InvalidArgument
from registry.identifier import Prefix

# --- the unified social credit code (统一社会信用代码, GB 32100-2015) ------------------------

CREDIT_CODE_CHARS = 18
# The code's alphabet, in the order of the values the check computation gives them
# (0..30): the ten digits and 21 capital letters, without I, O, S, V and Z.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: n for n, c in enumerate(CREDIT_CODE_ALPHABET)}
# Weight of position i (1-based) is 3^(i-1) mod 31, for the first 17 positions.
CREDIT_CODE_WEIGHTS = tuple(pow(3, i, 31) for i in range(CREDIT_CODE_CHARS - 1))


def credit_code_check_character(body: str) -> str:
    """The check character (position 18) GB 32100-2015 gives the first 17 characters:
    ``31 - (Σ value(cᵢ)·wᵢ mod 31)``, where 31 stands for 0."""
    if len(body) != CREDIT_CODE_CHARS - 1 or any(c not in _VALUE for c in body):
        raise ValueError("the body is 17 characters of the credit code alphabet")
    total = sum(_VALUE[c] * w for c, w in zip(body, CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def check_credit_code(text: str) -> str:
    """The normalised code (surrounding whitespace removed, ASCII letters upper-cased) if
    ``text`` is a well-formed unified social credit code; else InvalidArgument naming the
    rule it breaks: required, 18 characters, the alphabet (naming the position), the check
    character. The structure inside the code (registration authority, category, region)
    is for the reviewer to compare with the business licence; it is not checked here."""
    code = "".join(c.upper() if "a" <= c <= "z" else c for c in text.strip())
    if not code:
        raise InvalidArgument("credit_code is required: the enterprise's 18-character "
                              "unified social credit code (统一社会信用代码)")
    if len(code) != CREDIT_CODE_CHARS:
        raise InvalidArgument(f"credit_code must be {CREDIT_CODE_CHARS} characters long "
                              f"(GB 32100-2015), got {len(code)}")
    for position, c in enumerate(code, 1):
        if c not in _VALUE:
            shown = c if c.isprintable() else f"U+{ord(c):04X}"
            raise InvalidArgument(
                f"credit_code character {position} ({shown!r}) is not allowed: the code "
                "uses 0-9 and the capital letters A-H, J-N, P, Q, R, T, U, W, X, Y "
                "(never I, O, S, V or Z)")
    expected = credit_code_check_character(code[:-1])
    if code[-1] != expected:
        raise InvalidArgument(
            f"credit_code check character (position 18) is {code[-1]!r}, but GB "
            f"32100-2015 gives {expected!r} for the first 17 characters: the code is "
            "mistyped")
    return code


# --- an enterprise's details -----------------------------------------------------------------

MAX_NAME_CHARS = 200
MAX_CONTACT_NAME_CHARS = 64
MAX_PHONE_CHARS = 32
MAX_EMAIL_CHARS = 254
MAX_INDUSTRY_CHARS = 100
MAX_ADDRESS_CHARS = 300
MAX_REASON_CHARS = 1000
MAX_APPLICATION_ID_CHARS = 64
MAX_REQUEST_ID_CHARS = 128
# Control (Cc), format (Cf, e.g. zero-width space), surrogates, unassigned code points and
# line/paragraph separators: text that looks like something else, or breaks lines.
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_PHONE = re.compile(r"\+?[0-9(][0-9 ()-]*[0-9]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


@dataclass(frozen=True, slots=True)
class Enterprise:
    """What an enterprise gives when it applies (实名审核 details)."""

    name: str
    credit_code: str
    contact_name: str
    contact_phone: str
    contact_email: str
    industry: str
    address: str = ""


def _text(field: str, value: str, limit: int, *, required: bool = True) -> str:
    text = value.strip()
    if not text:
        if required:
            raise InvalidArgument(f"{field} is required")
        return ""
    if len(text) > limit:
        raise InvalidArgument(f"{field} is at most {limit} characters, got {len(text)}")
    for c in text:
        if unicodedata.category(c) in _FORBIDDEN:
            raise InvalidArgument(f"{field} may not contain control, format or unassigned "
                                  f"characters (found U+{ord(c):04X})")
    return text


def check_enterprise(enterprise: Enterprise) -> Enterprise:
    """The details with surrounding whitespace removed and the credit code normalised, if
    every field keeps its rule; else InvalidArgument naming the first field that does not.
    Every field but ``address`` is required."""
    name = _text("name", enterprise.name, MAX_NAME_CHARS)
    code = check_credit_code(enterprise.credit_code)
    contact = _text("contact_name", enterprise.contact_name, MAX_CONTACT_NAME_CHARS)
    phone = _text("contact_phone", enterprise.contact_phone, MAX_PHONE_CHARS)
    digits = sum(c.isdigit() for c in phone)
    if _PHONE.fullmatch(phone) is None or not 5 <= digits <= 20:
        raise InvalidArgument("contact_phone must be a telephone number: 5 to 20 digits, "
                              "optionally a leading + and spaces, hyphens or parentheses "
                              "(e.g. 13800138000 or +86 10-1234-5678)")
    email = _text("contact_email", enterprise.contact_email, MAX_EMAIL_CHARS)
    if _EMAIL.fullmatch(email) is None:
        raise InvalidArgument("contact_email must be an e-mail address such as "
                              "name@example.com")
    industry = _text("industry", enterprise.industry, MAX_INDUSTRY_CHARS)
    address = _text("address", enterprise.address, MAX_ADDRESS_CHARS, required=False)
    return Enterprise(name, code, contact, phone, email, industry, address)


def check_reason(field: str, value: str, *, required: bool) -> str:
    """A rejection reason (required) or an approval note (optional), bounded."""
    return _text(field, value, MAX_REASON_CHARS, required=required)


def check_application_id(value: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidArgument("application_id is required")
    if len(text) > MAX_APPLICATION_ID_CHARS or not text.isascii() or not text.isprintable():
        raise InvalidArgument(f"application_id is 1..{MAX_APPLICATION_ID_CHARS} printable "
                              "ASCII characters (as ApplyPrefix or ListApplications gave it)")
    return text


def check_request_id(value: str) -> str:
    if len(value) > MAX_REQUEST_ID_CHARS or (value and not value.isprintable()):
        raise InvalidArgument(
            f"request_id must be 1..{MAX_REQUEST_ID_CHARS} printable characters")
    return value


# --- applications ----------------------------------------------------------------------------


class ApplicationState(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Application:
    """One application for ``prefix``.

    ``request_id`` (empty: none) makes submitting idempotent: the same id with the same
    ``fingerprint`` (prefix and details) returns this application, with others it is
    refused. ``sequence`` is the order of submission, assigned by the store (0 before);
    listings are newest first by it. ``decided_at`` is 0 while pending; ``reviewer`` is
    the principal that decided, ``reason`` why it rejected (or its note on approval).
    """

    id: str
    prefix: Prefix
    enterprise: Enterprise
    state: ApplicationState
    submitted_at: int
    decided_at: int = 0
    reviewer: str = ""
    reason: str = ""
    request_id: str = ""
    fingerprint: str = ""
    sequence: int = 0

    def decided(self, state: ApplicationState, reviewer: str, reason: str,
                now: int) -> Application:
        """This application as a decision leaves it."""
        return replace(self, state=state, reviewer=reviewer, reason=reason, decided_at=now)


def new_application_id() -> str:
    """16 lower-case hex characters (64 random bits)."""
    return secrets.token_hex(8)


def fingerprint(prefix: Prefix, enterprise: Enterprise) -> str:
    """What a request id stands for: the prefix and the (checked) details."""
    e = enterprise
    text = "\x1f".join((prefix.key, e.name, e.credit_code, e.contact_name, e.contact_phone,
                        e.contact_email, e.industry, e.address))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_application(prefix: Prefix, enterprise: Enterprise, now: int,
                    request_id: str = "") -> Application:
    """A pending application with a fresh id (the details must be checked already)."""
    return Application(new_application_id(), prefix, enterprise, ApplicationState.PENDING,
                       now, request_id=request_id,
                       fingerprint=fingerprint(prefix, enterprise))


# --- listing ---------------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size is at most {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def _listing(state: ApplicationState | None) -> str:
    return state.value if state is not None else "*"


def encode_page_token(state: ApplicationState | None, last_sequence: int) -> str:
    return paging.encode("applications", _listing(state), str(last_sequence))


def decode_page_token(token: str, state: ApplicationState | None) -> int:
    """The sequence a page token continues before (0: from the newest)."""
    if not token:
        return 0
    listing, last = paging.decode(token, "applications", 2)
    sequence = paging.positive_int(last)
    if listing != _listing(state):
        raise InvalidArgument("page_token belongs to another listing (another state)")
    return sequence


__all__ = [
    "Application",
    "ApplicationState",
    "Enterprise",
    "check_application_id",
    "check_credit_code",
    "check_enterprise",
    "check_reason",
    "check_request_id",
    "credit_code_check_character",
    "decode_page_token",
    "encode_page_token",
    "new_application",
    "page_size",
]
