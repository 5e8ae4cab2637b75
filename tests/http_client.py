"""A tiny real HTTP client for the e2e tests of the node's HTTP door (http.client,
nothing mocked) and the Basic credentials Handle clients send."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from typing import Any

from tests.conftest import ADMIN_SECRET

ADMIN_USER = "300:88.118/ADMIN"


def basic(user: str, secret: str, *, encode_user: bool = True) -> str:
    name = urllib.parse.quote(user, safe="") if encode_user else user
    return "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()


ADMIN_AUTH = basic(ADMIN_USER, ADMIN_SECRET)


class Http:
    """A tiny real HTTP client (http.client): status, parsed JSON body, headers."""

    def __init__(self, port: int) -> None:
        self.port = port

    def call(self, method: str, path: str, body: object = None, *, auth: str | None = None,
             content_type: str | None = "application/json", raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            sent = dict(headers or {})
            if auth:
                sent["Authorization"] = auth
            data = raw if raw is not None else (
                json.dumps(body).encode() if body is not None else None)
            if data is not None and content_type:
                sent["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            text = response.read()
            parsed = json.loads(text) if text else None
            return response.status, parsed, {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def put(self, handle: str, values: list[dict[str, Any]], query: str = "",
            auth: str | None = ADMIN_AUTH) -> tuple[int, Any, dict[str, str]]:
        return self.call("PUT", f"/api/handles/{handle}{query}", {"values": values}, auth=auth)

    def get(self, handle: str, query: str = "", auth: str | None = None) -> tuple[int, Any]:
        status, body, _ = self.call("GET", f"/api/handles/{handle}{query}", auth=auth)
        return status, body


__all__ = ["ADMIN_AUTH", "ADMIN_SECRET", "ADMIN_USER", "Http", "basic"]
