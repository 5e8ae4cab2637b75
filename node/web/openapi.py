"""The OpenAPI 3.1 document of the HTTP door, served at ``GET /api/openapi.json``, and a
small self-contained page listing its operations at ``GET /api/docs`` (no CDN, no script).

The document is a Python dict built here, by hand, next to the routes it describes
(node.web.app, node.web.handles, node.web.scan): the door has no framework to derive it
from. ``tests/e2e/test_openapi.py`` validates it against the OpenAPI 3.1 meta-schema,
checks that every route the app serves is in it, and fuzzes the running node with
schemathesis (no 5xx; documented statuses and content types; response bodies match).

Errors everywhere are the Handle-style JSON body ``{responseCode, handle, message}``
with the HTTP status of ``node.errors.TABLE`` (400 / 102 malformed identifier, 404 / 100
not found, 404 / 301 not served here, 409 / 101 exists, 401 / 402 credentials, ...).
"""

from __future__ import annotations

import copy
import html
import json
from typing import Any

from node import __version__
from node.web.app import JSON, Reply, Request, Route, Routes

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"

_HTML = "text/html; charset=utf-8"
_ERROR_REF = {"$ref": "#/components/schemas/HandleError"}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

_ERROR_TEXT = {
    400: "Malformed identifier, value, query or body (responseCode 102 for an identifier, "
         "2 otherwise)",
    401: "No usable credentials: a wrong secret, a malformed Authorization header or a "
         "Bearer token (responseCode 402); carries WWW-Authenticate: Basic",
    403: "Credentials without rights on the prefix (responseCode 402)",
    404: "Identifier not found (responseCode 100), a filter or index that matches nothing "
         "(200), or a prefix this node does not serve (301)",
    409: "Identifier or value already exists with overwrite=false (responseCode 101)",
    413: "Request body over the limit (4 MiB)",
    415: "PUT body that is not JSON",
    429: "Over a limit or overloaded: a rate limit (the message names the setting), the "
         "credential checks queue full, or a back-off after failed logins; Retry-After "
         "says in how many seconds to try again",
    503: "A dependency is down and the node cannot answer",
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _handle_param(description: str) -> dict[str, Any]:
    return {"name": "handle", "in": "path", "required": True,
            "description": description,
            "schema": {"type": "string", "minLength": 1},
            "examples": {"registered": {"value": "88.118.8/PN-0001"},
                         "prefix admin": {"value": "88.118/ADMIN"}}}


def _array_query(name: str, items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "style": "form",
            "explode": True, "description": description,
            "schema": {"type": "array", "items": items}}


_INDEX_ITEMS: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_TYPE_QUERY = _array_query("type", {"type": "string"},
                           "Only values of these types (repeatable; union with index)")
_INDEX_QUERY = _array_query("index", _INDEX_ITEMS,
                            "Only values at these indexes (repeatable, or comma-separated)")
_RESOLVE_ERRORS = (400, 401, 404, 429, 503)

_VALUE_DATA: dict[str, Any] = {
    "description": "A value's data. Answers always use the object form; a PUT may also "
                   "send a bare string (format string).",
    "oneOf": [
        {"type": "object", "required": ["format", "value"], "properties": {
            "format": {"const": "string"}, "value": {"type": "string"}}},
        {"type": "object", "required": ["format", "value"], "properties": {
            "format": {"enum": ["base64", "hex"]}, "value": {"type": "string"}}},
        {"type": "object", "required": ["format", "value"], "properties": {
            "format": {"const": "admin"}, "value": {"$ref": "#/components/schemas/AdminRef"}}},
        {"type": "object", "required": ["format", "value"], "properties": {
            "format": {"const": "vlist"},
            "value": {"type": "array", "items": {"$ref": "#/components/schemas/ValueRef"}}}},
    ],
}

_INT_OR_TEXT: dict[str, Any] = {"oneOf": [{"type": "integer", "minimum": 0},
                                          {"type": "string", "pattern": "^[0-9]+$"}]}

_SCHEMAS: dict[str, Any] = {
    "HandleError": {
        "type": "object", "required": ["responseCode", "message"],
        "description": "Every error answer (404 included). responseCode is the Handle "
                       "response code: 2 error, 100 handle not found, 101 already exists, "
                       "102 invalid handle, 200 values not found, 301 not served here, "
                       "402 authentication needed.",
        "properties": {"responseCode": {"type": "integer"},
                       "handle": {"type": "string"},
                       "message": {"type": "string"},
                       "violations": {
                           "type": "array",
                           "description": "Every rule a record broke against its metadata "
                                          "template (index 1001 names it), when a PUT "
                                          "is refused for that reason.",
                           "items": {"type": "object", "properties": {
                               "index": {"type": "integer"}, "type": {"type": "string"},
                               "item": {"type": "string"}, "rule": {"type": "string"},
                               "value": {"type": "string"},
                               "detail": {"type": "string"}}}}}},
    "AdminRef": {
        "type": "object", "required": ["handle", "index", "permissions"],
        "properties": {"handle": {"type": "string"}, "index": _INT_OR_TEXT,
                       "permissions": {"type": "string"}}},
    "ValueRef": {
        "type": "object", "required": ["handle", "index"],
        "properties": {"handle": {"type": "string"}, "index": _INT_OR_TEXT}},
    "HandleValue": {
        "type": "object", "required": ["index", "type", "data", "ttl", "timestamp"],
        "properties": {
            "index": {"type": "integer"},
            "type": {"type": "string"},
            "data": {"$ref": "#/components/schemas/ValueData"},
            "ttl": {"type": "integer"},
            "timestamp": {"type": "string", "format": "date-time",
                          "description": "ISO 8601 UTC, set by the node"},
            "permissions": {"type": "string", "pattern": "^[01]{4}$",
                            "description": "admin read, admin write, public read, public "
                                           "write; only when not the default 1110"}}},
    "ValueData": _VALUE_DATA,
    "ValueIn": {
        "type": "object", "required": ["index", "type", "data"],
        "description": "A value in a PUT body: index and ttl as numbers or numeric "
                       "strings, data as an object or a bare string, timestamp ignored.",
        "properties": {
            "index": _INT_OR_TEXT,
            "type": {"type": "string"},
            "data": {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/ValueData"}]},
            "ttl": _INT_OR_TEXT,
            "timestamp": {"type": "string"},
            "permissions": {"type": "string", "pattern": "^[01]{4}$"}}},
    "PutBody": {
        "type": "object", "required": ["values"],
        "properties": {"handle": {"type": "string", "description": "ignored"},
                       "values": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/ValueIn"}}}},
    "Record": {
        "type": "object", "required": ["responseCode", "handle", "values"],
        "properties": {
            "responseCode": {"type": "integer", "enum": [1, 200],
                             "description": "1, or 200 with no values when a type/index "
                                            "filter matched nothing"},
            "handle": {"type": "string", "description": "the registered spelling"},
            "values": {"type": "array", "items": {"$ref": "#/components/schemas/HandleValue"}},
            "signed": {"$ref": "#/components/schemas/Signed"}}},
    "Signed": {
        "type": "object", "required": ["payload", "signature", "keyId", "algorithm"],
        "description": "With ?signed=true: the signed idnode.v1.Record bytes; verify the "
                       "signature over exactly these bytes with the key from /api/keys.",
        "properties": {"payload": {"type": "string", "contentEncoding": "base64"},
                       "signature": {"type": "string", "contentEncoding": "base64"},
                       "keyId": {"type": "string"},
                       "algorithm": {"type": "string",
                                     "examples": ["Ed25519", "ECDSA-P256-SHA256"]}}},
    "WriteResult": {
        "type": "object", "required": ["responseCode", "handle"],
        "properties": {"responseCode": {"const": 1}, "handle": {"type": "string"}}},
    "HandleList": {
        "type": "object", "required": ["responseCode", "prefix", "handles"],
        "properties": {"responseCode": {"const": 1}, "prefix": {"type": "string"},
                       "handles": {"type": "array", "items": {"type": "string"}},
                       "nextPageToken": {"type": "string"}}},
    "Keys": {
        "type": "object", "required": ["responseCode", "keys"],
        "properties": {"responseCode": {"const": 1}, "keys": {"type": "array", "items": {
            "type": "object",
            "required": ["key_id", "algorithm", "public_key_der_hex", "not_before", "active"],
            "properties": {"key_id": {"type": "string"}, "algorithm": {"type": "string"},
                           "public_key_der_hex": {"type": "string", "pattern": "^[0-9a-f]*$"},
                           "not_before": {"type": "integer"},
                           "not_after": {"type": ["integer", "null"]},
                           "active": {"type": "boolean"}}}}}},
    "Status": {"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string"}}},
}


_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds (a whole number) after which a retry "
                                         "may succeed",
                          "schema": {"type": "integer", "minimum": 1}}},
}


