"""The import's pure parts: column mapping, duplicate tracking, encodings, update plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from idnode.v1 import record_pb2
from node.cli.bulk import (
    SeenKeys,
    UsageError,
    _value_key,
    detect_encoding,
    make_plan,
    parse_update_items,
    plan_update,
)


def plan(header: list[str], *maps: str, **kw: str) -> list[tuple[int, str, int]]:
    return list(make_plan(header, suffix_column=kw.get("suffix_column"),
                          suffix_pattern=kw.get("suffix_pattern"), maps=maps,
                          mapping={}).columns)


def test_columns_become_values_in_order_except_the_suffix() -> None:
    assert plan(["URL", "suffix", "产品名称"]) == [(0, "URL", 1), (2, "产品名称", 2)]
    p = make_plan(["handle", "URL"], suffix_column=None, suffix_pattern=None, maps=[],
                  mapping={})
    assert p.handle_at == 0 and p.suffix_at is None


def test_maps_set_types_and_indexes_and_skip_columns() -> None:
    assert plan(["suffix", "a", "b", "c"], "b=productName:1", "c=-") == [
        (1, "a", 2), (2, "productName", 1)]
    with pytest.raises(UsageError, match="both map to index 2"):
        plan(["suffix", "a", "b"], "a=x:2", "b=y:2")
    with pytest.raises(UsageError, match="not COLUMN=TYPE"):
        plan(["suffix", "a"], "a")


def test_pattern_keeps_its_columns_as_values() -> None:
    p = make_plan(["serial", "name"], suffix_column=None, suffix_pattern="PN-{serial}-x",
                  maps=[], mapping={})
    assert p.pattern == (("PN-", None), ("", 0), ("-x", None))
    assert [c[1] for c in p.columns] == ["serial", "name"]
    with pytest.raises(UsageError, match="does not have"):
        make_plan(["serial"], suffix_column=None, suffix_pattern="{nope}", maps=[], mapping={})


def test_no_identifier_column_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="maps no identifier"):
        plan(["a", "b"])


def test_seen_keys_finds_duplicates_across_growth() -> None:
    seen = SeenKeys(expected=10)
    keys = [f"88.118.8/pn-{i}" for i in range(20_000)]
    assert all(seen.add(k) for k in keys)
    assert not any(seen.add(k) for k in keys[::97])
    assert seen.add("88.118.8/new")


def test_encodings(tmp_path: Path) -> None:
    gbk = tmp_path / "g.csv"
    gbk.write_bytes("suffix,名称\nPN-1,主轴\n".encode("gbk"))
    assert detect_encoding(gbk, None)[0].codec == "gb18030"
    utf = tmp_path / "u.csv"
    utf.write_bytes("suffix,名称\n".encode())
    assert detect_encoding(utf, None)[0].label == "utf-8"
    enc, warning = detect_encoding(utf, "gbk")
    assert enc.codec == "gbk" and "valid UTF-8" in warning
    with pytest.raises(UsageError, match="not an encoding"):
        detect_encoding(utf, "klingon")


def test_update_items_merge_by_type_or_index() -> None:
    current = [record_pb2.Value(index=1, type="URL", text="a"),
               record_pb2.Value(index=4, type="batchNo", text="b")]
    items = parse_update_items(["URL=https://new", "7:DESC=x", "name=主轴"])
    out = plan_update(current, items, replace=False)
    assert [(v.index, v.type, v.text) for v in out] == [
        (1, "URL", "https://new"), (7, "DESC", "x"), (2, "name", "主轴")]
    assert [v.index for v in plan_update(current, items, replace=True)] == [1, 7, 2]
    with pytest.raises(UsageError):
        parse_update_items(["no-equals"])


def test_value_comparison_normalises_defaults() -> None:
    a = record_pb2.Value(index=1, type="URL", text="x")
    b = record_pb2.Value(index=1, type="URL", text="x", ttl=86400,
                         permissions=record_pb2.Permissions(admin_read=True, admin_write=True,
                                                            public_read=True))
    assert _value_key(a) == _value_key(b)
    assert _value_key(a) != _value_key(record_pb2.Value(index=1, type="URL", text="y"))
