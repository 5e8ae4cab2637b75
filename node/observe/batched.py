"""Counter and histogram updates as plain integer additions, folded into the prometheus
children later: for the Handle protocol's hot path, where three locked prometheus
updates per answer (a request counter, a duration histogram, the L1 hit counter) cost
about as much as the answer itself.

Each thread that counts gets its own :class:`Tally` (lists of ints and floats only that
thread writes), so an update is an unlocked ``+= 1`` and no update is ever lost. A tally
only grows; :meth:`Batched.fold` adds to the prometheus children what every tally
gained since the previous fold (the folder keeps what it has folded, and reads the
tallies, which is safe under the GIL without stopping their writers).

When folds happen:

- **at scrape time**: :class:`~node.observe.metrics.Metrics` collects its pre-collect
  hooks first, so whoever reads its registry (``/metrics``, ``get_sample_value``) sees
  every update made before the read began: the values stay exact;
- **periodically** (the Handle server's sweep, about once a second) and when the server
  stops: with ``--workers`` the metrics port reads every worker's values from the
  shared multiprocess files, not from the workers' registries, so there they lag by
  at most that period.

The exposition is the prometheus children's own (the same names, labels, buckets and
``_created`` series): a fold adds ``n`` to a counter child with ``inc(n)`` and to a
histogram child's bucket and sum values, which is what ``n`` calls of ``observe`` would
have done (prometheus_client keeps a histogram's buckets non-cumulative and sums them
when it exposes them).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

INF = float("inf")


class Tally:
    """One thread's counts: ``counts[slot]`` per counter; per histogram ``buckets[h]``
    (one int per upper bound, +Inf last) and ``sums[h]``."""

    __slots__ = ("buckets", "counts", "sums")

    def __init__(self, counters: int, bounds: Sequence[Sequence[float]]) -> None:
        self.counts = [0] * counters
        self.buckets = [[0] * len(b) for b in bounds]
        self.sums = [0.0] * len(bounds)

    def observe(self, histogram: int, bounds: Sequence[float], seconds: float) -> None:
        """What ``Histogram.observe`` does, on this tally (``bounds`` ends with +Inf)."""
        self.buckets[histogram][0 if seconds <= bounds[0]
                                else bisect_left(bounds, seconds)] += 1
        self.sums[histogram] += seconds


class Batched:
    """Slots for counter and histogram children, a tally per thread, and the fold.

    ``enabled`` False (metrics disabled): tallies still count, folds do nothing."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._counters: list[Any] = []
        self._histograms: list[Any] = []
        self.bounds: list[tuple[float, ...]] = []
        self._tallies: dict[int, Tally] = {}
        self._folded: dict[int, Tally] = {}  # per tally: what has been folded already
        self._lock = threading.Lock()
        self._sealed = False

    def counter(self, child: Any) -> int:
        """A slot for a counter child (before the first tally is made)."""
        assert not self._sealed, "slots are fixed once a thread has counted"
        self._counters.append(child)
        return len(self._counters) - 1

    def histogram(self, child: Any, buckets: Sequence[float]) -> int:
        """A slot for a histogram child whose upper bounds are ``buckets`` (+Inf added)."""
        assert not self._sealed, "slots are fixed once a thread has counted"
        self._histograms.append(child)
        bounds = tuple(float(b) for b in buckets)
        if bounds[-1] != INF:
            bounds += (INF,)
        self.bounds.append(bounds)
        return len(self._histograms) - 1

    def tally(self) -> Tally:
        """The calling thread's tally (made on its first call)."""
        ident = threading.get_ident()
        tally = self._tallies.get(ident)
        if tally is None:
            with self._lock:
                self._sealed = True
                tally = self._tallies[ident] = Tally(len(self._counters), self.bounds)
                self._folded[id(tally)] = Tally(len(self._counters), self.bounds)
        return tally

    def fold(self) -> None:
        """Add to the prometheus children what every tally gained since the last fold."""
        if not self.enabled:
            return
        with self._lock:
            for tally in list(self._tallies.values()):
                done = self._folded[id(tally)]
                counts, folded = tally.counts, done.counts
                for slot, child in enumerate(self._counters):
                    delta = counts[slot] - folded[slot]
                    if delta:
                        child.inc(delta)
                        folded[slot] += delta
                for h, child in enumerate(self._histograms):
                    buckets, folded_buckets = tally.buckets[h], done.buckets[h]
                    for i, n in enumerate(buckets):
                        delta = n - folded_buckets[i]
                        if delta:
                            # prometheus_client's Histogram child: non-cumulative bucket
                            # values and a sum value (see the module's docstring).
                            child._buckets[i].inc(delta)
                            folded_buckets[i] += delta
                    total = tally.sums[h]
                    if total != done.sums[h]:
                        child._sum.inc(total - done.sums[h])
                        done.sums[h] = total


__all__ = ["Batched", "Tally"]
