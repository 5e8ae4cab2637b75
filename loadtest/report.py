"""Results: the data model, the summary with ratios and targets, and the three outputs
(a table on stdout, a JSON file, a latency-percentile PNG).

Absolute req/s move between runs and machines; ratios against the echo baseline
measured in the same run do not, so every node row carries them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest.stats import PERCENTILES, Spread, pct_key, ratio, spread

SCHEMA = "idnode-loadtest/1"
#: The HTTP empty handler answered the way the node answers its hot GET (the server's
#: direct path, no ASGI): the baseline of the HTTP target.
HTTP_ECHO = "http-echo"
#: The same empty handler through a bare ASGI app (what the baseline was before the
#: node's hot GET left ASGI), reported beside it.
HTTP_ECHO_ASGI = "http-echo-asgi"


@dataclass
class Run:
    """One timed window against one server."""

    scenario: str
    server: str
    mode: str  # closed | open | h2load | bulk
    client: str
    repeat: int = 0
    concurrency: int = 0
    target_rate: float = 0.0
    duration_s: float = 0.0
    requests: int = 0
    rps: float = 0.0
    errors: int = 0
    cpu_s: float = 0.0
    cpu_us_per_req: float = math.nan
    server_processes: int = 1
    latency: dict[str, float] = field(default_factory=dict)
    send_lag: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[float, float]] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    response_bytes: dict[str, int] = field(default_factory=dict)
    items_per_request: int = 1
    other_load: float = math.nan
    max_gap_ms: float = math.nan
    loadavg: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Runs with the same key are repetitions of one measurement."""
        return (self.server, self.scenario, self.mode, self.client)


@dataclass
class Row:
    """Repetitions of one measurement folded into median and spread."""

    server: str
    scenario: str
    mode: str
    client: str
    reps: int
    rps: Spread
    cpu_us: Spread
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    items_per_request: int
    efficiency: float = math.nan
    throughput_ratio: float = math.nan
    baseline: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (Spreads as dicts)."""
        out = asdict(self)
        out["rps"] = asdict(self.rps)
        out["cpu_us"] = asdict(self.cpu_us)
        return out


def _median_of(runs: Sequence[Run], key: str) -> float:
    return spread([r.latency.get(key, math.nan) for r in runs]).median


def summarize(runs: Iterable[Run]) -> list[Row]:
    """Fold repetitions; attach efficiency and throughput ratio against the echo row
    measured with the same client and mode (else the echo closed-loop row)."""
    groups: dict[tuple[str, str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    rows = []
    for (server, scenario, mode, client), rs in groups.items():
        rows.append(Row(
            server=server, scenario=scenario, mode=mode, client=client, reps=len(rs),
            rps=spread([r.rps for r in rs]), cpu_us=spread([r.cpu_us_per_req for r in rs]),
            p50_ms=_median_of(rs, pct_key(50)), p99_ms=_median_of(rs, pct_key(99)),
            p999_ms=_median_of(rs, pct_key(99.9)), errors=sum(r.errors for r in rs),
            items_per_request=rs[0].items_per_request))
    echo = {(r.mode, r.client, r.scenario): r for r in rows if r.server == "echo"}
    http_echo = {(r.mode, r.client): r for r in rows if r.server == HTTP_ECHO}
    for row in rows:
        if row.server in ("echo", HTTP_ECHO, HTTP_ECHO_ASGI) or row.mode == "bulk":
            continue
        if row.scenario == "http":  # HTTP rows against the HTTP stack's empty handler
            base = http_echo.get((row.mode, row.client))
        else:
            base = (echo.get((row.mode, row.client, row.scenario))
                    or echo.get((row.mode, row.client, "hot"))
                    or echo.get(("closed", row.client, "hot")))
        if base is None:
            continue
        row.baseline = f"{base.server} {base.scenario}/{base.mode}/{base.client}"
        row.efficiency = ratio(base.cpu_us.median, row.cpu_us.median)
        row.throughput_ratio = ratio(row.rps.median, base.rps.median)
    return rows


def find(rows: Sequence[Row], server: str, scenario: str, mode: str,
         client_prefix: str = "") -> Row | None:
    """The row for one measurement, if it was run."""
    for row in rows:
        if (row.server, row.scenario, row.mode) == (server, scenario, mode) \
                and row.client.startswith(client_prefix):
            return row
    return None


@dataclass
class Target:
    """One of the performance issue's targets and where the node stands."""

    name: str
    goal: str
    measured: str
    status: str  # pass | FAIL | n/a | info


