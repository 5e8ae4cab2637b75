"""Pure numbers: percentiles, spreads, the Zipf sampler, /proc/PID/stat parsing.

Kept free of I/O so the unit tests can pin the arithmetic that every reported figure
goes through.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values.

    Interpolation rather than nearest-rank so that p99.9 of a short run does not jump
    straight to the maximum; the report says how many samples stood behind each figure.
    """
    if not sorted_values:
        return math.nan
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile {pct} is outside 0..100")
    pos = (len(sorted_values) - 1) * pct / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    frac = pos - low
    lo, hi = float(sorted_values[low]), float(sorted_values[high])
    return lo + (hi - lo) * frac


def latency_summary(latencies_us: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9, mean and max in milliseconds, plus the sample count."""
    ordered = sorted(latencies_us)
    out: dict[str, float] = {"samples": float(len(ordered))}
    for pct in PERCENTILES:
        out[pct_key(pct)] = percentile(ordered, pct) / 1000.0
    out["mean_ms"] = (statistics.fmean(ordered) / 1000.0) if ordered else math.nan
    out["max_ms"] = (ordered[-1] / 1000.0) if ordered else math.nan
    return out


def pct_key(pct: float) -> str:
    """JSON key of a percentile: 50 → ``p50_ms``, 99.9 → ``p99.9_ms``."""
    text = f"{pct:g}"
    return f"p{text}_ms"


def percentile_curve(latencies_us: Sequence[float],
                     points: Sequence[float] = (50, 75, 90, 95, 99, 99.5, 99.9, 99.99)
                     ) -> list[tuple[float, float]]:
    """(percentile, milliseconds) pairs for the plot."""
    ordered = sorted(latencies_us)
    return [(p, percentile(ordered, p) / 1000.0) for p in points] if ordered else []


@dataclass(frozen=True)
class Spread:
    """Median of repetitions with the min/max around it: one figure plus honesty."""

    median: float
    low: float
    high: float
    n: int

    @property
    def relative(self) -> float:
        """(max - min) / median: how much to trust a difference between two figures."""
        return (self.high - self.low) / self.median if self.median else math.nan


def spread(values: Sequence[float]) -> Spread:
    """Median, min and max of repeated measurements (NaNs ignored)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return Spread(math.nan, math.nan, math.nan, 0)
    return Spread(statistics.median(clean), min(clean), max(clean), len(clean))


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when either side is missing or zero."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


class ZipfSampler:
    """Draws item indexes 0..n-1 with P(rank k) ∝ 1 / k**s (YCSB-style s = 0.99).

    A cumulative table and a bisect keep a draw at ~1 µs, cheap enough for the client's
    hot loop. Ranks are mapped through a seeded permutation so the popular identifiers
    are spread over the key space instead of being the first ones registered.
    """

    def __init__(self, n: int, s: float = 0.99, seed: int = 1,
                 sample_seed: int | None = None) -> None:
        if n < 1:
            raise ValueError("ZipfSampler needs at least one item")
        if s <= 0:
            raise ValueError("Zipf exponent must be positive")
        self.n = n
        self.s = s
        total = 0.0
        cdf: list[float] = []
        for k in range(1, n + 1):
            total += 1.0 / (k ** s)
            cdf.append(total)
        self._cdf = [c / total for c in cdf]
        self._cdf[-1] = 1.0
        # The permutation (which ids are hot) follows ``seed`` so every client process
        # agrees on the hot set; the draws follow ``sample_seed`` so they do not march
        # in lockstep.
        self._rng = random.Random(seed if sample_seed is None else sample_seed)
        order = list(range(n))
        random.Random(seed ^ 0x5A5A).shuffle(order)
        self._items = order

    def rank(self, u: float) -> int:
        """The 0-based rank for a uniform draw ``u`` in [0, 1)."""
        return min(bisect.bisect_right(self._cdf, u), self.n - 1)

    def item_for_rank(self, rank: int) -> int:
        """The item index that holds popularity rank ``rank``."""
        return self._items[rank]

    def sample(self) -> int:
        """One item index."""
        return self._items[self.rank(self._rng.random())]

    def probability(self, rank: int) -> float:
        """P(rank) — used by the tests and to report the hot set's share."""
        before = self._cdf[rank - 1] if rank > 0 else 0.0
        return self._cdf[rank] - before


def parse_proc_stat(text: str) -> tuple[int, int, int]:
    """(ppid, utime, stime) in clock ticks from the text of /proc/PID/stat.

    The command name is in parentheses and may itself contain spaces or ')', so the
    fields are counted from the last ')'.
    """
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15 (1-based).
    return int(rest[1]), int(rest[11]), int(rest[12])


def cpu_us_per_request(cpu_seconds: float, requests: float) -> float:
    """Server CPU microseconds per request; NaN when nothing was served."""
    if requests <= 0:
        return math.nan
    return cpu_seconds / requests * 1e6


def parse_cpu_times(text: str) -> dict[int, tuple[int, int]]:
    """Per-core (busy, total) clock ticks from the text of /proc/stat.

    busy = user + nice + system + irq + softirq + steal (idle and iowait are not busy).
    Used to see how much of the server's core went to somebody else's processes during a
    window: on a shared machine that is the difference between a number and noise.
    """
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        fields = [int(x) for x in rest.split()[:8]]
        fields += [0] * (8 - len(fields))
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        out[int(name[3:])] = (user + nice + system + irq + softirq + steal,
                              user + nice + system + idle + iowait + irq + softirq + steal)
    return out
