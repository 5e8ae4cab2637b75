"""Handle REST JSON ⇄ domain values, as the Handle.net REST API and its clients spell it.

Out: ``{"index":1,"type":"URL","data":{"format":"string","value":"…"},"ttl":86400,
"timestamp":"2026-01-01T00:00:00Z"}`` — every value carries ``ttl`` and an ISO 8601 UTC
``timestamp``; ``permissions`` (four 0/1 characters: admin read, admin write, public
read, public write) appears only when it differs from the Handle default ``1110``.

In (PUT bodies), what deployed clients send: ``data`` as ``{"format":…,"value":…}`` or a
bare string; formats ``string``, ``base64``, ``hex``, ``admin`` (``{"handle","index",
"permissions"}``, index as number or string) and ``vlist`` (``[{"handle","index"}]``);
``index`` and ``ttl`` as numbers or numeric strings; ``timestamp`` ignored (the node sets
it). Every rejection names the value and the rule.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from idnode.v1 import record_pb2
from registry.errors import InvalidArgument, InvalidValue
from registry.values import (
    DEFAULT_PERMISSIONS,
    AdminRef,
    Permissions,
    Value,
    ValueData,
    ValueList,
    ValueRef,
)

_DEFAULT_BITS = "1110"


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _perm_bits(p: record_pb2.Permissions) -> str:
    return "".join("1" if b else "0" for b in (p.admin_read, p.admin_write, p.public_read,
                                               p.public_write))


def value_json(v: record_pb2.Value) -> dict[str, Any]:
    """One value of a signed payload as Handle REST JSON."""
    kind = v.WhichOneof("data")
    data: dict[str, Any]
    if kind == "text":
        data = {"format": "string", "value": v.text}
    elif kind == "binary":
        data = {"format": "base64", "value": base64.b64encode(v.binary).decode()}
    elif kind == "admin":
        data = {"format": "admin", "value": {"handle": v.admin.handle, "index": v.admin.index,
                                             "permissions": v.admin.permissions}}
    else:
        data = {"format": "vlist", "value": [{"handle": r.handle, "index": r.index}
                                             for r in v.vlist.refs]}
    out: dict[str, Any] = {"index": v.index, "type": v.type, "data": data, "ttl": v.ttl,
                           "timestamp": iso(v.timestamp.seconds)}
    if v.HasField("permissions"):
        bits = _perm_bits(v.permissions)
        if bits != _DEFAULT_BITS:
            out["permissions"] = bits
    return out


def record_json(payload: bytes) -> tuple[str, list[dict[str, Any]]]:
    """(the registered spelling, the values) of a signed payload."""
    record = record_pb2.Record.FromString(payload)
    return record.handle, [value_json(v) for v in record.values]


# --- input ------------------------------------------------------------------------------


def parse_body(body: bytes) -> list[Value]:
    """The values of a PUT body: ``{"values": [...]}`` (a ``handle`` key is ignored)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"the body is not valid JSON ({exc.__class__.__name__}: "
                              f"{str(exc)[:120]})") from None
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and isinstance(doc.get("values"), list):
        items = doc["values"]
    else:
        raise InvalidArgument('the body must be a JSON object with a "values" array')
    return [_value(item, position) for position, item in enumerate(items)]


def _int(raw: object, what: str) -> int:
    if isinstance(raw, bool):
        raise InvalidValue(f"{what} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    raise InvalidValue(f"{what} must be an integer, got {str(raw)[:40]!r}")


def _value(item: object, position: int) -> Value:
    if not isinstance(item, dict):
        raise InvalidValue(f"value #{position} must be a JSON object")
    if "index" not in item:
        raise InvalidValue(f"value #{position} has no index")
    index = _int(item["index"], f"value #{position}: index")
    where = f"value at index {index}"
    kind = item.get("type")
    if not isinstance(kind, str):
        raise InvalidValue(f"{where} needs a type (a string)")
    ttl = _int(item["ttl"], f"{where}: ttl") if item.get("ttl") is not None else 0
    perms = _permissions(item.get("permissions"), where)
    return Value(index, kind, _data(item.get("data"), where), ttl, 0, perms)


def _permissions(raw: object, where: str) -> Permissions:
    if raw is None:
        return DEFAULT_PERMISSIONS
    if not isinstance(raw, str) or len(raw) != 4 or set(raw) - {"0", "1"}:
        raise InvalidValue(f"{where}: permissions must be 4 characters of 0 and 1 "
                           "(admin read, admin write, public read, public write)")
    return Permissions(*(c == "1" for c in raw))


def _data(raw: object, where: str) -> ValueData:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, dict):
        raise InvalidValue(f'{where} needs data: a string or {{"format": …, "value": …}}')
    fmt = raw.get("format", "string")
    value = raw.get("value")
    if fmt == "string":
        if not isinstance(value, str):
            raise InvalidValue(f"{where}: string data must be a JSON string")
        return value
    if fmt == "base64":
        try:
            return base64.b64decode(str(value), validate=True) if isinstance(value, str) \
                else _bad(where, "base64 data must be a JSON string")
        except ValueError:  # binascii.Error, or non-ASCII text
            raise InvalidValue(f"{where}: data is not valid base64") from None
    if fmt == "hex":
        try:
            return bytes.fromhex(value) if isinstance(value, str) \
                else _bad(where, "hex data must be a JSON string")
        except ValueError:
            raise InvalidValue(f"{where}: data is not valid hex") from None
    if fmt == "admin":
        if not isinstance(value, dict):
            raise InvalidValue(f'{where}: admin data must be {{"handle", "index", '
                               '"permissions"}')
        handle, perms = value.get("handle"), value.get("permissions")
        if not isinstance(handle, str) or not isinstance(perms, str):
            raise InvalidValue(f"{where}: admin data needs a handle and permissions (strings)")
        return AdminRef(handle, _int(value.get("index"), f"{where}: admin index"), perms)
    if fmt == "vlist":
        if not isinstance(value, list):
            raise InvalidValue(f'{where}: vlist data must be [{{"handle", "index"}}, …]')
        refs = []
        for ref in value:
            if not isinstance(ref, dict) or not isinstance(ref.get("handle"), str):
                raise InvalidValue(f'{where}: each vlist member needs "handle" and "index"')
            refs.append(ValueRef(ref["handle"], _int(ref.get("index"),
                                                     f"{where}: member index")))
        return ValueList(tuple(refs))
    raise InvalidValue(f"{where}: data format {str(fmt)[:40]!r} is not supported (string, "
                       "base64, hex, admin, vlist)")


def _bad(where: str, why: str) -> bytes:
    raise InvalidValue(f"{where}: {why}")


__all__ = ["iso", "parse_body", "record_json", "value_json"]
