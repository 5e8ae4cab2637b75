"""Scan-to-resolve, ``GET /{handle}``, through a real node and a real HTTP client: the
Handle proxy conventions (redirect, ?noredirect, ?index/?type), the page a phone shows,
its error pages and its escaping."""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from node.app import Node
from tests.conftest import Client
from tests.e2e.helpers import CHINESE, get


def test_a_record_with_a_url_redirects_to_it(node: Node, client: Client) -> None:
    client.register("88.118.8/PN-0001", *CHINESE)
    for method in ("GET", "HEAD"):
        answer = get(node.http_port, "/88.118.8/PN-0001", method=method)
        assert answer.status == 302
        assert answer.headers["location"] == "https://example.com/p/1"
    # Identifiers match case-insensitively, and the percent-encoded form is the same path.
    assert get(node.http_port, "/88.118.8/pn-0001").headers["location"] == \
        "https://example.com/p/1"
    assert get(node.http_port, "/88.118.8%2FPN-0001").status == 302


def test_noredirect_shows_the_record_page(node: Node, client: Client) -> None:
    client.register("88.118.8/PN-0001", *CHINESE)
    answer = get(node.http_port, "/88.118.8/PN-0001?noredirect")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    page = answer.text
    assert '<h1 lang="zh">主轴</h1>' in page
    assert '<dd lang="zh">某某机床厂</dd>' in page
    for shown in ("B2026-0315", "2026-03-15", "高速电主轴，额定转速 24000 rpm",
                  "Production date", "生产日期", "Version</dt><dd>1</dd>", "ETag</dt><dd><code>"):
        assert shown in page, shown
    assert '<a class="button" href="https://example.com/p/1"' in page
    key_id = node.keys.active.key_id
    assert "Signature verified" in page
    assert f"signed by key <code>{key_id}</code> (Ed25519) at 20" in page
    # Assets come from the node itself: no CDN, no external font, no script at all.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//(?!example\.com)', page)
    css = re.search(r'href="(/static/scan\.css\?v=\w+)"', page)
    assert css is not None
    style = get(node.http_port, css.group(1))
    assert style.status == 200
    assert style.headers["content-type"].startswith("text/css")
    assert get(node.http_port, "/static/nope.css").status == 404
    assert "script-src" not in answer.headers["content-security-policy"]
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    # ?noredirect=false is not a request for the page.
    assert get(node.http_port, "/88.118.8/PN-0001?noredirect=false").status == 302


def test_index_and_type_pick_the_value(node: Node, client: Client) -> None:
    client.register("88.118.8/PN-0003", ("URL", "https://example.com/manual"),
                    ("DESC", "Spindle"), ("URL", "https://example.com/datasheet"),
                    ("manufacturer", "ACME"))
    port = node.http_port
    assert get(port, "/88.118.8/PN-0003").headers["location"] == "https://example.com/manual"
    assert get(port, "/88.118.8/PN-0003?index=3").headers["location"] == \
        "https://example.com/datasheet"
    # The union of the filters: index 2 (a DESC) and index 3 (a URL) → the URL.
    assert get(port, "/88.118.8/PN-0003?index=2&index=3").headers["location"] == \
        "https://example.com/datasheet"
    assert get(port, "/88.118.8/PN-0003?type=URL").headers["location"] == \
        "https://example.com/manual"
    # The chosen value is not a URL: the page, showing only what was picked.
    only_desc = get(port, "/88.118.8/PN-0003?type=DESC")
    assert only_desc.status == 200
    assert "Spindle" in only_desc.text
    assert "ACME" not in only_desc.text
    assert "example.com/manual" not in only_desc.text
    assert "Showing only the values with" in only_desc.text
    both = get(port, "/88.118.8/PN-0003?type=DESC&index=4")
    assert both.status == 200
    assert "Spindle" in both.text
    assert "ACME" in both.text
    # With ?noredirect a filter shows the URL values picked, as links.
    links = get(port, "/88.118.8/PN-0003?index=3&noredirect")
    assert links.status == 200
    assert 'href="https://example.com/datasheet"' in links.text
    assert "example.com/manual" not in links.text
    # A filter that matches nothing: the identifier exists, its values do not.
    nothing = get(port, "/88.118.8/PN-0003?type=EMAIL")
    assert nothing.status == 404
    assert "No matching values" in nothing.text
    assert "200 · VALUES_NOT_FOUND" in nothing.text
    # A filter that is not a number is the caller's error.
    bad = get(port, "/88.118.8/PN-0003?index=two")
    assert bad.status == 400
    assert "index=&#39;two&#39; is not a positive integer" in bad.text


