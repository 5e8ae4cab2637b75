"""The arithmetic of ``idnode top``: rates, percentiles from bucket deltas, hit ratio."""

from __future__ import annotations

import pytest

from node.cli.top import frame, parse, quantile

BEFORE = """
# TYPE idnode_grpc_requests_total counter
idnode_grpc_requests_total{method="Resolve",code="OK"} 100
idnode_grpc_requests_total{method="Resolve",code="NOT_FOUND"} 10
# TYPE idnode_cache_hits_total counter
idnode_cache_hits_total{layer="l1"} 90
# TYPE idnode_cache_misses_total counter
idnode_cache_misses_total{layer="l1"} 10
# TYPE idnode_resolve_duration_seconds histogram
idnode_resolve_duration_seconds_bucket{le="0.001"} 50
idnode_resolve_duration_seconds_bucket{le="0.01"} 100
idnode_resolve_duration_seconds_bucket{le="+Inf"} 100
idnode_resolve_duration_seconds_count 100
idnode_resolve_duration_seconds_sum 0.2
"""
AFTER = """
# TYPE idnode_grpc_requests_total counter
idnode_grpc_requests_total{method="Resolve",code="OK"} 300
idnode_grpc_requests_total{method="Resolve",code="NOT_FOUND"} 30
# TYPE idnode_cache_hits_total counter
idnode_cache_hits_total{layer="l1"} 280
# TYPE idnode_cache_misses_total counter
idnode_cache_misses_total{layer="l1"} 20
# TYPE idnode_resolve_duration_seconds histogram
idnode_resolve_duration_seconds_bucket{le="0.001"} 250
idnode_resolve_duration_seconds_bucket{le="0.01"} 300
idnode_resolve_duration_seconds_bucket{le="+Inf"} 300
idnode_resolve_duration_seconds_count 300
idnode_resolve_duration_seconds_sum 0.6
"""


def test_rates_and_ratios_over_the_interval() -> None:
    f = frame(parse(BEFORE), parse(AFTER), 2.0)
    assert f.resolves_per_s == 100.0
    assert f.errors_per_s == 10.0
    assert f.l1_hit_ratio == pytest.approx(190 / 200)  # +190 hits, +10 misses


def test_percentiles_come_from_bucket_deltas() -> None:
    f = frame(parse(BEFORE), parse(AFTER), 2.0)
    # All 200 new observations fell in the first bucket (<= 1 ms); the quantiles are
    # interpolated linearly inside it, as Prometheus' histogram_quantile does.
    assert f.p50_ms is not None and f.p50_ms == pytest.approx(0.5)
    assert f.p99_ms is not None and f.p99_ms == pytest.approx(0.99)


def test_no_traffic_means_no_percentile() -> None:
    assert quantile({1.0: 5}, {1.0: 5}, 0.5) is None
