"""Prometheus metrics of the node. Names follow ``idnode_<subsystem>_<name>_<unit>``;
label values come from small fixed sets (method, code, layer, ...), never from an
identifier or a prefix. ``tests/unit/test_metrics_lint.py`` enforces both.

Hot-path children are bound once here, so an increment is a single locked add.
With metrics disabled every child is a no-op with the same interface.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from node import __version__

# Sub-millisecond to seconds: the hot path answers in tens of microseconds, a cold store
# read in a millisecond, an overloaded node in seconds.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0)

GRPC_METHODS = (
    "Resolve", "BatchResolve", "GetSigningKeys", "Register", "Update", "Delete", "List",
    "BulkRegister", "AllocatePrefix", "PutTemplate", "GetTemplate", "ListTemplates",
    "PublishTemplate", "WithdrawTemplate", "WatchChanges", "GetStats",
)
GRPC_CODES = tuple(c.name for c in grpc.StatusCode)
CACHE_LAYERS = ("l1", "l2", "negative")
STORE_OPERATIONS = ("get", "write", "list", "changes")
SIGN_KINDS = ("view", "nonce", "change")
# Where a resolve miss or a listing was read (node.service.reads), and why a read meant
# for a replica went to the primary.
STORE_READ_TARGETS = ("primary", "replica")
REPLICA_FALLBACK_REASONS = ("lagging", "unavailable")
# The Handle native protocol (node.handle): opcodes answered, transports, response codes.
HANDLE_OPERATIONS = ("resolution", "get_siteinfo", "other")
HANDLE_TRANSPORTS = ("tcp", "udp")
HANDLE_CODES = ("SUCCESS", "ERROR", "SERVER_TOO_BUSY", "PROTOCOL_ERROR",
                "OPERATION_NOT_SUPPORTED", "HANDLE_NOT_FOUND", "INVALID_HANDLE",
                "VALUES_NOT_FOUND", "SERVER_NOT_RESP", "AUTHENTICATION_NEEDED")
# The rate limiters (node.security.ratelimit): the class limited and what it is keyed by.
# Never an address or a principal as a label value.
RATE_LIMITERS = ("resolve_address", "resolve_principal", "write_address", "write_principal",
                 "auth_failures_address")


class _Noop:
    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass

    def labels(self, *args: Any, **kwargs: Any) -> _Noop:
        return self


NOOP = _Noop()


class _BeforeCollect:
    """A collector that exposes nothing and runs hooks when collected."""

    def __init__(self, hooks: list[Callable[[], None]]) -> None:
        self.hooks = hooks

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        for hook in self.hooks:
            hook()
        return []


class Metrics:
    """Every metric the node exposes, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Registered first, so a collection runs the hooks (folding batched updates, see
        # node.observe.batched) before it reads any metric.
        self._before_collect: list[Callable[[], None]] = []
        r.register(_BeforeCollect(self._before_collect))
        self.grpc_requests = Counter(
            "idnode_grpc_requests_total", "gRPC requests handled, by method and status code.",
            ["method", "code"], registry=r)
        self.grpc_duration = Histogram(
            "idnode_grpc_request_duration_seconds",
            "Time to handle a gRPC request inside the node, by method.", ["method"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.resolve_duration = Histogram(
            "idnode_resolve_duration_seconds",
            "Time to answer one resolution (gRPC or HTTP), from request to encoded answer.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter(
            "idnode_http_requests_total", "HTTP requests handled, by route and status code.",
            ["route", "code"], registry=r)
        self._cache_metrics(r)
        self.signing_ops = Counter(
            "idnode_signing_operations_total",
            "Signatures made, by kind (view, nonce, change: a signed change-feed entry).",
            ["kind"], registry=r)
        self.store_duration = Histogram(
            "idnode_store_query_duration_seconds", "Store query latency by operation.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=r)
        self._replica_metrics(r)
        self.writes = Counter(
            "idnode_registry_writes_total", "Accepted writes by operation.", ["operation"],
            registry=r)
        self.changelog_sequence = Gauge(
            "idnode_changelog_sequence", "Newest committed change-log sequence.", registry=r,
            multiprocess_mode="max")
        self.follower_lag = Gauge(
            "idnode_sync_follower_lag_changes",
            "How many changes the slowest WatchChanges follower is behind.", registry=r,
            multiprocess_mode="max")
        self.followers = Gauge(
            "idnode_sync_followers", "Open WatchChanges streams.", registry=r,
            multiprocess_mode="sum")
        self._mirror_metrics(r)
        self.identifiers = Gauge(
            "idnode_registry_identifiers", "Identifiers stored.", registry=r,
            multiprocess_mode="max")
        self.prefixes = Gauge(
            "idnode_registry_prefixes", "Enterprise prefixes allocated.", registry=r,
            multiprocess_mode="max")
        self.audit_refusals_dropped = Counter(
            "idnode_audit_refusals_dropped_total",
            "Refused attempts left out of the audit log (rate limit per client address, "
            "full queue, or the store failed); their log lines are still written.",
            registry=r)
        self.handle_requests = Counter(
            "idnode_handle_requests_total",
            "Handle protocol (RFC 3652) requests answered, by operation, transport and "
            "response code.", ["operation", "transport", "code"], registry=r)
        self.handle_request_duration = Histogram(
            "idnode_handle_request_duration_seconds",
            "Time to answer one Handle protocol request inside the node, by operation and "
            "transport.", ["operation", "transport"], buckets=LATENCY_BUCKETS, registry=r)
        self.handle_connections = Gauge(
            "idnode_handle_tcp_connections", "Open Handle protocol TCP connections.",
            registry=r, multiprocess_mode="sum")
        self.ratelimit_refused = Counter(
            "idnode_ratelimit_refused_total",
            "Requests refused by a rate limit (RESOURCE_EXHAUSTED / HTTP 429), by limiter.",
            ["limiter"], registry=r)
        if enabled:
            for limiter in RATE_LIMITERS:
                self.ratelimit_refused.labels(limiter)
            # Every series exists from the start (a fixed, small set): dashboards see
            # zeros rather than gaps, and the first request pays no child creation.
            for operation in HANDLE_OPERATIONS:
                for transport in HANDLE_TRANSPORTS:
                    self.handle_request_duration.labels(operation, transport)
                    for code in HANDLE_CODES:
                        self.handle_requests.labels(operation, transport, code)
        self.build_info = Gauge(
            "idnode_build_info", "Build information; the value is always 1.",
            ["version", "python", "grpcio"], registry=r, multiprocess_mode="max")
        self.build_info.labels(__version__, platform.python_version(), grpc.__version__).set(1)

        # Pre-bound children for the hot path.
        self.resolve_ok = self._child(self.grpc_requests, "Resolve", "OK")
        self.resolve_grpc_duration = self._child(self.grpc_duration, "Resolve")
        self.resolve_latency = self.resolve_duration if enabled else NOOP
        self.l1_hit = self._child(self.cache_hits, "l1")
        self.l1_miss = self._child(self.cache_misses, "l1")
        self.l2_hit = self._child(self.cache_hits, "l2")
        self.l2_miss = self._child(self.cache_misses, "l2")
        self.negative_hit = self._child(self.cache_hits, "negative")
        self.l2_corrupt = self.l2_corrupt_total if enabled else NOOP
        self.l2_stale = self.l2_stale_total if enabled else NOOP
        self.l2_pending = self.l2_pending_invalidations if enabled else NOOP
        self.sign_view = self._child(self.signing_ops, "view")
        self.sign_nonce = self._child(self.signing_ops, "nonce")
        self.sign_change = self._child(self.signing_ops, "change")

    def _cache_metrics(self, r: CollectorRegistry) -> None:
        """The resolve caches: L1 in process, L2 in Redis."""
        self.cache_hits = Counter(
            "idnode_cache_hits_total", "Resolve cache hits by layer.", ["layer"], registry=r)
        self.cache_misses = Counter(
            "idnode_cache_misses_total", "Resolve cache misses by layer.", ["layer"], registry=r)
        self.cache_entries = Gauge(
            "idnode_cache_l1_entries", "Entries in this process's L1 cache.", registry=r,
            multiprocess_mode="sum")
        self.cache_invalidations = Counter(
            "idnode_cache_invalidations_total",
            "L1 invalidations applied, by source (local write, change log, redis).",
            ["source"], registry=r)
        self.redis_up = Gauge(
            "idnode_cache_redis_up", "1 when the Redis L2 cache is reachable, 0 when degraded.",
            registry=r, multiprocess_mode="min")
        self.redis_errors = Counter(
            "idnode_cache_redis_errors_total", "Redis operations that failed or timed out.",
            registry=r)
        self.l2_corrupt_total = Counter(
            "idnode_cache_l2_corrupt_total",
            "Values read from Redis that were not a well-formed entry (treated as misses).",
            registry=r)
        self.l2_stale_total = Counter(
            "idnode_cache_l2_stale_total",
            "L2 entries refused as older than a known write (on set or on read).",
            registry=r)
        self.l2_pending_invalidations = Gauge(
            "idnode_cache_l2_pending_invalidations",
            "Invalidations that could not reach Redis yet and are being retried.",
            registry=r, multiprocess_mode="sum")

    def _mirror_metrics(self, r: CollectorRegistry) -> None:
        """`idnode mirror` (node/mirror.py): following a primary's change feed."""
        self.mirror_lag_sequences = Gauge(
            "idnode_mirror_lag_sequences",
            "How many change-log sequences the mirror's store is behind its primary "
            "(the primary's newest sequence, as last heard, minus the last one applied).",
            registry=r, multiprocess_mode="max")
        self.mirror_lag_seconds = Gauge(
            "idnode_mirror_lag_seconds",
            "Age of the newest primary change not yet applied by the mirror (0 when caught "
            "up).", registry=r, multiprocess_mode="max")
        self.mirror_sequence = Gauge(
            "idnode_mirror_applied_sequence",
            "The primary's change-log sequence the mirror's store has applied up to.",
            registry=r, multiprocess_mode="max")
        self.mirror_applied = Counter(
            "idnode_mirror_changes_applied_total",
            "Primary changes the mirror verified and applied to its own store.", registry=r)
        self.mirror_refused = Counter(
            "idnode_mirror_changes_refused_total",
            "Primary changes the mirror refused (signature or content check failed); "
            "nothing after them is applied until a valid change arrives.", registry=r)
        self.mirror_connected = Gauge(
            "idnode_mirror_connected",
            "1 while the mirror's change stream to its primary is open, else 0.",
            registry=r, multiprocess_mode="max")
        self.mirror_reconnects = Counter(
            "idnode_mirror_reconnects_total",
            "Times the mirror lost its primary's change stream and connected again.",
            registry=r)

    def before_collect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` whenever the registry is collected, before any metric is read."""
        self._before_collect.append(hook)

    def _replica_metrics(self, r: CollectorRegistry) -> None:
        """Where misses and listings read (node.service.reads)."""
        self.store_reads = Counter(
            "idnode_store_reads_total",
            "Resolve misses and listings read from the store, by target (primary, replica).",
            ["target"], registry=r)
        self.replica_fallbacks = Counter(
            "idnode_store_replica_fallbacks_total",
            "Reads meant for a read replica that went to the primary, by reason: the replica "
            "had not replayed a write this process knows of (lagging) or failed "
            "(unavailable).", ["reason"], registry=r)
        self.replicas_up = Gauge(
            "idnode_store_replicas_up",
            "Read replicas in use; the others are probed with a back-off.", registry=r,
            multiprocess_mode="min")
        self.replica_lag = Gauge(
            "idnode_store_replica_lag_changes",
            "How many change-log sequences the furthest-behind replica in use has not "
            "replayed yet (sampled with the store check).", registry=r,
            multiprocess_mode="max")
        self.read_primary = self._child(self.store_reads, "primary")
        self.read_replica = self._child(self.store_reads, "replica")
        self.fallback_lagging = self._child(self.replica_fallbacks, "lagging")
        self.fallback_unavailable = self._child(self.replica_fallbacks, "unavailable")

    def _child(self, metric: Any, *labels: str) -> Any:
        return metric.labels(*labels) if self.enabled else NOOP

    def request(self, method: str, code: str) -> Any:
        return self.grpc_requests.labels(method, code) if self.enabled else NOOP

    def duration(self, method: str) -> Any:
        return self.grpc_duration.labels(method) if self.enabled else NOOP

    def handle_request(self, operation: str, transport: str, code: str) -> Any:
        """The Handle request counter child; ``code`` outside HANDLE_CODES counts as
        ERROR so the label set stays fixed."""
        if not self.enabled:
            return NOOP
        if code not in HANDLE_CODES:
            code = "ERROR"
        return self.handle_requests.labels(operation, transport, code)

    def handle_duration(self, operation: str, transport: str) -> Any:
        return self.handle_request_duration.labels(operation, transport) if self.enabled \
            else NOOP

    def refused_by(self, limiter: str) -> Any:
        """The refusal counter child of one rate limiter (a name in RATE_LIMITERS)."""
        if limiter not in RATE_LIMITERS:
            raise ValueError(f"unknown rate limiter {limiter!r}")
        return self.ratelimit_refused.labels(limiter) if self.enabled else NOOP

    def store_op(self, operation: str) -> Any:
        return self.store_duration.labels(operation) if self.enabled else NOOP

    def write(self, operation: str) -> Any:
        return self.writes.labels(operation) if self.enabled else NOOP
