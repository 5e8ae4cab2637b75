"""The bytes the HTTP server writes for a direct answer (node.web.server._response):
uvicorn's status line and header checks, ``connection: close`` when the connection
ends, no body for HEAD, and a direct answer framed by exactly one content-length."""

from __future__ import annotations

import pytest

from node.web.app import Answer
from node.web.server import _response

JSON = (b"content-type", b"application/json")


def _answer(*headers: tuple[bytes, bytes], body: bytes = b"xyz") -> Answer:
    return 200, list(headers), body


def test_a_keep_alive_answer_is_status_headers_and_body_in_order() -> None:
    out = _response(_answer(JSON, (b"content-length", b"3")), "GET", [], True, {})
    assert out == (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                   b"content-length: 3\r\n\r\nxyz")


def test_head_keeps_the_length_and_drops_the_body_and_close_is_announced() -> None:
    out = _response(_answer(JSON, (b"content-length", b"3")), "HEAD", [], False, {})
    assert out == (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                   b"content-length: 3\r\nconnection: close\r\n\r\n")


def test_default_headers_come_first_and_names_are_lowered_as_uvicorn_does() -> None:
    heads: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, int]] = {}
    out = _response(_answer((b"Content-Type", b"text/plain"), (b"content-length", b"3")),
                    "GET", [(b"server", b"idnode")], True, heads)
    assert out.startswith(b"HTTP/1.1 200 OK\r\nserver: idnode\r\ncontent-type: text/plain\r\n")
    assert len(heads) == 1  # the checked block is remembered
    assert _response(_answer((b"Content-Type", b"text/plain"), (b"content-length", b"3")),
                     "GET", [(b"server", b"idnode")], True, heads) == out


@pytest.mark.parametrize(("headers", "why"), [
    (((b"content-type", b"a\nb"), (b"content-length", b"3")), "Invalid HTTP header value"),
    (((b"bad name", b"x"), (b"content-length", b"3")), "Invalid HTTP header name"),
    (((b"content-length", b"4"),), "differs from Content-Length"),
    (((b"content-length", b"3"), (b"connection", b"close")), "exactly one content-length"),
    (((b"transfer-encoding", b"chunked"),), "exactly one content-length"),
    ((JSON,), "needs a content-length"),
])
def test_answers_uvicorn_would_refuse_or_could_misframe_raise(
        headers: tuple[tuple[bytes, bytes], ...], why: str) -> None:
    with pytest.raises(RuntimeError, match=why):
        _response(_answer(*headers), "GET", [], True, {})
