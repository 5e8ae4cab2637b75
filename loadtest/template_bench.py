"""What checking records against their metadata template costs, in process (no network):
a registration of the same record with and without a template reference at index 1001
(the template cached, as it is after the first write), bulk registration per row, and
the check alone.

    python -m loadtest.template_bench [--rounds 5000]

The record: a URL and nine metadata values (string with lengths, a pattern, number
with range and precision, date, enum, URL, file, reference, a plain string). Numbers
are medians of 7 repetitions taken in turn on the memory store, by the prefix admin
(rights through the prefix's admin group, as an enterprise writes), with the node's
garbage-collector settings. Without a template the record holds a value of the same
size at index 1000 instead of the reference at 1001, so only the check differs.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from typing import Any

from loadtest.timing import compare, per_op
from registry.access.principals import Principal
from registry.identifier import Prefix
from registry.registrar import BulkRow, Registrar
from registry.stores.memory import MemoryStore
from registry.templates import check_record, parse_template, publish, put_draft
from registry.values import Value

NODE = Principal.of("300:88.118/ADMIN")
OWNER = Principal.of("300:88.118.8/ADMIN")

TEMPLATE: dict[str, Any] = {"prefix": "88.118.8", "version": "1.0", "items": [
    {"name": "产品名称", "idType": "productName", "idIndex": 2000, "required": True,
     "metadata": {"type": "string", "minLength": 1, "maxLength": 64}},
    {"name": "批次号", "idType": "batchNo", "idIndex": 2001, "required": True,
     "metadata": {"type": "string", "pattern": "[A-Z]{2}[0-9]{6}"}},
    {"name": "重量", "idType": "weight", "idIndex": 2002,
     "metadata": {"type": "number", "minimum": 0, "maximum": 100000, "precision": 2}},
    {"name": "生产日期", "idType": "productionDate", "idIndex": 2003, "required": True,
     "metadata": {"type": "date", "format": "yyyy-MM-dd"}},
    {"name": "颜色", "idType": "color", "idIndex": 2004,
     "metadata": {"type": "enum", "enum": ["red", "blue", "green", "black"]}},
    {"name": "说明书", "idType": "manual", "idIndex": 2005, "metadata": {"type": "url"}},
    {"name": "图纸", "idType": "drawing", "idIndex": 2006, "metadata": {"type": "file"}},
    {"name": "原料", "idType": "madeFrom", "idIndex": 2007,
     "metadata": {"type": "reference"}},
    {"name": "制造商", "idType": "manufacturer", "idIndex": 2008},
]}

_FIELDS = [(2000, "productName", "Spindle motor 7.5 kW"), (2001, "batchNo", "AB123456"),
           (2002, "weight", "48.25"), (2003, "productionDate", "2024-05-01"),
           (2004, "color", "black"), (2005, "manual", "https://example.com/m/7.pdf"),
           (2006, "drawing", "sha256:" + "ab" * 32), (2007, "madeFrom", "88.118.9/STEEL-1"),
           (2008, "manufacturer", "Example Machine Tools Co.")]


def record(templated: bool) -> list[Value]:
    """The record; without a template the reference's place is taken by a value of the
    same size at index 1000, so the two differ only by the check."""
    values = [Value(1, "URL", "https://example.com/p")]
    values.append(Value(1001, "TEMPLATE", "1.0") if templated else Value(1000, "DESC", "1.0"))
    values += [Value(i, t, d) for i, t, d in _FIELDS]
    return values


def world() -> Registrar:
    reg = Registrar(MemoryStore(), Prefix.parse("88.118"))
    reg.allocate_prefix(NODE, "88.118.8", "owner-secret-0001")
    draft = parse_template(TEMPLATE)
    reg.store.change_templates("88.118.8", lambda ex: put_draft(ex, draft, 1, NODE.id))
    reg.store.change_templates("88.118.8", lambda ex: publish(ex, "1.0", 2, NODE.id))
    return reg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args(argv)
    reg = world()
    gc.freeze()  # as the node runs (node.app.serve)
    gc.set_threshold(50_000, 50, 100)  # node.app.GC_THRESHOLDS
    counter = iter(range(10**9))
    plain, templated = record(False), record(True)
    for _ in range(2000):  # warm up: the store's dicts, the value-type and template caches
        reg.register(OWNER, f"88.118.8/W-{next(counter)}", templated)
        reg.register(OWNER, f"88.118.8/W-{next(counter)}", plain)

    print("register one record (memory store, prefix admin):")
    cost = compare({name: lambda v=values: reg.register(  # type: ignore[misc]
        OWNER, f"88.118.8/R-{next(counter)}", v)
        for name, values in (("without a template", plain), ("with template 1.0", templated))},
        args.rounds)
    base = cost["without a template"]
    for name, seconds in cost.items():
        print(f"  {name:24} {seconds * 1e6:7.1f} µs   (+{(seconds - base) * 1e6:5.1f} µs, "
              f"{seconds / base:4.2f}x)")

    print("bulk registration, per row (register_many of 2,000 rows):")
    rows = max(1, args.rounds // 2000) * 2000
    def batch(v: list[Value]) -> None:
        reg.register_many(OWNER, [BulkRow(f"88.118.8/M-{next(counter)}", tuple(v))
                                  for _ in range(2000)])
    bulk = {name: seconds / 2000 for name, seconds in compare(
        {"without a template": lambda: batch(plain),
         "with template 1.0": lambda: batch(templated)}, max(1, rows // 2000)).items()}
    for name, seconds in bulk.items():
        print(f"  {name:24} {seconds * 1e6:7.1f} µs   "
              f"(+{(seconds - bulk['without a template']) * 1e6:5.1f} µs)")

    template = reg.templates.get("88.118.8", "1.0")
    assert template is not None and check_record(template, templated) == []
    alone = per_op(lambda: check_record(template, templated), args.rounds * 4)
    lookup = per_op(lambda: reg.templates.get("88.118.8", "1.0"), args.rounds * 4)
    print(f"the check alone (9 items): {alone * 1e6:5.1f} µs; the cached template lookup: "
          f"{lookup * 1e9:4.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