def _responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, text in _ERROR_TEXT.items():
        response: dict[str, Any] = {"description": text, "content": _json_content(_ERROR_REF)}
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        out[f"E{status}"] = response
    return out


_WRITE_SECURITY: list[dict[str, list[str]]] = [{"basicAuth": []}, {"bearerAuth": []}]
_OPTIONAL_SECURITY: list[dict[str, list[str]]] = [{}, {"basicAuth": []}, {"bearerAuth": []}]
_NO_SECURITY: list[dict[str, list[str]]] = [{}]


def _list_operation(operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id, "tags": ["handles"],
        "summary": "List the identifiers under a prefix",
        "description": "Needs credentials with rights on the prefix. Numbered pages "
                       "(page × pageSize ≤ 100,000) or the opaque pageToken cursor.",
        "security": _WRITE_SECURITY,
        "parameters": [
            {"name": "prefix", "in": "query", "required": True,
             "schema": {"type": "string"}, "example": "88.118.8"},
            {"name": "pageSize", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                           "maximum": 1000, "default": 100}},
            {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                       "default": 0}},
            {"name": "pageToken", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "One page of identifiers",
                              "content": _json_content(
                                  {"$ref": "#/components/schemas/HandleList"})},
                      **_errors(400, 401, 403, 404, 429, 503)},
    }


