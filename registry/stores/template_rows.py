"""Templates as table rows, shared by the SQL backends (same columns on both): the
template whole as JSON in the SNMS shape, beside the columns a query needs."""

from __future__ import annotations

import json
from typing import Any

from registry.templates import Template, parse_template, template_to_dict

# Literal queries (no string building), in both parameter styles.
_SELECT = "SELECT body FROM templates "
SQLITE = {
    "get": _SELECT + "WHERE prefix_key = ? AND version = ?",
    "list": _SELECT + "WHERE prefix_key = ? ORDER BY serial",
    "put": "INSERT OR REPLACE INTO templates (prefix_key, version, serial, state, "
           "updated_at, body) VALUES (?, ?, ?, ?, ?, ?)",
}
POSTGRES = {
    "get": _SELECT + "WHERE prefix_key = %s AND version = %s",
    "list": _SELECT + "WHERE prefix_key = %s ORDER BY serial",
    "put": "INSERT INTO templates (prefix_key, version, serial, state, updated_at, body) "
           "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (prefix_key, version) DO UPDATE SET "
           "serial = EXCLUDED.serial, state = EXCLUDED.state, "
           "updated_at = EXCLUDED.updated_at, body = EXCLUDED.body",
}


def to_row(t: Template) -> tuple[object, ...]:
    body = json.dumps(template_to_dict(t), ensure_ascii=False, separators=(",", ":"))
    return (t.prefix.key, t.version, t.serial, t.state.value, t.updated_at, body)


def from_row(r: tuple[Any, ...]) -> Template:
    return parse_template(json.loads(r[0]), stored=True)
