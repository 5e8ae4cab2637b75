"""How a value's data is stored in a row: a kind number and bytes, the same on every
SQL backend (SQLite, PostgreSQL), so a dump moves between them unchanged."""

from __future__ import annotations

from registry.values import AdminRef, Value, ValueData, ValueList, ValueRef

KIND_TEXT, KIND_BINARY, KIND_ADMIN, KIND_VLIST = 0, 1, 2, 3


def encode_value(v: Value) -> tuple[int, bytes]:
    if isinstance(v.data, str):
        return KIND_TEXT, v.data.encode("utf-8")
    if isinstance(v.data, bytes):
        return KIND_BINARY, v.data
    if isinstance(v.data, ValueList):  # one "index:handle" per line (handles have no \n)
        return KIND_VLIST, "\n".join(f"{r.index}:{r.handle}" for r in v.data.refs).encode()
    a = v.data
    return KIND_ADMIN, f"{a.index}:{a.permissions}:{a.handle}".encode()


def decode_value(kind: int, data: bytes) -> ValueData:
    if kind == KIND_TEXT:
        return bytes(data).decode("utf-8")
    if kind == KIND_BINARY:
        return bytes(data)
    if kind == KIND_VLIST:
        text = bytes(data).decode("utf-8")
        return ValueList(tuple(ValueRef(handle, int(index)) for index, _, handle in
                               (line.partition(":") for line in text.split("\n") if line)))
    index, perms, handle = bytes(data).decode("utf-8").split(":", 2)
    return AdminRef(handle, int(index), perms)


__all__ = ["KIND_ADMIN", "KIND_BINARY", "KIND_TEXT", "KIND_VLIST", "decode_value",
           "encode_value"]
