"""The arithmetic every reported figure goes through (no I/O)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from loadtest.stats import (
    ZipfSampler,
    cpu_us_per_request,
    latency_summary,
    parse_cpu_times,
    parse_proc_stat,
    percentile,
    ratio,
    spread,
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(list(range(1, 1001)), 99.9) == pytest.approx(999.001)


def test_percentile_edge_cases() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([7.0], 99.9) == 7.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds_with_sample_count() -> None:
    summary = latency_summary([1000.0] * 99 + [50_000.0])  # µs in, ms out
    assert summary["samples"] == 100
    assert summary["p50_ms"] == 1.0
    assert summary["p99.9_ms"] == pytest.approx(1.0 + 49.0 * 0.901, rel=1e-9)
    assert summary["max_ms"] == 50.0


def test_spread_takes_median_and_range_ignoring_nan() -> None:
    s = spread([3.0, 1.0, 2.0, math.nan])
    assert (s.median, s.low, s.high, s.n) == (2.0, 1.0, 3.0, 3)
    assert s.relative == 1.0
    assert spread([]).n == 0


def test_ratio_and_cpu_per_request_refuse_to_divide_by_nothing() -> None:
    assert ratio(1.0, 2.0) == 0.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))
    assert cpu_us_per_request(0.5, 2000) == 250.0
    assert math.isnan(cpu_us_per_request(0.5, 0))


def test_zipf_is_deterministic_skewed_and_in_range() -> None:
    a = ZipfSampler(1000, 0.99, seed=7)
    b = ZipfSampler(1000, 0.99, seed=7)
    draws = [a.sample() for _ in range(20_000)]
    assert draws == [b.sample() for _ in range(20_000)]
    assert all(0 <= d < 1000 for d in draws)
    counts = Counter(draws)
    hottest = a.item_for_rank(0)
    assert counts.most_common(1)[0][0] == hottest
    # P(rank 0) for n=1000, s=0.99 is about 13 %; rank 1 about half of that.
    assert a.probability(0) == pytest.approx(counts[hottest] / 20_000, abs=0.01)
    assert a.probability(1) == pytest.approx(a.probability(0) / 2 ** 0.99, rel=1e-9)


def test_zipf_hot_set_is_shared_but_draws_differ_per_process() -> None:
    a = ZipfSampler(500, seed=1, sample_seed=1)
    b = ZipfSampler(500, seed=1, sample_seed=2)
    assert a.item_for_rank(0) == b.item_for_rank(0)
    assert [a.sample() for _ in range(50)] != [b.sample() for _ in range(50)]
    assert a.rank(0.0) == 0 and a.rank(0.999999999) == 499


def test_zipf_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        ZipfSampler(0)
    with pytest.raises(ValueError):
        ZipfSampler(10, s=0)


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    line = ("4242 (idnode (x) serve) S 4200 4242 4242 0 -1 4194560 100 0 0 0 "
            "1234 567 3 4 20 0 19 0 100 0 0 18446744073709551615")
    assert parse_proc_stat(line) == (4200, 1234, 567)


def test_cpu_times_per_core() -> None:
    text = ("cpu  10 0 10 100 0 0 0 0 0 0\n"
            "cpu0 5 1 4 50 2 1 1 1 0 0\n"
            "cpu1 5 0 6 50 0 0 0 0 0 0\n"
            "intr 1 2 3\n")
    cores = parse_cpu_times(text)
    assert cores == {0: (13, 65), 1: (11, 61)}
