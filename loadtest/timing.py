"""In-process micro-timing for the benchmarks that time one call (rights, templates,
grants): median seconds per call, the candidates taken in turn so that a machine busy
with other work slows all of them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

REPEATS = 7


def compare(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each function, REPEATS repetitions of ``rounds`` calls
    taken in turn (A, B, A, B, ...) so that a machine busy with other work slows all."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            started = time.perf_counter()
            for _ in range(rounds):
                fn()
            samples[name].append((time.perf_counter() - started) / rounds)
    return {name: statistics.median(found) for name, found in samples.items()}


def per_op(fn: Callable[[], object], rounds: int) -> float:
    """Median seconds per call over REPEATS repetitions of ``rounds`` calls."""
    return compare({"": fn}, rounds)[""]


__all__ = ["REPEATS", "compare", "per_op"]
