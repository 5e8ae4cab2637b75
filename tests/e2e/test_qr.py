"""QR labels through a real node (``GET /api/qr/{handle}.png|.svg``) and the bulk command
(``idnode qr``): every PNG is decoded with zbarimg (Debian zbar-tools, installed by
scripts/system-deps.sh) and must hold the proxy URL a phone opens."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from node.app import Node
from tests.conftest import Client
from tests.e2e.helpers import get

ROOT = Path(__file__).resolve().parents[2]


def decode(png: bytes | Path, tmp_path: Path) -> str:
    """What a scanner reads from the image (zbarimg --raw)."""
    if isinstance(png, bytes):
        path = tmp_path / "label.png"
        path.write_bytes(png)
    else:
        path = png
    done = subprocess.run(["zbarimg", "--raw", "-q", str(path)], capture_output=True,
                          timeout=20, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode("utf-8").strip()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_png_label_holds_the_proxy_url(node: Node, client: Client,
                                           tmp_path: Path) -> None:
    client.register("88.118.8/PN-0001", ("URL", "https://example.com/p/1"))
    # Asked for in another spelling: the label carries the registered one.
    answer = get(node.http_port, "/api/qr/88.118.8/pn-0001.png")
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/png"
    assert 'filename="88.118.8_PN-0001.png"' in answer.headers["content-disposition"]
    url = f"http://127.0.0.1:{node.http_port}/88.118.8/PN-0001"
    assert decode(answer.body, tmp_path) == url
    # ...and that URL is the scan-to-resolve proxy: it leads to the record's URL.
    assert get(node.http_port, urllib.parse.urlsplit(url).path).headers["location"] == \
        "https://example.com/p/1"


def test_the_base_follows_host_and_forwarded_proto(node: Node, client: Client,
                                                   tmp_path: Path) -> None:
    client.register("88.118.8/EQ/CNC-7", ("productName", "CNC lathe"))
    answer = get(node.http_port, "/api/qr/88.118.8/EQ/CNC-7.png",
                 {"Host": "id.example.com", "X-Forwarded-Proto": "https"})
    assert answer.status == 200
    assert decode(answer.body, tmp_path) == "https://id.example.com/88.118.8/EQ/CNC-7"
    # Only http and https are schemes; anything else falls back to http.
    odd = get(node.http_port, "/api/qr/88.118.8/EQ/CNC-7.png",
              {"Host": "id.example.com:8443", "X-Forwarded-Proto": "javascript"})
    assert decode(odd.body, tmp_path) == "http://id.example.com:8443/88.118.8/EQ/CNC-7"
    # A Host header that is not a host is refused rather than encoded.
    bad = get(node.http_port, "/api/qr/88.118.8/EQ/CNC-7.png", {"Host": "evil/x?y"})
    assert bad.status == 400
    assert "Host" in json.loads(bad.body)["message"]


def test_chinese_suffixes_are_percent_encoded_in_the_label(node: Node, client: Client,
                                                           tmp_path: Path) -> None:
    client.register("88.118.8/主轴-01", ("productName", "主轴"))
    answer = get(node.http_port, "/api/qr/88.118.8/" + urllib.parse.quote("主轴-01") + ".png")
    assert answer.status == 200
    url = decode(answer.body, tmp_path)
    assert url == f"http://127.0.0.1:{node.http_port}/88.118.8/%E4%B8%BB%E8%BD%B4-01"
    page = get(node.http_port, urllib.parse.urlsplit(url).path)
    assert page.status == 200
    assert "主轴" in page.text


def test_the_svg_label_is_well_formed(node: Node, client: Client) -> None:
    client.register("88.118.8/PN-0001", ("productName", "Spindle"))
    answer = get(node.http_port, "/api/qr/88.118.8/PN-0001.svg?scale=5")
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(answer.body)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None
    assert title.text == f"http://127.0.0.1:{node.http_port}/88.118.8/PN-0001"
    assert root.find("{http://www.w3.org/2000/svg}path") is not None
    assert int(root.attrib["width"]) % 5 == 0


def test_scale_is_bounded(node: Node, client: Client, tmp_path: Path) -> None:
    client.register("88.118.8/PN-0001", ("productName", "Spindle"))
    small = get(node.http_port, "/api/qr/88.118.8/PN-0001.png?scale=1")
    large = get(node.http_port, "/api/qr/88.118.8/PN-0001.png?scale=40")
    default = get(node.http_port, "/api/qr/88.118.8/PN-0001.png")
    w1, h1 = png_size(small.body)
    assert w1 == h1
    assert png_size(large.body) == (40 * w1, 40 * w1)
    assert png_size(default.body) == (8 * w1, 8 * w1)
    assert decode(large.body, tmp_path).endswith("/88.118.8/PN-0001")
    for bad in ("0", "41", "abc", "-1", "", "1e3"):
        answer = get(node.http_port, f"/api/qr/88.118.8/PN-0001.png?scale={bad}")
        assert answer.status == 400, bad
        body = json.loads(answer.body)
        assert body["responseCode"] == 2
        assert body["handle"] == "88.118.8/PN-0001"
        assert "scale must be an integer from 1 to 40" in body["message"]


def test_no_label_for_an_identifier_that_does_not_exist(node: Node) -> None:
    missing = get(node.http_port, "/api/qr/88.118.8/TYPO-0001.png")
    assert missing.status == 404
    assert json.loads(missing.body) == {
        "responseCode": 100, "handle": "88.118.8/TYPO-0001",
        "message": json.loads(missing.body)["message"]}
    malformed = get(node.http_port, "/api/qr/no-slash.svg")
    assert malformed.status == 400
    assert json.loads(malformed.body)["responseCode"] == 102
    for path in ("/api/qr/88.118.8/PN-0001", "/api/qr/88.118.8/PN-0001.gif", "/api/qr/.png"):
        answer = get(node.http_port, path)
        assert answer.status == 404, path
        assert "/api/qr/{handle}.png" in json.loads(answer.body)["message"]


def _idnode(*args: str, env: dict[str, str] | None = None,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, input=stdin, check=False,
                          env={**os.environ, **(env or {})})


def test_the_cli_writes_one_decodable_label_per_handle(tmp_path: Path) -> None:
    handles = tmp_path / "handles.txt"
    handles.write_text("# batch 2026-03\n88.118.8/PN-0002\n\n88.118.8/EQ/CNC-7\nbad handle\n"
                       "88.118.8/pn-0001\n", encoding="utf-8")
    out = tmp_path / "labels"
    done = _idnode("qr", "88.118.8/PN-0001", "88.118.8/主轴-01", "--out", str(out),
                   "--from-file", str(handles), "--base-url", "https://id.example.com/")
    assert done.returncode == 1, done.stderr  # one identifier failed
    assert "handles.txt:5: 'bad handle'" in done.stderr
    assert "duplicate of 88.118.8/PN-0001" in done.stderr
    assert "4 written, 1 failed" in done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["88.118.8_EQ_CNC-7.png", "88.118.8_PN-0001.png",
                     "88.118.8_PN-0002.png", "88.118.8_主轴-01.png"]
    expected = {"88.118.8_PN-0001.png": "https://id.example.com/88.118.8/PN-0001",
                "88.118.8_PN-0002.png": "https://id.example.com/88.118.8/PN-0002",
                "88.118.8_EQ_CNC-7.png": "https://id.example.com/88.118.8/EQ/CNC-7",
                "88.118.8_主轴-01.png":
                    "https://id.example.com/88.118.8/%E4%B8%BB%E8%BD%B4-01"}
    for name, url in expected.items():
        assert decode(out / name, tmp_path) == url
        assert f"{out / name}\t" in done.stdout


def test_the_cli_writes_svg_from_stdin_with_the_env_base_url(tmp_path: Path) -> None:
    out = tmp_path / "svg"
    done = _idnode("qr", "--out", str(out), "--from-file", "-", "--format", "svg",
                   env={"IDNODE_PUBLIC_URL": "http://id.example.com:8080"},
                   stdin="88.118.8/PN-0001\n")
    assert done.returncode == 0, done.stderr
    root = ET.parse(out / "88.118.8_PN-0001.svg").getroot()
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None
    assert title.text == "http://id.example.com:8080/88.118.8/PN-0001"


@pytest.mark.parametrize(("args", "message"), [
    (("88.118.8/PN-0001",), "--base-url (or IDNODE_PUBLIC_URL) is required"),
    (("88.118.8/PN-0001", "--base-url", "id.example.com"), "absolute http:// or https://"),
    (("88.118.8/PN-0001", "--base-url", "https://x.example", "--format", "gif"),
     "--format must be one of png, svg"),
    (("88.118.8/PN-0001", "--base-url", "https://x.example", "--scale", "41"),
     "scale must be an integer from 1 to 40"),
    (("--base-url", "https://x.example"), "no identifiers"),
])
def test_the_cli_refuses_bad_usage(tmp_path: Path, args: tuple[str, ...],
                                   message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "IDNODE_PUBLIC_URL"}
    done = subprocess.run([sys.executable, "-m", "node", "qr", "--out", str(tmp_path / "o"),
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=env, check=False)
    assert done.returncode == 2
    assert message in done.stderr
