"""Fail when the committed idnode.v1 code differs from what proto/ generates."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from gen import PROTO, generate  # type: ignore[import-not-found]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = {p.relative_to(out): p.read_bytes() for p in out.rglob("*_pb2*.py*")}
    committed = {p.relative_to(PROTO): p.read_bytes()
                 for p in (PROTO / "idnode").rglob("*_pb2*.py*")}
    drift = sorted(str(k) for k in fresh.keys() | committed.keys()
                   if fresh.get(k) != committed.get(k))
    if drift:
        print("generated code is out of date (run `make gen`):", ", ".join(drift))
        return 1
    print(f"ok: {len(fresh)} generated files match proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
