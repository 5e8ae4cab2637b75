"""The SNMS-compatible API: what enterprise systems integrated with a secondary node's
SNMS already send (``/identity/token``, ``/identityv2/data`` and its batches).

Translation only, like every door: each call goes to the application core
(:mod:`node.service`) with the caller's ``Authorization`` value, so rights, template
checks, caching, signatures and audit are the gRPC ones. What this door decides (the
full list, with every place it differs from SNMS, is in docs/ARCHITECTURE.md, "The
SNMS-compatible API"):

- every answer is HTTP 200 with the SNMS envelope ``{status, message, data}``: 1 success,
  -1 not logged in (no or bad credentials), -2 business failure (the message says why:
  malformed JSON, a rule broken, a duplicate, a missing identifier, a rate limit), -3
  no permission, -4 internal error; ``data`` is null on failure;
- ``username``/``password`` are a principal and its secret; the token is an ordinary
  write-scoped bearer token valid 24 h. ``/identity/token/v1`` (a hash of the hash of
  the password, salted with the date) cannot be checked against a slow salted hash and
  is refused with -2;
- a record body ``R`` maps onto idnode values: ``templateVersion`` becomes the
  ``TEMPLATE`` value at index 1001 (reserved: a caller's value there is refused),
  ``auth`` absent/0 is a publicly readable value, 1 a private one (admin read/write
  only); ``data.format`` must be ``string`` (a bare string is accepted too). Values of
  ``HS_`` types (HS_ADMIN, secrets…) are Handle administration: never shown by
  ``detail``, refused in a body, kept by an update.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from idnode.v1 import record_pb2
from node.errors import mapping_for, public_message, retry_after
from node.service.core import Core
from node.service.payload import value_from_wire
from node.web.app import Reply, Request, Route, Routes
from node.web.handles import caller_of
from registry.access.grants import GRANT_TYPE
from registry.errors import (
    AlreadyExists,
    IdnodeError,
    InvalidArgument,
    NotFound,
    StaleEtag,
    Unauthenticated,
)
from registry.templates import TEMPLATE_INDEX, TEMPLATE_TYPE, Template, template_to_dict
from registry.values import (
    DEFAULT_PERMISSIONS,
    MAX_INDEX,
    Permissions,
    Value,
)

log = logging.getLogger("idnode.http")

OK, NOT_LOGGED_IN, FAILED, NO_PERMISSION, INTERNAL = 1, -1, -2, -3, -4
MAX_BATCH = 2000  # SNMS: a batch has at most 2000 items
MAX_HANDLE_CHARS = 255
MAX_TYPE_CHARS = 128
MAX_VALUE_CHARS = 255
MAX_VERSION_CHARS = 128
MAX_USERNAME_CHARS = 256  # SNMS says 50; principals (300:<prefix>/<name>) may be longer
MAX_PASSWORD_CHARS = 1024  # SNMS says 64; idnode secrets may be longer
WRONG_CREDENTIALS = "用户名/密码错误！"
EXISTS = "标识已存在"
MISSING = "标识不存在"
NO_PREHASHED_LOGIN = ("this node does not accept the pre-hashed login (/identity/token/v1): "
                      "secrets are stored with a slow salted hash, which sha256(sha256(pwd)"
                      "+date) cannot be checked against; use POST /identity/token over TLS")
PRIVATE = Permissions(admin_read=True, admin_write=True, public_read=False,
                      public_write=False)
_UPDATE_ATTEMPTS = 3

TOKEN_PATH = "/identity/token"  # noqa: S105 (a path)
TOKEN_V1_PATH = "/identity/token/v1"  # noqa: S105 (a path)
DATA_PATH = "/identityv2/data"
DETAIL_PATH = "/identityv2/data/detail"
BATCH_CREATE_PATH = "/identityv2/data/batchCreate"
BATCH_UPDATE_PATH = "/identityv2/data/batchUpdate"
BATCH_DELETE_PATH = "/identityv2/data/batchDelete"
TEMPLATE_V3_PATH = "/snms/api/v3/template"
TEMPLATE_V5_PATH = "/snms/api/v5/template"
MAX_PREFIX_CHARS = 64
TEMPLATE_EXISTS = "模板已存在"
TEMPLATE_MISSING = "模板不存在"


# --- the envelope ------------------------------------------------------------------------


def envelope(status: int, message: str, data: object = None,
             headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    return Reply.json(200, {"status": status, "message": message, "data": data}, headers)


def ok(data: object) -> Reply:
    return envelope(OK, "success", data)


def status_of(exc: BaseException) -> int:
    """The envelope status of an error: a column of the node's one table."""
    return mapping_for(exc).snms_status


