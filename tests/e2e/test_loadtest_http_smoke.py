"""The http scenario end to end, briefly: the HTTP empty handler (direct and ASGI), the node's
GET /api/handles/{handle} and gRPC resolve on the same node, all started by the harness;
a JSON report with traffic, no errors and the two HTTP target lines (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


def test_http_scenario_produces_a_clean_report(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest", "--scenarios", "http", "--duration", "1",
         "--warmup", "0.3", "--repeat", "1", "--ids", "300", "--http-connections", "4",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=110, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = list(tmp_path.glob("bench-*.json"))
    assert len(reports) == 1, out.stdout[-2000:]
    report = json.loads(reports[0].read_text())
    seen = {(r["server"], r["scenario"], r["mode"]) for r in report["runs"]}
    assert seen == {("http-echo", "http", "h1load"), ("http-echo-asgi", "http", "h1load"),
                    ("node", "http", "h1load"), ("node", "http-grpc", "h2load")}
    for run in report["runs"]:
        assert run["rps"] > 0 and run["errors"] == 0, run
        assert run["cpu_us_per_req"] and run["cpu_us_per_req"] > 0, run
    names = [t["name"] for t in report["targets"]]
    assert any(n.startswith("HTTP resolve vs HTTP empty handler") for n in names)
    assert any(n.startswith("HTTP resolve vs gRPC resolve") for n in names)
    assert any(n.startswith("HTTP resolve vs the ASGI empty handler") for n in names)
    assert "targets:" in out.stdout
