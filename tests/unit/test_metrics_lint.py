"""Lint every metric the node exposes, the way a Prometheus reviewer would.

Dashboards, alerts and the operators' muscle memory all depend on metric names, so the
naming rules are enforced here rather than in review: ``idnode_<subsystem>_<name>_<unit>``,
counters end in ``_total``, durations in ``_seconds``, base units only, and label names
from a small allowlist of bounded dimensions. An identifier or a prefix as a label would
create one series per identifier and take Prometheus down, so those names are forbidden
outright and the label value sets the node uses are checked to be fixed and small.

The linter is tested against deliberately bad metrics too: a lint that cannot fail
would let every future mistake through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

import node.observe.metrics as node_metrics
from idnode.v1 import registry_pb2, resolver_pb2, sync_pb2
from node.observe.metrics import Metrics
from tests.metrics_helpers import (
    HTTP_ROUTES,
    INVALIDATION_SOURCES,
    exercise,
    exposed_name,
)

NAME_RE = re.compile(r"^idnode_[a-z0-9]+_[a-z0-9_]+$")

# Bounded dimensions only: each takes values from a fixed set known at build time.
ALLOWED_LABELS = frozenset({"method", "code", "route", "layer", "source", "kind", "operation",
                            "transport", "limiter", "target", "reason",
                            "version", "python", "grpcio"})
# Unbounded by nature (one value per identifier, prefix or caller): never a label.
FORBIDDEN_LABELS = frozenset({"handle", "prefix", "identifier", "key", "principal",
                              "address", "peer", "client", "ip"})
# Prometheus wants base units (seconds, bytes); scaled units make every query convert.
NON_BASE_UNITS = frozenset({"ms", "millis", "milliseconds", "us", "micros", "microseconds",
                            "ns", "nanoseconds", "minutes", "hours", "days", "kb", "kib",
                            "kilobytes", "mb", "mib", "megabytes", "gb", "gib", "gigabytes",
                            "percent"})
# Words that say "this measures time": such a metric must be in seconds.
DURATION_WORDS = frozenset({"duration", "latency", "elapsed"})
# Suffixes the exposition format gives a meaning to; a gauge must not borrow them.
RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created", "_info")
# The one info-style gauge (a constant 1 carrying build labels), by Prometheus convention.
INFO_EXCEPTIONS = frozenset({"idnode_build_info"})
# Labels the client library adds to histogram and summary samples; not ours to lint.
INTERNAL_LABELS = {"histogram": {"le"}, "gaugehistogram": {"le"}, "summary": {"quantile"}}

# A whole node exercised over every label value it may use must stay well below this:
# a few thousand series per process is what a 5 s scrape of many processes can afford.
MAX_SERIES_PER_REGISTRY = 2000


def label_names(family: Metric) -> set[str]:
    """The family's own label names, as seen on its samples."""
    internal = INTERNAL_LABELS.get(family.type, set())
    return {name for sample in family.samples for name in sample.labels} - internal


def lint_family(family: Metric) -> list[str]:
    """Every naming, unit, help and label rule this family breaks, one message each."""
    name = exposed_name(family)
    problems: list[str] = []

    def bad(rule: str) -> None:
        problems.append(f"{name}: {rule}")

    if not NAME_RE.fullmatch(name):
        bad(f"name does not match {NAME_RE.pattern}")
    tokens = name.split("_")
    scaled = sorted(NON_BASE_UNITS.intersection(tokens))
    if scaled:
        bad(f"non-base unit {', '.join(scaled)}: use seconds or bytes")
    if "_total" in name[: -len("_total")]:
        bad("_total only belongs at the very end")
    if not family.documentation.strip():
        bad("empty help text")

    if family.type == "counter":
        allowed = {family.name + "_total", family.name + "_created"}
        for sample in family.samples:
            if sample.name not in allowed:
                bad(f"counter sample {sample.name} does not end in _total")
    elif family.type in {"gauge", "info"}:
        if name not in INFO_EXCEPTIONS and family.type != "info" \
                and name.endswith(RESERVED_SUFFIXES):
            bad(f"a gauge must not end in a reserved suffix {RESERVED_SUFFIXES}")
    elif family.type in {"histogram", "gaugehistogram", "summary"}:
        if not name.endswith(("_seconds", "_bytes")):
            bad(f"a {family.type} must end in its base unit (_seconds or _bytes)")
    else:
        bad(f"unexpected metric type {family.type}")

    if DURATION_WORDS.intersection(tokens) and not name.endswith(("_seconds",
                                                                   "_seconds_total")):
        bad("a duration must be measured in _seconds")

    labels = label_names(family)
    for label in sorted(labels & FORBIDDEN_LABELS):
        bad(f"label {label!r} is unbounded (one series per identifier/prefix/caller)")
    for label in sorted(labels - FORBIDDEN_LABELS - ALLOWED_LABELS):
        bad(f"label {label!r} is not in the allowlist of bounded labels")
    return problems