def _fmt_pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.0%}"


def _relative_to_hot(rows: Sequence[Row], scenario: str, goal: float, label: str) -> Target:
    hot = find(rows, "node", "hot", "closed")
    other = find(rows, "node", scenario, "closed")
    if hot is None or other is None:
        return Target(label, f"≥ {goal:.0%} of hot", "not run", "n/a")
    by_rps = ratio(other.rps.median, hot.rps.median)
    by_cpu = ratio(hot.cpu_us.median, other.cpu_us.median)
    worst = min(by_rps, by_cpu)
    return Target(label, f"≥ {goal:.0%} of hot (req/s and CPU/request)",
                  f"{_fmt_pct(by_rps)} req/s, {_fmt_pct(by_cpu)} by CPU/request",
                  "n/a" if math.isnan(worst) else ("pass" if worst >= goal else "FAIL"))


def http_targets(rows: Sequence[Row]) -> list[Target]:
    """Resolve over HTTP (only when the http scenario ran): the node's hot
    ``GET /api/handles/{handle}`` against its stack's empty handler (≥ 80 %), and per
    core against gRPC hot resolve on the same node (≥ 3×); each the worse of req/s and
    server CPU per request."""
    http = find(rows, "node", "http", "h1load")
    if http is None:
        return []
    out = []
    by_rps, by_cpu = http.throughput_ratio, http.efficiency
    worst = min(by_rps, by_cpu)
    base = "" if math.isnan(by_rps) else (
        f" (node {http.rps.median:,.0f} vs empty handler "
        f"{http.rps.median / by_rps:,.0f} req/s; {http.cpu_us.median:.0f} vs "
        f"{http.cpu_us.median * by_cpu:.0f} CPU µs/req)")
    out.append(Target("HTTP resolve vs HTTP empty handler (same server code)",
                      "≥ 80% (req/s and CPU/request)",
                      f"{_fmt_pct(by_rps)} req/s, {_fmt_pct(by_cpu)} by CPU/request{base}",
                      "n/a" if math.isnan(worst) else ("pass" if worst >= 0.8 else "FAIL")))
    asgi = find(rows, HTTP_ECHO_ASGI, "http", "h1load")
    if asgi is not None:  # for the record: the empty handler through ASGI
        a_rps = ratio(http.rps.median, asgi.rps.median)
        a_cpu = ratio(asgi.cpu_us.median, http.cpu_us.median)
        out.append(Target("HTTP resolve vs the ASGI empty handler (for reference)",
                          "none (the stack's answer without the direct path)",
                          f"{_fmt_pct(a_rps)} req/s, {_fmt_pct(a_cpu)} by CPU/request "
                          f"(node {http.rps.median:,.0f} vs {asgi.rps.median:,.0f} req/s; "
                          f"{http.cpu_us.median:.0f} vs {asgi.cpu_us.median:.0f} CPU µs/req)",
                          "info"))
    grpc = find(rows, "node", "http-grpc", "h2load")
    if grpc is None:
        out.append(Target("HTTP resolve vs gRPC resolve, per core", "≥ 3×", "not run", "n/a"))
        return out
    x_rps = ratio(http.rps.median, grpc.rps.median)
    x_cpu = ratio(grpc.cpu_us.median, http.cpu_us.median)
    worst = min(x_rps, x_cpu)
    out.append(Target("HTTP resolve vs gRPC resolve, per core (server on one core)",
                      "≥ 3× (req/s and CPU/request)",
                      f"{x_rps:.2f}× req/s ({http.rps.median:,.0f} vs {grpc.rps.median:,.0f}),"
                      f" {x_cpu:.2f}× by CPU/request ({http.cpu_us.median:.0f} vs "
                      f"{grpc.cpu_us.median:.0f} µs)",
                      "n/a" if math.isnan(worst) else ("pass" if worst >= 3.0 else "FAIL")))
    return out


