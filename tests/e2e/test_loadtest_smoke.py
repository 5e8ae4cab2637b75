"""The load harness end to end, briefly: a real echo server and a real node started by
the harness itself, ~2 s per scenario, and a JSON report with traffic and no errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

REPO = Path(__file__).resolve().parents[2]


def test_harness_produces_a_clean_report(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest", "--scenarios", "hot,notfound,batch,cold,bulk",
         "--duration", "1.5", "--warmup", "0.5", "--repeat", "1", "--procs", "1",
         "--concurrency", "8", "--ids", "500", "--bulk-rows", "1000", "--cold-l1", "50",
         "--no-h2load", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=140, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = list(tmp_path.glob("bench-*.json"))
    assert len(reports) == 1, out.stdout[-2000:]
    report = json.loads(reports[0].read_text())
    seen = {(r["server"], r["scenario"]) for r in report["runs"]}
    assert seen >= {("echo", "hot"), ("node", "hot"), ("node", "notfound"),
                    ("node", "batch"), ("node", "cold")}
    for run in report["runs"]:
        assert run["rps"] > 0, run
        assert run["errors"] == 0, run
        assert run["cpu_us_per_req"] and run["cpu_us_per_req"] > 0, run
    assert report["bulk"]["accepted"] == 1000 and report["bulk"]["failures"] == 0
    assert list(tmp_path.glob("bench-*.png"))
    assert "JSON:" in out.stdout and "targets:" in out.stdout