def lint(families: Iterable[Metric]) -> list[str]:
    """Lint a whole registry's worth of families."""
    return [problem for family in families for problem in lint_family(family)]


@pytest.fixture
def exercised() -> Metrics:
    metrics = Metrics(CollectorRegistry())
    exercise(metrics)
    return metrics


# --- the node's own metrics -------------------------------------------------------------


def test_every_exposed_metric_family_passes_the_lint(exercised: Metrics) -> None:
    families = list(exercised.registry.collect())
    assert len(families) >= 15, "Metrics() should expose the whole catalogue"
    assert lint(families) == []


def test_every_family_has_samples_once_exercised_so_its_labels_are_linted(
        exercised: Metrics) -> None:
    # A labelled family with no children exposes no samples, hence no label names:
    # the lint would wave it through. A new labelled metric must be added to exercise().
    empty = [f.name for f in exercised.registry.collect() if not f.samples]
    assert empty == []


def test_metrics_registers_in_its_own_registry_not_the_global_one() -> None:
    # Two Metrics() in one process (tests, several nodes) must not collide.
    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry


def test_label_value_sets_are_fixed_small_tuples_of_unique_strings() -> None:
    for name in ("GRPC_METHODS", "GRPC_CODES", "CACHE_LAYERS", "STORE_OPERATIONS",
                 "SIGN_KINDS", "RATE_LIMITERS", "STORE_READ_TARGETS",
                 "REPLICA_FALLBACK_REASONS"):
        values = getattr(node_metrics, name)
        assert isinstance(values, tuple), f"{name} must be immutable"
        assert all(isinstance(v, str) and v for v in values), name
        assert len(set(values)) == len(values), f"{name} has duplicates"
        assert 0 < len(values) <= 32, f"{name} is not a small fixed set"


def test_method_label_values_are_exactly_the_rpcs_of_the_wire_contract() -> None:
    rpcs = {method.name
            for module in (resolver_pb2, registry_pb2, sync_pb2)
            for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods}
    assert set(node_metrics.GRPC_METHODS) == rpcs


def test_code_label_values_are_the_grpc_status_names() -> None:
    assert set(node_metrics.GRPC_CODES) == {code.name for code in grpc.StatusCode}


def test_label_values_stay_within_the_fixed_sets(exercised: Metrics) -> None:
    domains = {
        "method": set(node_metrics.GRPC_METHODS),
        "layer": set(node_metrics.CACHE_LAYERS),
        "kind": set(node_metrics.SIGN_KINDS),
        "source": set(INVALIDATION_SOURCES),
        "route": set(HTTP_ROUTES),
        "limiter": set(node_metrics.RATE_LIMITERS),
        "target": set(node_metrics.STORE_READ_TARGETS),
        "reason": set(node_metrics.REPLICA_FALLBACK_REASONS),
    }
    for family in exercised.registry.collect():
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label in domains:
                    assert value in domains[label], (family.name, label, value)


def test_series_count_stays_bounded_with_every_label_value_in_use(exercised: Metrics) -> None:
    series = {(s.name, tuple(sorted(s.labels.items())))
              for family in exercised.registry.collect() for s in family.samples}
    assert len(series) <= MAX_SERIES_PER_REGISTRY


def test_disabled_metrics_hand_out_noops_with_the_same_interface() -> None:
    metrics = Metrics(CollectorRegistry(), enabled=False)
    exercise(metrics)  # must not raise: the hot path calls these unconditionally
    assert metrics.request("Resolve", "OK") is node_metrics.NOOP
    assert metrics.l1_hit is node_metrics.NOOP


# --- the linter itself ------------------------------------------------------------------