def targets(rows: Sequence[Row], bulk_ids_per_s: float, workers: dict[str, Any]
            ) -> list[Target]:
    """The issue's targets, evaluated conservatively (the worse of two views)."""
    out: list[Target] = []
    hot = find(rows, "node", "hot", "closed")
    hot_h2 = find(rows, "node", "hot", "h2load")
    if hot is not None:
        out.append(Target("hot resolve efficiency (server CPU/request vs echo)", "≥ 90%",
                          f"{_fmt_pct(hot.efficiency)} (node {hot.cpu_us.median:.0f} vs "
                          f"echo {hot.efficiency * hot.cpu_us.median:.0f} µs/req, "
                          f"python client)"
                          + (f"; {_fmt_pct(hot_h2.efficiency)} with h2load" if hot_h2 else ""),
                          "pass" if min(hot.efficiency, hot_h2.efficiency if hot_h2
                                        else hot.efficiency) >= 0.9 else "FAIL"))
    thr = hot_h2 or hot
    if thr is not None:
        out.append(Target("hot resolve req/s vs echo", "≥ 90%",
                          f"{_fmt_pct(thr.throughput_ratio)} ({thr.rps.median:.0f} req/s, "
                          f"{thr.client})",
                          "pass" if thr.throughput_ratio >= 0.9 else "FAIL"))
    unloaded = find(rows, "node", "hot", "unloaded")
    if unloaded is not None:
        ok = unloaded.p50_ms <= 1.0 and unloaded.p99_ms <= 2.0
        out.append(Target("unloaded latency (concurrency 1)", "p50 ≤ 1 ms, p99 ≤ 2 ms",
                          f"p50 {unloaded.p50_ms:.2f} ms, p99 {unloaded.p99_ms:.2f} ms",
                          "pass" if ok else "FAIL"))
    loaded = find(rows, "node", "hot", "open")
    if loaded is not None:
        out.append(Target("latency at ~70% of max (open loop)", "p99 ≤ 10 ms",
                          f"p99 {loaded.p99_ms:.2f} ms, p99.9 {loaded.p999_ms:.2f} ms at "
                          f"{loaded.rps.median:.0f} req/s",
                          "pass" if loaded.p99_ms <= 10.0 and loaded.errors == 0 else "FAIL"))
    out.append(_relative_to_hot(rows, "cold", 0.5, "cold resolve (L1 misses, store reads)"))
    out.append(_relative_to_hot(rows, "notfound", 0.8, "not-found scan (negative cache)"))
    if math.isnan(bulk_ids_per_s):
        out.append(Target("BulkRegister throughput", "≥ 20,000 identifiers/s", "not run", "n/a"))
    else:
        out.append(Target("BulkRegister throughput", "≥ 20,000 identifiers/s",
                          f"{bulk_ids_per_s:,.0f} identifiers/s",
                          "pass" if bulk_ids_per_s >= 20_000 else "FAIL"))
    out.append(Target("workers 2 vs 1", "scales with cores", str(workers.get("summary", "not run")),
                      str(workers.get("status", "n/a"))))
    out.extend(http_targets(rows))
    return out


def build_report(meta: dict[str, Any], runs: Sequence[Run], notes: Sequence[str],
                 bulk: dict[str, Any], workers: dict[str, Any],
                 features: dict[str, str]) -> dict[str, Any]:
    """The JSON document (schema ``idnode-loadtest/1``)."""
    rows = summarize(runs)
    bulk_rate = float(bulk.get("ids_per_s", math.nan))
    return {
        "schema": SCHEMA,
        "meta": meta,
        "features": features,
        "summary": [r.to_dict() for r in rows],
        "targets": [asdict(t) for t in targets(rows, bulk_rate, workers)],
        "bulk": bulk,
        "workers": workers,
        "notes": list(notes),
        "runs": [asdict(r) for r in runs],
    }


def _num(x: float, digits: int = 0) -> str:
    return "—" if math.isnan(x) else f"{x:,.{digits}f}"


def _spread_text(s: Spread, digits: int = 0) -> str:
    if s.n <= 1 or math.isnan(s.median):
        return _num(s.median, digits)
    return f"{_num(s.median, digits)} [{_num(s.low, digits)}–{_num(s.high, digits)}]"