def _ops_get(operation_id: str, summary: str, content: dict[str, Any],
             description: str = "", *, statuses: tuple[int, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "tags": ["operations"],
                          "summary": summary, "security": _NO_SECURITY,
                          "responses": {"200": {"description": summary, "content": content}}}
    if description:
        op["description"] = description
    for status in statuses:
        op["responses"][str(status)] = {"description": "not ready",
                                        "content": _json_content(
                                            {"$ref": "#/components/schemas/Status"})}
    return op


def _qr(kind: str, media: str) -> dict[str, Any]:
    return {"get": {
        "operationId": f"qrLabel{kind.capitalize()}", "tags": ["scan"],
        "summary": f"QR label ({kind.upper()}) encoding the proxy URL <base>/<handle>",
        "description": "<base> is the node's public URL when configured, else the "
                       "request's X-Forwarded-Proto (http/https) and Host. An identifier "
                       "that does not exist (or is malformed) gets no label.",
        "security": _OPTIONAL_SECURITY,
        "parameters": [
            _handle_param("The identifier, raw or percent-encoded"),
            {"name": "scale", "in": "query", "description": "Module size",
             "schema": {"type": "integer", "minimum": 1, "maximum": 40, "default": 8}},
        ],
        "responses": {"200": {"description": "The label",
                              "content": {media: {"schema": {"type": "string",
                                                             "format": "binary"}}}},
                      **_errors(*_RESOLVE_ERRORS)},
    }}


def _html_or_json_error(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": {
        "text/html": {"schema": {"type": "string"}},
        JSON: {"schema": _ERROR_REF}}}
    if status == 429:
        out["headers"] = _ERROR_HEADERS[status]
    return out


_SNMS_RECORD = {
    "type": "object", "required": ["handle"],
    "properties": {
        "handle": {"type": "string", "maxLength": 255},
        "templateVersion": {"type": "string", "maxLength": 128},
        "value": {"type": "array", "items": {
            "type": "object", "required": ["index", "type", "data"],
            "properties": {
                "index": {"type": ["integer", "string"]},
                "type": {"type": "string", "maxLength": 128},
                "auth": {"type": ["integer", "string"]},
                "data": {"oneOf": [
                    {"type": "string", "maxLength": 255},
                    {"type": "object", "required": ["value"], "properties": {
                        "format": {"const": "string"},
                        "value": {"type": "string", "maxLength": 255}}}]}}}},
    }}
_SNMS_ENVELOPE = {
    "type": "object", "required": ["status", "message"],
    "properties": {"status": {"type": "integer", "enum": [1, -1, -2, -3, -4]},
                   "message": {"type": "string"}, "data": {}}}