class _RawFamily(Collector):
    """Exposes a hand-made family: the only way to get a counter without ``_total`` past
    prometheus_client, which otherwise adds the suffix itself."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterable[Metric]:
        return [self.family]


def _raw_counter_without_total(r: CollectorRegistry) -> None:
    family = Metric("idnode_grpc_requests", "Requests.", "counter")
    family.add_sample("idnode_grpc_requests", {}, 1.0)
    r.register(_RawFamily(family))


BAD_METRICS: dict[str, tuple[Callable[[CollectorRegistry], object], str]] = {
    "no idnode_ prefix": (
        lambda r: Counter("grpc_requests_total", "Requests.", registry=r), "does not match"),
    "no subsystem": (
        lambda r: Gauge("idnode_up", "Up.", registry=r), "does not match"),
    "upper case": (
        lambda r: Gauge("idnode_cache_L1_entries", "Entries.", registry=r), "does not match"),
    "gauge ending in _total": (
        lambda r: Gauge("idnode_cache_entries_total", "Entries.", registry=r),
        "reserved suffix"),
    "gauge ending in _count": (
        lambda r: Gauge("idnode_sync_follower_count", "Followers.", registry=r),
        "reserved suffix"),
    "info suffix on a non-info gauge": (
        lambda r: Gauge("idnode_store_info", "Store.", registry=r), "reserved suffix"),
    "histogram in milliseconds": (
        lambda r: Histogram("idnode_resolve_latency_ms", "Latency.", registry=r),
        "non-base unit ms"),
    "histogram without a unit": (
        lambda r: Histogram("idnode_store_query_duration", "Latency.", registry=r),
        "must end in its base unit"),
    "summary in milliseconds": (
        lambda r: Summary("idnode_resolve_time_milliseconds", "Latency.", registry=r),
        "non-base unit milliseconds"),
    "duration gauge not in seconds": (
        lambda r: Gauge("idnode_sync_duration_minutes", "Lag.", registry=r),
        "non-base unit minutes"),
    "duration counter not in seconds": (
        lambda r: Counter("idnode_store_latency_total", "Time.", registry=r),
        "must be measured in _seconds"),
    "size in kilobytes": (
        lambda r: Gauge("idnode_cache_l1_kb", "Size.", registry=r), "non-base unit kb"),
    "_total in the middle": (
        lambda r: Counter("idnode_cache_total_hits_total", "Hits.", registry=r),
        "only belongs at the very end"),
    "empty help": (
        lambda r: Gauge("idnode_cache_l1_entries", "", registry=r), "empty help text"),
    "counter sample without _total": (_raw_counter_without_total, "does not end in _total"),
}


@pytest.mark.parametrize("case", sorted(BAD_METRICS))
def test_linter_rejects_a_badly_named_metric(case: str) -> None:
    make, expected = BAD_METRICS[case]
    scratch = CollectorRegistry()
    make(scratch)
    problems = lint(scratch.collect())
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("label", sorted(FORBIDDEN_LABELS))
def test_linter_rejects_an_unbounded_label(label: str) -> None:
    scratch = CollectorRegistry()
    Counter("idnode_resolve_requests_total", "Resolutions.", [label],
            registry=scratch).labels("88.118.8/PN-0001").inc()
    problems = lint(scratch.collect())
    assert any(f"label {label!r} is unbounded" in p for p in problems), problems


def test_linter_rejects_a_label_outside_the_allowlist() -> None:
    scratch = CollectorRegistry()
    Histogram("idnode_store_query_duration_seconds", "Latency.", ["tenant"],
              registry=scratch).labels("acme").observe(0.1)
    problems = lint(scratch.collect())
    assert problems == ["idnode_store_query_duration_seconds: label 'tenant' is not in the "
                        "allowlist of bounded labels"]


def test_linter_accepts_well_named_metrics_of_every_type() -> None:
    # The control case: without it, a linter that flags everything would pass the above.
    scratch = CollectorRegistry()
    Counter("idnode_cache_hits_total", "Hits.", ["layer"], registry=scratch).labels("l1").inc()
    Counter("idnode_cache_redis_errors", "Errors (suffix added by the client).",
            registry=scratch).inc()
    Gauge("idnode_cache_l1_bytes", "Bytes.", registry=scratch).set(1)
    Gauge("idnode_build_info", "Build.", ["version"], registry=scratch).labels("1").set(1)
    Histogram("idnode_resolve_duration_seconds", "Latency.", ["method"],
              registry=scratch).labels("Resolve").observe(0.001)
    Summary("idnode_http_response_size_bytes", "Size.", registry=scratch).observe(10)
    assert lint(scratch.collect()) == []