def message_of(exc: BaseException) -> str:
    """The message of an error; duplicates and missing identifiers lead with SNMS's words
    (clients match 已存在 to treat a create retried after a 504 as a success)."""
    text = public_message(exc)
    if isinstance(exc, AlreadyExists):
        return f"{EXISTS}: {text}"
    if isinstance(exc, NotFound) and not exc.referral_prefix:
        return f"{MISSING}: {text}"
    return text


def failure(exc: BaseException) -> Reply:
    seconds = retry_after(exc)
    headers = ((b"retry-after", str(seconds).encode()),) if seconds is not None else ()
    return envelope(status_of(exc), message_of(exc), None, headers)


# --- bodies ------------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise InvalidArgument("the request body is empty (send JSON)")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"the request body is not valid JSON ({exc.__class__.__name__}"
                              f": {str(exc)[:120]})") from None


def _text(value: object, name: str, limit: int, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise InvalidArgument(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string")
    if len(value) > limit:
        raise InvalidArgument(f"{name} is longer than {limit} characters")
    return value


def _int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())  # the docs' examples send numbers as strings too
    raise InvalidArgument(f"{name} must be an integer")


def handle_of(item: object) -> str:
    """The handle a record body names (for per-item answers even when it is bad)."""
    if isinstance(item, dict) and isinstance(item.get("handle"), str):
        return str(item["handle"])
    return ""


def parse_record(item: object) -> tuple[str, list[Value]]:
    """``R`` → (handle, values); every problem of the values is reported at once."""
    if not isinstance(item, dict):
        raise InvalidArgument("a record must be a JSON object {handle, templateVersion, value}")
    handle = _text(item.get("handle"), "handle", MAX_HANDLE_CHARS)
    version = _text(item.get("templateVersion"), "templateVersion", MAX_VERSION_CHARS,
                    required=False)
    raw = item.get("value")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InvalidArgument("value must be an array of {auth, index, type, data}")
    values: list[Value] = []
    problems: list[str] = []
    for n, entry in enumerate(raw):
        try:
            values.append(_value(entry, n))
        except InvalidArgument as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidArgument(f"{handle}: {len(problems)} bad value"
                              f"{'s' if len(problems) != 1 else ''}: " + "; ".join(problems))
    if version:
        values.append(Value(TEMPLATE_INDEX, TEMPLATE_TYPE, version))
    return handle, values


def _value(entry: object, n: int) -> Value:
    where = f"value[{n}]"
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where} must be an object {{auth, index, type, data}}")
    if "index" not in entry:
        raise InvalidArgument(f"{where} has no index")
    index = _int(entry["index"], f"{where}.index")
    where = f"value at index {index}"
    if not 0 < index <= MAX_INDEX:
        raise InvalidArgument(f"{where}: index must be 1..{MAX_INDEX}")
    if index == TEMPLATE_INDEX:
        raise InvalidArgument(f"index {TEMPLATE_INDEX} is reserved (不能为{TEMPLATE_INDEX}): "
                              "name the template with templateVersion")
    kind = _text(entry.get("type"), f"{where}: type", MAX_TYPE_CHARS)
    if _administrative(kind):
        raise InvalidArgument(f"{where}: {kind[:40]} values are Handle administration, "
                              "not written through this API")
    data = entry.get("data")
    if isinstance(data, dict):
        if data.get("format", "string") != "string":
            raise InvalidArgument(f"{where}: data.format must be \"string\"")
        data = data.get("value")
    text = _text(data, f"{where}: data.value", MAX_VALUE_CHARS)
    auth = entry.get("auth")
    if auth is None or auth == "":
        permissions = DEFAULT_PERMISSIONS
    else:
        number = _int(auth, f"{where}: auth")
        if number not in (0, 1):
            raise InvalidArgument(f"{where}: auth must be 0 (public) or 1 (private)")
        permissions = PRIVATE if number else DEFAULT_PERMISSIONS
    return Value(index, kind, text, permissions=permissions)


