"""Helpers shared by the metrics tests (tests/unit/test_metrics_lint.py, which lints the
node's metrics, and tests/unit/test_dashboard.py, which holds deploy/ to them).

Test modules import from here, never from one another: a test module is not a library
(any test_* name imported from it is collected, and run, a second time)."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

import node.observe.metrics as node_metrics
from node.observe.metrics import Metrics

# Label values the node passes where metrics.py has no constant for them (kept in step
# with node/app.py, node/web/server.py, node/service/resolve.py and node/rpc/server.py).
HTTP_ROUTES = ("/metrics", "/healthz", "/readyz", "/api/keys", "other")
HTTP_CODES = ("200", "404", "503")
INVALIDATION_SOURCES = ("local", "changelog", "redis")
WRITE_OPERATIONS = ("register", "update", "delete")


def exposed_name(family: Metric) -> str:
    """The name on the wire and in every query. prometheus_client strips ``_total`` from
    a counter family's name and adds it back to the samples, so add it back here too."""
    return family.name + "_total" if family.type == "counter" else family.name


def exercise(m: Metrics) -> None:
    """Touch every labelled family over every label value the node may pass, so the lint
    sees the label names and the series count is the worst case, not the idle case."""
    for method in node_metrics.GRPC_METHODS:
        m.duration(method).observe(0.001)
        for code in node_metrics.GRPC_CODES:
            m.request(method, code).inc()
    for route in HTTP_ROUTES:
        for status in HTTP_CODES:
            m.http_requests.labels(route, status).inc()
    for layer in node_metrics.CACHE_LAYERS:
        m.cache_hits.labels(layer).inc()
        m.cache_misses.labels(layer).inc()
    for source in INVALIDATION_SOURCES:
        m.cache_invalidations.labels(source).inc()
    for kind in node_metrics.SIGN_KINDS:
        m.signing_ops.labels(kind).inc()
    for operation in node_metrics.STORE_OPERATIONS:
        m.store_op(operation).observe(0.0005)
    for operation in WRITE_OPERATIONS:
        m.write(operation).inc()
    for limiter in node_metrics.RATE_LIMITERS:
        m.refused_by(limiter).inc()
    # The hot-path children bound in Metrics.__init__.
    for child in (m.resolve_ok, m.l1_hit, m.l1_miss, m.l2_hit, m.l2_miss, m.negative_hit,
                  m.sign_view, m.sign_nonce, m.read_primary, m.read_replica,
                  m.fallback_lagging, m.fallback_unavailable):
        child.inc()
    m.resolve_grpc_duration.observe(0.00003)
    m.resolve_latency.observe(0.00003)
