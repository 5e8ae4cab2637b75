"""The scan-to-resolve page in a real headless browser (Debian's chromium, installed by
scripts/system-deps.sh) at a phone's width: a Chinese record, a record without URL and
an unknown identifier. Each screenshot must be a PNG of the requested width that is not
blank. With IDNODE_UPDATE_SCREENSHOTS=1 they are copied to docs/screenshots/ (the ones
kept in the repository were made that way and looked at)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from node.app import Node
from tests.conftest import Client
from tests.e2e.helpers import CHINESE, get

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
WIDTH, HEIGHT = 390, 844  # a phone, in CSS pixels (device scale factor 1)


def screenshot(url: str, out: Path, profile: Path) -> None:
    """Chromium, headless and offline apart from the node on 127.0.0.1."""
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-proxy-server", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
         f"--screenshot={out}", url],
        capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert out.is_file(), done.stderr.decode(errors="replace")[-2000:]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of pixel bytes) of an 8-bit RGB/RGBA PNG: chunks, zlib, and
    the five row filters of the PNG spec; enough for a screenshot, no imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format {depth}/{colour}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_byte, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind_byte == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind_byte == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind_byte == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind_byte == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [b"".join(r[i:i + 3] for i in range(0, stride, bpp)) for r in rows]


def distinct_colours(rows: list[bytes]) -> int:
    return len({row[i:i + 3] for row in rows for i in range(0, len(row), 3)})


@pytest.mark.parametrize(("name", "path", "needs"), [
    ("record-zh.png", "/88.118.8/PN-0001?noredirect", "主轴"),
    ("record-no-url.png", "/88.118.8/EQ/CNC-7", "CNC lathe"),
    ("not-found.png", "/88.118.8/PN-9999", "Identifier not found"),
])
def test_the_page_renders_at_phone_width(node: Node, client: Client, tmp_path: Path,
                                         name: str, path: str, needs: str) -> None:
    client.register("88.118.8/PN-0001", *CHINESE)
    client.register("88.118.8/EQ/CNC-7", ("productName", "CNC lathe"),
                    ("manufacturer", "Shenyang Machine Tool Works"), ("model", "CAK6150"),
                    ("serialNo", "SN-2026-0077"), ("productionDate", "2026-01-20"),
                    ("inspectionDate", "2026-02-03"), ("materialGrade", "HT300 cast iron"),
                    ("EMAIL", "service@example.com"))
    url = f"http://127.0.0.1:{node.http_port}{path}"
    assert needs in get(node.http_port, path).text  # the server side of what is drawn
    out = tmp_path / name
    screenshot(url, out, tmp_path / "profile")
    width, height, rows = png_pixels(out.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    # Not blank: text, cards and the header give hundreds of colours (anti-aliasing).
    assert distinct_colours(rows) > 40
    top_bar = rows[5][:3]  # the dark header band is drawn
    assert max(top_bar) < 80, top_bar
    if os.environ.get("IDNODE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, SCREENSHOTS / name)