def test_only_http_urls_are_followed_or_linked(node: Node, client: Client) -> None:
    client.register("88.118.8/PN-0004", ("URL", "javascript:alert(1)"),
                    ("URL", "ftp://example.com/file"), ("productName", "Gearbox"))
    answer = get(node.http_port, "/88.118.8/PN-0004")
    assert answer.status == 200
    assert "javascript:alert(1)" in answer.text  # shown as text...
    assert 'href="javascript' not in answer.text  # ...never as a link
    assert 'href="ftp' not in answer.text


def test_a_record_without_url_shows_the_page(node: Node, client: Client) -> None:
    client.register("88.118.8/EQ/CNC-7", ("productName", "CNC lathe"),
                    ("serialNo", "SN-77"), ("materialGrade", "42CrMo4"))
    for path in ("/88.118.8/EQ/CNC-7", "/88.118.8%2FEQ%2FCNC-7", "/88.118.8/eq/cnc-7"):
        answer = get(node.http_port, path)
        assert answer.status == 200, path
        assert "<h1>CNC lathe</h1>" in answer.text
        assert "SN-77" in answer.text
        # A type the page does not know gets a readable label and keeps its name.
        assert "Material grade" in answer.text
        assert '<code class="type">materialGrade</code>' in answer.text
        assert "<code>88.118.8/EQ/CNC-7</code>" in answer.text  # the registered spelling


def test_an_unknown_identifier_gets_a_friendly_404(node: Node) -> None:
    answer = get(node.http_port, "/88.118.8/PN-9999")
    assert answer.status == 404
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "Identifier not found" in answer.text
    assert "<code>88.118.8/PN-9999</code>" in answer.text
    assert "100 · HANDLE_NOT_FOUND" in answer.text
    assert '<form class="card search" method="get" action="/">' in answer.text
    # A prefix this node does not serve is not found here either.
    elsewhere = get(node.http_port, "/99.1/PN-1")
    assert elsewhere.status == 404
    assert "Identifier not found" in elsewhere.text


@pytest.mark.parametrize(("path", "rule"), [
    ("/not-a-handle", "identifier has no &#39;/&#39; between prefix and suffix"),
    ("/88.118.8/PN%0A0001", "suffix contains a control character (U+000A)"),
    ("/88.1_18/PN-1", "prefix segment 2 (&#39;1_18&#39;) may only contain"),
    ("/88.118.8/PN-%FF", "the identifier in the path is not UTF-8"),
    ("/88.118.8/PN-%ZZ", "the path has a malformed percent-encoding"),
])
def test_a_malformed_identifier_is_400_with_the_handle_message(node: Node, path: str,
                                                                rule: str) -> None:
    answer = get(node.http_port, path)
    assert answer.status == 400
    assert "Not a valid identifier" in answer.text
    assert "Error 102 (INVALID_HANDLE):" in answer.text
    assert rule in answer.text