def _snms_operation(operation_id: str, summary: str, body: dict[str, Any] | None = None, *,
                    secured: bool = True, query: list[dict[str, Any]] | None = None
                    ) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id, "tags": ["snms"], "summary": summary,
        "responses": {"200": {"description": "The envelope: status 1 with data, or -1 (no or "
                                             "bad credentials), -2 (refused, see message), "
                                             "-3 (no permission), -4 (internal)",
                              "content": _json_content(_SNMS_ENVELOPE)}},
    }
    if secured:
        op["security"] = _WRITE_SECURITY
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json_content(body)}
    if query:
        op["parameters"] = query
    return op


def _snms_template_paths(version: str) -> dict[str, Any]:
    """``/snms/api/v3|v5/template`` (v3 items have no idIndex or state, and no PUT)."""
    v5 = version == "v5"
    item_props: dict[str, Any] = {
        "name": {"type": "string", "maxLength": 128},
        "idType": {"type": "string", "maxLength": 128},
        "required": {"type": "boolean"},
        "metadata": {"type": "object", "properties": {
            "type": {"type": "string"}, "minLength": {"type": "integer", "minimum": 0},
            "maxLength": {"type": "integer", "minimum": 0}}},
        "grants": {"type": "array", "maxItems": 100, "items": {"type": "string"}},
    }
    if v5:
        item_props["idIndex"] = {"type": ["integer", "string"]}
        item_props["state"] = {"type": ["integer", "string"], "enum": [0, 1, "0", "1"]}
    template = {
        "type": "object", "required": ["prefix", "version", "items"],
        "properties": {
            "prefix": {"type": "string", "maxLength": 64},
            "version": {"type": "string", "maxLength": 128},
            "industryCategory": {"type": "string"}, "industrySpecific": {"type": "string"},
            "industryTrade": {"type": "string"}, "industrySubclass": {"type": "string"},
            "type": {"type": "integer", "enum": [1, 2]},
            "description": {"type": "string", "maxLength": 1000},
            "items": {"type": "array", "maxItems": 128, "items": {
                "type": "object", "required": ["name", "idType"],
                "properties": item_props}}}}
    which = {"type": "object", "required": ["prefix", "version"],
             "properties": {"prefix": {"type": "string", "maxLength": 64},
                            "version": {"type": "string", "maxLength": 128}}}
    name = "snmsTemplate" + version.upper()
    ops: dict[str, Any] = {
        "get": _snms_operation(
            name + "Get", "A template version (drafts only for those who may write them)",
            secured=False, query=[
                {"name": "prefix", "in": "query", "required": True,
                 "schema": {"type": "string", "maxLength": 64}},
                {"name": "version", "in": "query", "required": True,
                 "schema": {"type": "string", "maxLength": 128}}]),
        "post": _snms_operation(name + "Create", "Create a template version, published at "
                                "once (items without idIndex get stable ones)", template),
        "delete": _snms_operation(name + "Delete", "Withdraw a template version (records "
                                  "based on it stay valid)", which),
    }
    if v5:
        ops["put"] = _snms_operation(name + "Update", "Update a draft version incrementally "
                                     "(items matched by idIndex and idType); a published "
                                     "version never changes", template)
    return {f"/snms/api/{version}/template": ops}


def _snms_paths() -> dict[str, Any]:
    """The SNMS-compatible routes (node/web/snms.py; docs/ARCHITECTURE.md for where the
    node differs from SNMS)."""
    login = {"type": "object", "required": ["username", "password"],
             "properties": {"username": {"type": "string", "maxLength": 256},
                            "password": {"type": "string", "maxLength": 1024}}}
    handles = {"type": "array", "maxItems": 2000, "items": {"type": "string"}}
    records = {"type": "array", "maxItems": 2000, "items": _SNMS_RECORD}
    return {
        "/identity/token": {"post": _snms_operation(
            "snmsToken", "A 24-hour bearer token for a principal and its secret", login,
            secured=False)},
        "/identity/token/v1": {"post": _snms_operation(
            "snmsTokenPrehashed", "The pre-hashed login: refused (status -2), use "
            "/identity/token over TLS", login, secured=False)},
        "/identityv2/data": {
            "post": _snms_operation("snmsCreate", "Register an identifier", _SNMS_RECORD),
            "put": _snms_operation("snmsUpdate", "Replace an identifier's values",
                                   _SNMS_RECORD),
            "delete": _snms_operation("snmsDelete", "Delete an identifier", {
                "type": "object", "required": ["handle"],
                "properties": {"handle": {"type": "string", "maxLength": 255}}}),
        },
        "/identityv2/data/detail": {"get": _snms_operation(
            "snmsDetail", "An identifier's values (public ones without credentials)",
            query=[{"name": "handle", "in": "query", "required": True,
                    "schema": {"type": "string", "maxLength": 255}}])},
        "/identityv2/data/batchCreate": {"post": _snms_operation(
            "snmsBatchCreate", "Register up to 2,000 identifiers; per-item results",
            records)},
        "/identityv2/data/batchUpdate": {"put": _snms_operation(
            "snmsBatchUpdate", "Update up to 2,000 identifiers; per-item results", records)},
        "/identityv2/data/batchDelete": {"delete": _snms_operation(
            "snmsBatchDelete", "Delete up to 2,000 identifiers; per-item results", handles)},
        **_snms_template_paths("v3"),
        **_snms_template_paths("v5"),
    }