# --- the door ----------------------------------------------------------------------------


class SnmsApi:
    """The SNMS paths over one core."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def add_to(self, routes: Routes) -> None:
        post, write = frozenset({"POST"}), frozenset({"POST", "PUT", "DELETE"})
        routes.exact.update({
            TOKEN_PATH: Route(self._guarded(self.token), post),
            TOKEN_V1_PATH: Route(self._guarded(self.token_v1), post),
            DATA_PATH: Route(self._guarded(self.data), write),
            DETAIL_PATH: Route(self._guarded(self.detail)),
            BATCH_CREATE_PATH: Route(self._guarded(self.batch_create), post),
            BATCH_UPDATE_PATH: Route(self._guarded(self.batch_update), frozenset({"PUT"})),
            BATCH_DELETE_PATH: Route(self._guarded(self.batch_delete), frozenset({"DELETE"})),
            TEMPLATE_V3_PATH: Route(self._guarded(self._templates(v3=True)),
                                    frozenset({"GET", "POST", "DELETE"})),
            TEMPLATE_V5_PATH: Route(self._guarded(self._templates(v3=False)),
                                    frozenset({"GET", "POST", "PUT", "DELETE"})),
        })

    @staticmethod
    def _guarded(handler: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def run(request: Request) -> Reply:
            try:
                return handler(request)
            except IdnodeError as exc:
                return failure(exc)
            except Exception:  # nothing internal reaches the caller
                log.exception("unexpected error on %s", request.path)
                return envelope(INTERNAL, "internal error (logged on the node)")
        return run

    def _body(self, request: Request, operation: str) -> Any:
        """The JSON body; a malformed one is audited as a refused write."""
        try:
            return parse_json(request.body)
        except IdnodeError as exc:
            self.core.writes.refused(caller_of(request), operation, exc)
            raise

    # --- tokens --------------------------------------------------------------------------

    def token(self, request: Request) -> Reply:
        body = parse_json(request.body)
        if not isinstance(body, dict):
            raise InvalidArgument("the body must be {\"username\", \"password\"}")
        username = _text(body.get("username"), "username", MAX_USERNAME_CHARS)
        password = _text(body.get("password"), "password", MAX_PASSWORD_CHARS)
        try:
            _, text = self.core.login(caller_of(request), username, password,
                                      description="SNMS /identity/token")
        except Unauthenticated:
            return envelope(FAILED, WRONG_CREDENTIALS)
        return ok({"token": text})

    def token_v1(self, request: Request) -> Reply:
        return envelope(FAILED, NO_PREHASHED_LOGIN)

    # --- one identifier ------------------------------------------------------------------

    def data(self, request: Request) -> Reply:
        caller = caller_of(request)
        if request.method == "DELETE":
            body = self._body(request, "delete")
            try:
                handle = _text(body.get("handle") if isinstance(body, dict) else None,
                               "handle", MAX_HANDLE_CHARS)
            except IdnodeError as exc:
                self.core.writes.refused(caller, "delete", exc)
                raise
            self.core.writes.delete(caller, handle, None)
            return ok(True)
        operation = "register" if request.method == "POST" else "update"
        body = self._body(request, operation)
        try:
            handle, values = parse_record(body)
        except IdnodeError as exc:
            self.core.writes.refused(caller, operation, exc, handle=handle_of(body))
            raise
        if operation == "register":
            self.core.writes.register(caller, handle, values)
        else:
            self._update(request, handle, values)
        return ok(True)

    def _update(self, request: Request, handle: str, values: list[Value]) -> None:
        """Replace the record's values with ``values``, keeping its HS_ values (admin
        entries, secrets) that ``values`` do not name; compare-and-set on its etag."""
        caller = caller_of(request)
        named = {v.index for v in values}
        for attempt in range(_UPDATE_ATTEMPTS):
            try:
                entry = self.core.resolve(caller, handle)
            except IdnodeError as exc:
                self.core.writes.refused(caller, "update", exc, handle=handle)
                raise
            current = record_pb2.Record.FromString(entry.payload)
            kept = [value_from_wire(v) for v in current.values
                    if _administrative(v.type) and v.index not in named]
            try:
                self.core.writes.update(caller, handle, values + kept, entry.etag)
                return
            except StaleEtag:
                if attempt == _UPDATE_ATTEMPTS - 1:
                    raise

    def detail(self, request: Request) -> Reply:
        handle = _text(request.query.get("handle", [""])[-1], "handle", MAX_HANDLE_CHARS)
        entry = self.core.resolve(caller_of(request), handle)
        record = record_pb2.Record.FromString(entry.payload)
        version = ""
        values = []
        for v in record.values:
            if v.index == TEMPLATE_INDEX and v.type == TEMPLATE_TYPE:
                version = v.text
            elif v.WhichOneof("data") == "text" and not _administrative(v.type):
                values.append({"index": v.index, "type": v.type,
                               "auth": 0 if v.permissions.public_read else 1,
                               "data": {"format": "string", "value": v.text}})
        return ok({"prefix": record.handle.partition("/")[0], "handle": record.handle,
                   "templateVersion": version, "value": values})

    # --- templates -----------------------------------------------------------------------

    def _templates(self, *, v3: bool) -> Callable[[Request], Reply]:
        def run(request: Request) -> Reply:
            try:
                return self.template(request, v3=v3)
            except IdnodeError as exc:
                # SNMS's words for templates, not the identifiers' (标识已存在/不存在).
                if isinstance(exc, AlreadyExists):
                    word = TEMPLATE_EXISTS if request.method == "POST" else ""
                elif isinstance(exc, NotFound) and not exc.referral_prefix:
                    word = TEMPLATE_MISSING
                else:
                    return failure(exc)
                text = public_message(exc)
                return envelope(status_of(exc), f"{word}: {text}" if word else text)
        return run

    def template(self, request: Request, *, v3: bool) -> Reply:
        """``/snms/api/v3|v5/template`` onto the template use cases: GET reads a version,
        POST creates one published at once, PUT (v5) updates a draft incrementally,
        DELETE withdraws (see docs/ARCHITECTURE.md, "The SNMS-compatible API")."""
        caller = caller_of(request)
        templates = self.core.templates
        if request.method == "GET":
            prefix = _text(request.query.get("prefix", [""])[-1], "prefix", MAX_PREFIX_CHARS)
            version = _text(request.query.get("version", [""])[-1], "version",
                            MAX_VERSION_CHARS)
            return ok(snms_template(templates.get(caller, prefix, version), v3=v3))
        operation = {"POST": "put-template", "PUT": "put-template"}.get(request.method,
                                                                        "withdraw-template")
        body = self._body(request, operation)
        try:
            if not isinstance(body, dict):
                raise InvalidArgument("the body must be a JSON object")
            prefix = _text(body.get("prefix"), "prefix", MAX_PREFIX_CHARS)
        except IdnodeError as exc:
            self.core.writes.refused(caller, operation, exc)
            raise
        if request.method == "POST":
            templates.create_published(caller, prefix, body)
        elif request.method == "PUT":
            templates.amend_draft(caller, prefix, body)
        else:
            named = body.get("version")
            templates.withdraw(caller, prefix, "" if named is None else str(named))
        return ok(True)

    # --- batches -------------------------------------------------------------------------

    def _items(self, request: Request, operation: str) -> list[Any]:
        body = self._body(request, operation)
        try:
            if not isinstance(body, list):
                raise InvalidArgument("the body must be a JSON array")
            if len(body) > MAX_BATCH:
                raise InvalidArgument(f"a batch has at most {MAX_BATCH} items, got {len(body)}")
        except IdnodeError as exc:
            self.core.writes.refused(caller_of(request), operation, exc)
            raise
        return body

    def batch_create(self, request: Request) -> Reply:
        items = self._items(request, "bulk-register")
        session = self.core.writes.bulk(caller_of(request))
        for item in items:
            try:
                handle, values = parse_record(item)
            except IdnodeError as exc:
                session.add(handle_of(item), exc)
            else:
                session.add(handle, values)
        outcome = session.finish()
        refused = {f.row: f.error for f in outcome.failures}
        return ok([{"handle": handle_of(item), "msg": _item_msg(refused.get(n))}
                   for n, item in enumerate(items)])

    def batch_update(self, request: Request) -> Reply:
        items = self._items(request, "update")
        out = []
        for item in items:
            error: IdnodeError | None = None
            try:
                handle, values = parse_record(item)
            except IdnodeError as exc:
                self.core.writes.refused(caller_of(request), "update", exc,
                                         handle=handle_of(item))
                error = exc
            else:
                try:
                    self._update(request, handle, values)
                except Unauthenticated:
                    raise  # the same credentials for every item: the call fails
                except IdnodeError as exc:
                    error = exc
            out.append({"handle": handle_of(item), "msg": _item_msg(error)})
        return ok(out)

    def batch_delete(self, request: Request) -> Reply:
        items = self._items(request, "delete")
        caller = caller_of(request)
        out: list[dict[str, Any]] = []
        for item in items:
            try:
                if not isinstance(item, str) or not item:
                    raise InvalidArgument("each item must be a handle string")
                self.core.writes.delete(caller, item, None)
            except Unauthenticated:
                raise
            except IdnodeError as exc:
                if not isinstance(item, str):
                    self.core.writes.refused(caller, "delete", exc)
                code = status_of(exc)
                msg = MISSING if isinstance(exc, NotFound) and not exc.referral_prefix \
                    else message_of(exc)
                out.append({"handle": item if isinstance(item, str) else "",
                            "code": code, "msg": msg})
            else:
                out.append({"handle": item, "code": OK, "msg": "success"})
        return ok(out)


def _administrative(kind: str) -> bool:
    """HS_ values and data grants: rights and keys, which SNMS bodies neither carry nor
    see (an update keeps them)."""
    return kind.upper().startswith("HS_") or kind == GRANT_TYPE


def snms_template(t: Template, *, v3: bool) -> dict[str, Any]:
    """A template as SNMS answers it (``id``, ``name`` beside the template fields, and
    idnode's lifecycle fields); v3 items carry no ``idIndex`` or ``state``."""
    out: dict[str, Any] = {"id": t.serial, "name": "", **template_to_dict(t)}
    if v3:
        for item in out["items"]:
            item.pop("idIndex", None)
            item.pop("state", None)
    return out


def _item_msg(error: IdnodeError | None) -> str:
    if error is None:
        return "success"
    if isinstance(error, AlreadyExists):
        return EXISTS
    return message_of(error)


__all__ = ["SnmsApi", "envelope", "parse_record", "snms_template", "status_of"]