def test_everything_shown_is_escaped(node: Node, client: Client) -> None:
    evil = '<script>alert("x")</script>'
    client.register("88.118.8/PN-0666", ("productName", evil), ("DESC", f"{evil}&amp;"),
                    ("URL", 'https://example.com/"><script>alert(1)</script>'),
                    ("remark", "<img src=x onerror=alert(1)>"))
    answer = get(node.http_port, "/88.118.8/PN-0666?noredirect")
    assert answer.status == 200
    page = answer.text
    assert "<script" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # shown exactly as registered, not interpreted
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # The URL is followed only percent-encoded, so it cannot break out of the header.
    location = get(node.http_port, "/88.118.8/PN-0666").headers["location"]
    assert location == "https://example.com/%22%3E%3Cscript%3Ealert(1)%3C/script%3E"
    # The not-found page echoes the identifier, escaped too.
    missing = get(node.http_port, "/88.118.8/" + urllib.parse.quote("<b>x</b>"))
    assert missing.status == 404
    assert "<b>" not in missing.text
    assert "&lt;b&gt;x&lt;/b&gt;" in missing.text


def test_chinese_suffixes_resolve_and_link_back_encoded(node: Node, client: Client) -> None:
    client.register("88.118.8/主轴-01", ("productName", "主轴"))
    answer = get(node.http_port, "/88.118.8/" + urllib.parse.quote("主轴-01"))
    assert answer.status == 200
    assert "<code>88.118.8/主轴-01</code>" in answer.text
    assert 'src="/api/qr/88.118.8/%E4%B8%BB%E8%BD%B4-01.svg?scale=3"' in answer.text


def test_the_signature_status_is_honest(node: Node, client: Client,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    client.register("88.118.8/PN-0005", ("productName", "Bearing"))
    monkeypatch.setattr(node.core, "signing_keys", list)  # no published key at all
    answer = get(node.http_port, "/88.118.8/PN-0005")
    assert answer.status == 200
    assert "Signature could not be verified" in answer.text
    assert "is not among the published keys" in answer.text
    assert "Signature verified" not in answer.text


def test_the_home_page_form_goes_to_the_identifier(node: Node) -> None:
    home = get(node.http_port, "/")
    assert home.status == 200
    assert 'name="handle"' in home.text
    assert get(node.http_port, "/?handle=88.118.8/PN-0001").headers["location"] == \
        "/88.118.8/PN-0001"
    # Never to another site.
    assert get(node.http_port, "/?handle=//evil.example/x").headers["location"] == \
        "/evil.example/x"


def test_the_ops_endpoints_are_not_shadowed(node: Node) -> None:
    assert get(node.http_port, "/healthz").status == 200
    assert get(node.http_port, "/api/keys").status == 200
    assert get(node.http_port, "/88.118.8/PN-0001", method="POST").status == 405


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def test_accept_json_answers_what_the_handle_api_answers(node: Node, client: Client) -> None:
    client.register("88.118.8/PN-0001", *CHINESE)
    port = node.http_port
    for rest in ("88.118.8/PN-0001", "88.118.8/pn-0001?type=DESC", "88.118.8/PN-0001?index=6",
                 "88.118.8/PN-0001?type=EMAIL", "88.118.8%2FPN-0001", "88.118.8/PN-9999",
                 "not-a-handle", "88.118.8/PN-0001?index=x", "88.118.8/PN-%FF"):
        via_proxy = get(port, "/" + rest, {"Accept": "application/json"})
        via_api = get(port, "/api/handles/" + rest)
        assert via_proxy.status == via_api.status, rest
        assert via_proxy.headers["content-type"] == "application/json", rest
        assert json.loads(via_proxy.body) == json.loads(via_api.body), rest
        assert "location" not in via_proxy.headers  # JSON clients are never redirected
    assert json.loads(get(port, "/88.118.8/PN-0001", {"Accept": "application/json"}).body)[
        "handle"] == "88.118.8/PN-0001"
    # Content negotiation: JSON only when it is preferred to HTML.
    for accept, status in ((BROWSER, 302), ("*/*", 302), ("application/json, */*", 200),
                           ("text/html, application/json;q=0.5", 302),
                           ("application/json;q=0.9, text/html;q=0.5", 200),
                           ("application/json;q=0", 302)):
        answer = get(port, "/88.118.8/PN-0001", {"Accept": accept})
        assert answer.status == status, accept