def build_document(version: str = __version__) -> dict[str, Any]:
    """The OpenAPI 3.1 document as a fresh dict."""
    handle_path = _handle_param(
        "The identifier, raw (/api/handles/88.118.8/EQ/CNC-7; a suffix may contain /) or "
        "percent-encoded (88.118.8%2FEQ%2FCNC-7). Bad percent-encoding or bytes that are "
        "not UTF-8 are 400 / 102.")
    paths: dict[str, Any] = {
        "/api/handles": {"get": _list_operation("listHandles")},
        "/api/handles/": {"get": {**_list_operation("listHandlesSlash"),
                                  "summary": "List the identifiers under a prefix (the "
                                             "same with a trailing slash)"}},
        "/api/handles/{handle}": {
            "parameters": [handle_path],
            "get": {
                "operationId": "resolveHandle", "tags": ["handles"],
                "summary": "Resolve an identifier",
                "description": "Anonymous callers see public values; principals with rights "
                               "on the prefix also see private ones; a wrong secret is 401. "
                               "A type/index filter that matches nothing is 200 with "
                               "responseCode 200 and no values. Never redirects.",
                "security": _OPTIONAL_SECURITY,
                "parameters": [
                    _TYPE_QUERY, _INDEX_QUERY,
                    {"name": "signed", "in": "query", "description":
                     "Add the signed record (payload, signature, keyId, algorithm)",
                     "schema": {"type": "boolean"}},
                ],
                "responses": {"200": {"description": "The record",
                                      "content": _json_content(
                                          {"$ref": "#/components/schemas/Record"})},
                              **_errors(*_RESOLVE_ERRORS)},
            },
            "put": {
                "operationId": "putHandle", "tags": ["handles"],
                "summary": "Create or replace an identifier (or some of its values)",
                "description": "overwrite=true (default) replaces the record; with ?index= "
                               "only the listed values are added or replaced. "
                               "overwrite=false refuses an existing identifier or, with "
                               "?index=, an existing value (409 / 101). No etag semantics "
                               "(use gRPC Update for compare-and-set).",
                "security": _WRITE_SECURITY,
                "parameters": [
                    {"name": "overwrite", "in": "query",
                     "schema": {"type": "boolean", "default": True}},
                    _INDEX_QUERY,
                ],
                "requestBody": {"required": True, "content": {JSON: {
                    "schema": {"$ref": "#/components/schemas/PutBody"},
                    "examples": {"product": {"value": {"values": [
                        {"index": 1, "type": "URL",
                         "data": {"format": "string", "value": "https://example.com/p/1"}},
                        {"index": 2, "type": "productName", "data": "主轴"},
                        {"index": 100, "type": "HS_ADMIN", "data": {
                            "format": "admin", "value": {"handle": "88.118.8/ADMIN",
                                                         "index": "300",
                                                         "permissions": "011111110011"}}},
                    ]}}}}}},
                "responses": {
                    "200": {"description": "Replaced", "headers": {"ETag": {
                        "schema": {"type": "string"}}},
                        "content": _json_content({"$ref": "#/components/schemas/WriteResult"})},
                    "201": {"description": "Created", "headers": {"ETag": {
                        "schema": {"type": "string"}}},
                        "content": _json_content({"$ref": "#/components/schemas/WriteResult"})},
                    **_errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
            },
            "delete": {
                "operationId": "deleteHandle", "tags": ["handles"],
                "summary": "Delete an identifier, or only the values at ?index=",
                "description": "Deleting an index the record lacks is HTTP 400 with "
                               "responseCode 200 (pyhandle's values_not_found).",
                "security": _WRITE_SECURITY,
                "parameters": [_INDEX_QUERY],
                "responses": {"200": {"description": "Deleted", "content": _json_content(
                    {"$ref": "#/components/schemas/WriteResult"})},
                    **_errors(400, 401, 403, 404, 409, 429, 503)},
            },
        },
        "/api/keys": {"get": {
            **_ops_get("signingKeys", "The node's published signing keys",
                       _json_content({"$ref": "#/components/schemas/Keys"}),
                       "public_key_der_hex is the DER SubjectPublicKeyInfo in hex; verify "
                       "Ed25519 (RFC 8032) or ECDSA P-256 SHA-256 (DER signature)."),
            "tags": ["handles"]}},
        "/healthz": {"get": _ops_get("healthz", "Liveness",
                                     _json_content({"$ref": "#/components/schemas/Status"}))},
        "/readyz": {"get": _ops_get("readyz", "Readiness (store, keys, caches)",
                                    _json_content({"$ref": "#/components/schemas/Status"}),
                                    statuses=(503,))},
        "/metrics": {"get": _ops_get("metrics", "Prometheus metrics (text exposition)",
                                     {"text/plain": {"schema": {"type": "string"}}})},
        OPENAPI_PATH: {"get": _ops_get("openapi", "This document",
                                       _json_content({"type": "object"}))},
        DOCS_PATH: {"get": _ops_get("apiDocs", "A page listing the operations",
                                    {"text/html": {"schema": {"type": "string"}}})},
        "/api/qr/{handle}.png": _qr("png", "image/png"),
        "/api/qr/{handle}.svg": _qr("svg", "image/svg+xml"),
        "/{handle}": {"get": {
            "operationId": "scanProxy", "tags": ["scan"],
            "summary": "Scan-to-resolve (Handle proxy conventions)",
            "description": "302 to the first (lowest index) URL value holding an http(s) "
                           "URL; ?noredirect shows the record page instead; ?index=/?type= "
                           "pick the values; Accept: application/json (preferred over "
                           "text/html) answers exactly what GET /api/handles/{handle} "
                           "answers and never redirects. Otherwise a mobile-first HTML "
                           "page with the signature verified on the node; a not-found page "
                           "(404) and an error page (400) for a malformed identifier.",
            "security": _OPTIONAL_SECURITY,
            "parameters": [
                {**_handle_param("The identifier (a prefix starting with a digit, '/', "
                                 "a suffix that may contain '/')"),
                 "schema": {"type": "string", "pattern": "^[0-9][0-9.]*/[^?#]+$"}},
                {"name": "noredirect", "in": "query", "allowEmptyValue": True,
                 "schema": {"type": "string"}},
                _TYPE_QUERY, _INDEX_QUERY,
                {"name": "Accept", "in": "header", "schema": {
                    "type": "string", "enum": ["text/html", JSON, "*/*"]}},
            ],
            "responses": {
                "200": {"description": "The record page, or the record as JSON", "content": {
                    "text/html": {"schema": {"type": "string"}},
                    JSON: {"schema": {"$ref": "#/components/schemas/Record"}}}},
                "302": {"description": "Redirect to the record's URL value",
                        "headers": {"Location": {"required": True,
                                                 "schema": {"type": "string"}}},
                        "content": {"text/html": {"schema": {"type": "string"}}}},
                "400": _html_or_json_error(400),
                "401": _html_or_json_error(401),
                "403": _html_or_json_error(403),
                "404": _html_or_json_error(404),
                "429": _html_or_json_error(429),
                "503": _html_or_json_error(503),
            },
        }},
        "/": {"get": {
            "operationId": "home", "tags": ["scan"], "security": _NO_SECURITY,
            "summary": "The home page (a form to look an identifier up)",
            "parameters": [{"name": "handle", "in": "query", "schema": {"type": "string"},
                            "description": "Redirects to /<handle>"}],
            "responses": {"200": {"description": "The page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          "302": {"description": "To the identifier's page",
                                  "headers": {"Location": {"schema": {"type": "string"}}},
                                  "content": {"text/html": {"schema": {"type": "string"}}}}},
        }},
        "/static/{name}": {"get": {
            "operationId": "staticAsset", "tags": ["scan"], "security": _NO_SECURITY,
            "summary": "The scan page's own assets (scan.css)",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
                            "example": "scan.css"}],
            "responses": {"200": {"description": "The asset", "content": {
                "text/css": {"schema": {"type": "string"}},
                "image/svg+xml": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/x-icon": {"schema": {"type": "string", "format": "binary"}}}},
                "404": {"description": "No such asset",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }
    paths.update(_snms_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idnode HTTP API",
            "version": version,
            "summary": "A secondary node of an industrial identifier resolution system "
                       "(Handle-compatible REST API, scan-to-resolve, operations).",
            "description": "Errors are JSON {responseCode, handle, message} with the HTTP "
                           "status of the node's one error table. Credentials: HTTP Basic "
                           "with the user `index:handle` (for example "
                           "`300:88.118.8/ADMIN`; the user part may be percent-encoded, "
                           "`300%3A88.118.8%2FADMIN`) and the secret; anonymous callers "
                           "resolve public values.",
        },
        "tags": [{"name": "handles", "description": "The Handle REST API"},
                 {"name": "snms", "description": "The SNMS-compatible API: every answer is "
                                                 "HTTP 200 with {status, message, data}; "
                                                 "status 1 is success"},
                 {"name": "scan", "description": "Scan-to-resolve and QR labels"},
                 {"name": "operations", "description": "Probes, metrics, this document"}],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "responses": _responses(),
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic", "description":
                              "user `index:handle` (e.g. `300:88.118.8/ADMIN`, "
                              "percent-encoding allowed), password the secret"},
                "bearerAuth": {"type": "http", "scheme": "bearer", "description":
                               "Bearer tokens (`idn1.<id>.<secret>`) for principals' "
                               "systems: `idnode token create`, Admin.CreateToken, or "
                               "POST /identity/token; revoked or expired is 401"},
            },
        },
    }


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of every operation, in document order."""
    out = []
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                out.append((method.upper(), path, item[method]))
    return out


def docs_page(document: dict[str, Any]) -> str:
    """A plain HTML page listing the operations (no script, no external resource)."""
    info = document["info"]
    rows = []
    for method, path, op in operations(document):
        statuses = ", ".join(op.get("responses", {}))
        rows.append(f"<tr><td><code>{method}</code></td><td><code>{html.escape(path)}"
                    f"</code></td><td>{html.escape(op.get('summary', ''))}</td>"
                    f"<td>{html.escape(statuses)}</td></tr>")
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(info['title'])}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:1rem;max-width:70rem}"
            "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
            "padding:.3rem .5rem;text-align:left;vertical-align:top}</style></head><body>"
            f"<h1>{html.escape(info['title'])} {html.escape(info['version'])}</h1>"
            f"<p>{html.escape(info['description'])}</p>"
            f"<p>The machine-readable document: <a href=\"{OPENAPI_PATH}\">{OPENAPI_PATH}"
            "</a> (OpenAPI 3.1).</p><table><thead><tr><th>method</th><th>path</th>"
            "<th>what</th><th>statuses</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></body></html>\n")


_DOCS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
    (b"x-content-type-options", b"nosniff"),
)


class OpenApi:
    """Serves the document (``GET /api/openapi.json``) and the page (``GET /api/docs``),
    both rendered once."""

    def __init__(self, version: str = __version__) -> None:
        self.document = build_document(version)
        self._json = json.dumps(self.document, ensure_ascii=False).encode()
        self._html = docs_page(self.document).encode()

    def add_to(self, routes: Routes) -> None:
        routes.exact[OPENAPI_PATH] = Route(self.openapi_json)
        routes.exact[DOCS_PATH] = Route(self.docs)

    def openapi_json(self, request: Request) -> Reply:
        return Reply(200, self._json, JSON, ((b"access-control-allow-origin", b"*"),))

    def docs(self, request: Request) -> Reply:
        return Reply(200, self._html, _HTML, _DOCS_HEADERS)


__all__ = ["DOCS_PATH", "OPENAPI_PATH", "OpenApi", "build_document", "docs_page",
           "operations"]