def table(report: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a run."""
    head = ("server", "scenario", "mode", "client", "n", "req/s (median [min–max])",
            "CPU µs/req", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "err", "eff", "thr",
            "other")
    lines: list[tuple[str, ...]] = [head]
    runs_by_key: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for run in report["runs"]:
        runs_by_key.setdefault((run["server"], run["scenario"], run["mode"], run["client"]),
                               []).append(run)
    for row in report["summary"]:
        s_rps = Spread(**row["rps"])
        s_cpu = Spread(**row["cpu_us"])
        rs = runs_by_key.get((row["server"], row["scenario"], row["mode"], row["client"]), [])
        p90 = spread([r["latency"].get(pct_key(90), math.nan) for r in rs]).median
        other = spread([math.nan if r.get("other_load") is None else r["other_load"]
                        for r in rs]).median
        lines.append((row["server"], row["scenario"], row["mode"], row["client"],
                      str(row["reps"]), _spread_text(s_rps), _spread_text(s_cpu),
                      _num(row["p50_ms"], 2), _num(p90, 2), _num(row["p99_ms"], 2),
                      _num(row["p999_ms"], 2), str(row["errors"]),
                      _fmt_pct(row["efficiency"]), _fmt_pct(row["throughput_ratio"]),
                      _fmt_pct(other)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
           for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append("eff = echo CPU µs/req ÷ node CPU µs/req; thr = node req/s ÷ echo req/s "
               "(same client and mode, same run); other = share of the server's core used "
               "by processes outside this harness during the window.")
    bulk = report.get("bulk") or {}
    if bulk.get("ids_per_s"):
        out.append(f"bulk: {bulk['accepted']:,} identifiers in {bulk['seconds']:.2f} s = "
                   f"{bulk['ids_per_s']:,.0f} identifiers/s, server CPU "
                   f"{bulk['cpu_us_per_id']:.1f} µs/identifier, failures {bulk['failures']}")
    for row in report["summary"]:
        if row["items_per_request"] > 1 and row["rps"]["median"]:
            per = row["items_per_request"]
            out.append(f"{row['scenario']}: {per} handles per call = "
                       f"{row['rps']['median'] * per:,.0f} handles/s, "
                       f"{(row['cpu_us']['median'] or math.nan) / per:.1f} server CPU µs "
                       "per handle (eff/thr compare whole calls with single echo calls)")
    out.append("")
    out.append("targets:")
    for t in report["targets"]:
        out.append(f"  [{t['status']:>4}] {t['name']}: {t['goal']} — {t['measured']}")
    if report.get("features"):
        out.append("")
        for name, state in report["features"].items():
            out.append(f"  {name}: {state}")
    if report.get("notes"):
        out.append("")
        out.extend(f"note: {n}" for n in report["notes"])
    return "\n".join(out)


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Pretty JSON (NaN becomes null so any JSON reader takes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(report), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Latency by percentile (x in 'nines') for every run that kept a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[tuple[float, float]]] = {}
    for run in report["runs"]:
        if run["curve"] and run["mode"] in {"closed", "open", "unloaded"}:
            label = f"{run['server']} {run['scenario']} {run['mode']}"
            if run["mode"] == "open":
                label += f" @{run['target_rate']:.0f}/s"
            curves.setdefault(label, run["curve"])  # first repetition of each
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = [plt.get_cmap("tab20")(i / 19) for i in range(20)]
    for i, (label, curve) in enumerate(curves.items()):
        xs = [-math.log10(1 - p / 100.0) for p, _ in curve]
        ax.plot(xs, [ms for _, ms in curve], marker="o", markersize=3, label=label,
                color=colours[i % len(colours)], linestyle="-" if i < 20 else "--")
    ticks = [50, 90, 99, 99.9, 99.99]
    ax.set_xticks([-math.log10(1 - p / 100.0) for p in ticks])
    ax.set_xticklabels([f"p{p:g}" for p in ticks])
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title("idnode load harness: latency by percentile "
                 f"({report['meta'].get('started', '')})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["HTTP_ECHO", "HTTP_ECHO_ASGI", "PERCENTILES", "Row", "Run", "Target", "build_report",
           "http_targets", "plot", "summarize", "table", "targets", "write_json"]
