"""``idnode top``: a terminal view of a running node, computed from its /metrics.

Two scrapes ``interval`` apart give rates (resolves/s, errors/s, writes/s), latency
percentiles over that interval (from histogram bucket deltas) and the cache hit ratio.
The parsing and arithmetic are pure functions, so they are tested without a node.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: Samples, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == want for k, want in match.items()))


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    out: dict[float, float] = defaultdict(float)
    for (n, labels), v in samples.items():
        if n == name:
            le = dict(labels).get("le", "")
            out[math.inf if le == "+Inf" else float(le)] += v
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The q-quantile of observations between two scrapes of a cumulative histogram."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    target = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= target:
            if math.isinf(bound):
                return lower
            share = (target - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return lower


@dataclass(frozen=True)
class Frame:
    resolves_per_s: float
    errors_per_s: float
    writes_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    l1_hit_ratio: float | None
    redis_up: float | None
    identifiers: float


def frame(before: Samples, after: Samples, seconds: float) -> Frame:
    def rate(name: str, **match: str) -> float:
        return max(0.0, _sum(after, name, **match) - _sum(before, name, **match)) / seconds

    resolves = rate("idnode_grpc_requests_total", method="Resolve", code="OK")
    total = rate("idnode_grpc_requests_total")
    ok = rate("idnode_grpc_requests_total", code="OK")
    hits = rate("idnode_cache_hits_total", layer="l1")
    misses = rate("idnode_cache_misses_total", layer="l1")
    b0 = _buckets(before, "idnode_resolve_duration_seconds_bucket")
    b1 = _buckets(after, "idnode_resolve_duration_seconds_bucket")
    p50, p99 = quantile(b0, b1, 0.5), quantile(b0, b1, 0.99)
    redis = [v for (n, _), v in after.items() if n == "idnode_cache_redis_up"]
    return Frame(
        resolves_per_s=resolves, errors_per_s=max(0.0, total - ok),
        writes_per_s=rate("idnode_registry_writes_total"),
        p50_ms=None if p50 is None else p50 * 1000, p99_ms=None if p99 is None else p99 * 1000,
        l1_hit_ratio=hits / (hits + misses) if hits + misses else None,
        redis_up=min(redis) if redis else None,
        identifiers=_sum(after, "idnode_registry_identifiers"))


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - operator's URL
        return parse(response.read().decode("utf-8"))


def render(f: Frame, url: str) -> object:
    from rich.table import Table

    def fmt(v: float | None, unit: str = "", digits: int = 1) -> str:
        return "–" if v is None else f"{v:,.{digits}f}{unit}"

    table = Table(title=f"idnode · {url}", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_row("resolves/s", fmt(f.resolves_per_s))
    table.add_row("latency p50 / p99", f"{fmt(f.p50_ms, ' ms', 3)} / {fmt(f.p99_ms, ' ms', 3)}")
    table.add_row("L1 hit ratio", fmt(None if f.l1_hit_ratio is None else f.l1_hit_ratio * 100,
                                      " %"))
    table.add_row("errors/s", fmt(f.errors_per_s))
    table.add_row("writes/s", fmt(f.writes_per_s))
    redis = ("not configured / down" if not f.redis_up else "up") if f.redis_up is not None \
        else "–"
    table.add_row("Redis L2", redis)
    table.add_row("identifiers", fmt(f.identifiers, digits=0))
    return table


def run(url: str, interval_seconds: float, frames: int | None = None) -> None:
    """Refresh every ``interval_seconds``; stop after ``frames`` frames (None: Ctrl-C)."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    before = scrape(url)
    shown = 0
    with Live(console=console, auto_refresh=False) as live:
        while frames is None or shown < frames:
            started = time.monotonic()
            time.sleep(interval_seconds)
            after = scrape(url)
            live.update(render(frame(before, after, time.monotonic() - started), url),  # type: ignore[arg-type]
                        refresh=True)
            before = after
            shown += 1
