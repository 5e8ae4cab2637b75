"""Report shape, ratios against the echo baseline, and target evaluation (no I/O
except writing into pytest's tmp_path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from loadtest.report import Run, build_report, summarize, table, write_json


def _run(server: str, scenario: str, rps: float, cpu: float, mode: str = "closed",
         client: str = "python-aio x2", p50: float = 0.5, p99: float = 1.5,
         rep: int = 0) -> Run:
    return Run(scenario=scenario, server=server, mode=mode, client=client, repeat=rep,
               duration_s=5, requests=int(rps * 5), rps=rps, cpu_us_per_req=cpu,
               latency={"samples": 10.0, "p50_ms": p50, "p90_ms": p50, "p99_ms": p99,
                        "p99.9_ms": p99}, curve=[(50.0, p50), (99.0, p99)])


def _runs() -> list[Run]:
    return [
        _run("echo", "hot", 3000, 300, rep=0), _run("echo", "hot", 3200, 280, rep=1),
        _run("echo", "hot", 3100, 290, rep=2),
        _run("node", "hot", 2900, 310, rep=0), _run("node", "hot", 2800, 330, rep=1),
        _run("node", "hot", 2850, 320, rep=2),
        _run("node", "hot", 900, 400, mode="unloaded", client="python-aio x1", p50=0.6,
             p99=2.5),
        _run("node", "hot", 2000, 320, mode="open", p99=8.0),
        _run("node", "cold", 1000, 900),
        _run("node", "notfound", 2700, 330),
    ]


def test_repetitions_fold_into_median_and_spread_with_ratios() -> None:
    rows = summarize(_runs())
    hot = next(r for r in rows if (r.server, r.scenario, r.mode) == ("node", "hot", "closed"))
    assert hot.reps == 3
    assert (hot.rps.median, hot.rps.low, hot.rps.high) == (2850, 2800, 2900)
    assert hot.cpu_us.median == 320
    assert math.isclose(hot.efficiency, 290 / 320)
    assert math.isclose(hot.throughput_ratio, 2850 / 3100)
    assert hot.baseline == "echo hot/closed/python-aio x2"


def test_report_json_shape_and_targets(tmp_path: Path) -> None:
    report = build_report({"started": "now", "pinning": "test"}, _runs(), ["a note"],
                          {"ids_per_s": 25_000.0, "accepted": 100, "seconds": 0.004,
                           "cpu_us_per_id": 30.0, "failures": 0},
                          {"status": "n/a", "summary": "not supported"}, {"workers": "no"})
    assert report["schema"] == "idnode-loadtest/1"
    assert set(report) >= {"meta", "summary", "targets", "bulk", "workers", "notes", "runs",
                           "features"}
    for row in report["summary"]:
        assert set(row) >= {"server", "scenario", "mode", "client", "reps", "rps", "cpu_us",
                            "p50_ms", "p99_ms", "p999_ms", "errors", "efficiency",
                            "throughput_ratio"}
        assert set(row["rps"]) == {"median", "low", "high", "n"}
    status = {t["name"]: t["status"] for t in report["targets"]}
    assert status["hot resolve efficiency (server CPU/request vs echo)"] == "pass"
    assert status["hot resolve req/s vs echo"] == "pass"
    assert status["unloaded latency (concurrency 1)"] == "FAIL"  # p99 2.5 ms > 2 ms
    assert status["latency at ~70% of max (open loop)"] == "pass"
    assert status["cold resolve (L1 misses, store reads)"] == "FAIL"  # 35 % by req/s
    assert status["not-found scan (negative cache)"] == "pass"
    assert status["BulkRegister throughput"] == "pass"
    assert status["workers 2 vs 1"] == "n/a"
    path = write_json(report, tmp_path / "r.json")
    loaded = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert loaded["summary"][0]["efficiency"] is None  # the echo row has no ratio
    text = table(report)
    assert "req/s" in text and "targets:" in text and "a note" in text


def test_missing_scenarios_are_reported_not_guessed() -> None:
    report = build_report({}, [_run("node", "hot", 100, 100)], [], {}, {}, {})
    status = {t["name"]: (t["status"], t["measured"]) for t in report["targets"]}
    assert status["cold resolve (L1 misses, store reads)"] == ("n/a", "not run")
    assert status["BulkRegister throughput"][0] == "n/a"
