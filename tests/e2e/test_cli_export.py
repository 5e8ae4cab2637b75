"""``idnode export``, ``list``, ``update``, ``delete`` and ``resolve --json`` through a real
node: streaming export that ``import`` reads back, and etag-guarded edits."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from node.app import Node
from tests.e2e.helpers import PARTS, PREFIX, cli, resolve, store, write_csv


def _seed(node: Node, tmp_path: Path, n: int = 0) -> None:
    rows = PARTS + [[f"X-{i:04d}", f"https://example.com/x/{i}", f"件{i}", ""]
                    for i in range(n)]
    code, out = cli(node, "import", str(write_csv(tmp_path / "seed.csv", rows)), "--prefix",
                    PREFIX)
    assert code == 0, out


def test_export_jsonl_reimports_into_an_identical_node(
        node_factory: Callable[..., Node], tmp_path: Path) -> None:
    one = node_factory(data_dir=tmp_path / "one")
    _seed(one, tmp_path, 250)  # more than one BatchResolve group
    out_file = tmp_path / "dump.jsonl"
    code, out = cli(one, "export", "--prefix", PREFIX, "--output", str(out_file))
    assert code == 0 and "exported 253 identifiers" in out, out
    first = json.loads(out_file.read_text(encoding="utf-8").splitlines()[0])
    assert first["handle"] == f"{PREFIX}/PN-0001"
    assert first["values"][1]["data"] == {"format": "string", "value": "主轴"}
    two = node_factory(data_dir=tmp_path / "two")
    code, out = cli(two, "import", str(out_file), "--prefix", PREFIX)
    assert code == 0, out
    assert store(two) == store(one)


def test_export_csv_long_and_wide(node: Node, tmp_path: Path) -> None:
    _seed(node, tmp_path)
    code, out = cli(node, "export", "--prefix", PREFIX, "--format", "csv")
    assert code == 0, out
    rows = list(csv.reader(io.StringIO(out.split("exported")[0])))
    assert rows[0] == ["handle", "index", "type", "format", "data", "ttl", "permissions"]
    assert [f"{PREFIX}/PN-0001", "2", "productName", "string", "主轴", "86400",
            "1110"] in rows
    wide = tmp_path / "wide.csv"
    code, out = cli(node, "export", "--prefix", PREFIX, "--format", "csv", "--columns",
                    "URL,productName", "--output", str(wide), "--encoding", "gb18030")
    assert code == 0, out
    text = wide.read_text(encoding="gb18030").splitlines()
    assert text[0] == "handle,URL,productName"
    assert text[3] == f'{PREFIX}/PN-0003,https://example.com/p/3,"带,逗号的""名称"""'
    # whole identifiers in a 'handle' column; PN-0001/3 also carry batchNo: conflicts
    code, out = cli(node, "import", str(wide))
    assert code == 1 and "encoding gb18030" in out, out
    assert "accepted 0, unchanged 1, updated 0, conflicts 2" in out


def test_list_update_delete_and_resolve_json(node: Node, tmp_path: Path) -> None:
    _seed(node, tmp_path)
    code, out = cli(node, "list", "--prefix", PREFIX)
    assert code == 0 and out.split() == [f"{PREFIX}/PN-000{i}" for i in (1, 2, 3)], out
    assert cli(node, "list", "--prefix", PREFIX, "--limit", "1")[1].split() == [
        f"{PREFIX}/PN-0001"]
    code, out = cli(node, "update", f"{PREFIX}/PN-0002", "batchNo=B2", "productName=新轴承")
    assert code == 0 and "version 2" in out, out
    assert [(v.index, v.type, v.text) for v in resolve(node, f"{PREFIX}/PN-0002").values] == [
        (1, "URL", "https://example.com/p/2"), (2, "productName", "新轴承"), (3, "batchNo", "B2")]
    code, out = cli(node, "update", f"{PREFIX}/PN-0002", "--replace", "URL=https://new")
    assert code == 0, out
    assert len(resolve(node, f"{PREFIX}/PN-0002").values) == 1
    code, out = cli(node, "delete", f"{PREFIX}/PN-0001", "--index", "3")
    assert code == 0 and "deleted index 3" in out, out
    assert [v.index for v in resolve(node, f"{PREFIX}/PN-0001").values] == [1, 2]
    code, out = cli(node, "resolve", f"{PREFIX}/PN-0001", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["handle"] == f"{PREFIX}/PN-0001" and doc["version"] == 2 and doc["etag"]
    assert doc["values"][1]["data"]["value"] == "主轴"
    code, out = cli(node, "delete", f"{PREFIX}/PN-0001")
    assert code == 0 and f"deleted {PREFIX}/PN-0001" in out
    code, out = cli(node, "resolve", f"{PREFIX}/PN-0001", "--json")
    assert code == 1 and "NOT_FOUND" in out


def test_commands_without_rights_fail_clearly(node: Node, tmp_path: Path) -> None:
    _seed(node, tmp_path)
    anonymous = {"IDNODE_IDENTITY": "", "IDNODE_SECRET": ""}
    code, out = cli(node, "list", "--prefix", PREFIX, env=anonymous)
    assert code == 1 and ("PERMISSION_DENIED" in out or "UNAUTHENTICATED" in out), out
    code, out = cli(node, "update", f"{PREFIX}/PN-0001", "URL=x", env=anonymous)
    assert code == 1, out
    code, out = cli(None, "list", "--prefix", PREFIX, target="127.0.0.1:1")
    assert code == 3 and "UNAVAILABLE" in out
