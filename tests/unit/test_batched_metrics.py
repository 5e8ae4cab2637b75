"""Batched metric updates (node.observe.batched): folded at collection time they expose
exactly what direct prometheus updates would, from any number of threads."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest

from node.observe.batched import Batched
from node.observe.metrics import LATENCY_BUCKETS, Metrics

SECONDS = (0.00002, 0.0001, 0.00011, 0.003, 0.7, 9.0, 0.00002)


def exposition(metrics: Metrics) -> list[str]:
    """The Handle families' lines, without the ``_created`` timestamps."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines()
            if line.startswith("idnode_handle_") and "_created" not in line]


def test_folded_updates_expose_what_direct_updates_would() -> None:
    direct, batched_metrics = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    for seconds in SECONDS:
        direct.handle_request("resolution", "udp", "SUCCESS").inc()
        direct.handle_duration("resolution", "udp").observe(seconds)
    direct.handle_request("other", "tcp", "PROTOCOL_ERROR").inc()

    batched = Batched()
    ok = batched.counter(batched_metrics.handle_request("resolution", "udp", "SUCCESS"))
    bad = batched.counter(batched_metrics.handle_request("other", "tcp", "PROTOCOL_ERROR"))
    h = batched.histogram(batched_metrics.handle_duration("resolution", "udp"),
                          LATENCY_BUCKETS)
    batched_metrics.before_collect(batched.fold)
    tally = batched.tally()
    for n, seconds in enumerate(SECONDS):
        tally.counts[ok] += 1
        tally.observe(h, batched.bounds[h], seconds)
        if n == 3:  # a collection halfway folds the first part; the rest comes later
            exposition(batched_metrics)
    tally.counts[bad] += 1
    assert exposition(batched_metrics) == exposition(direct)
    assert exposition(batched_metrics) == exposition(direct)  # folding twice adds nothing


def test_every_threads_updates_are_counted() -> None:
    metrics = Metrics(CollectorRegistry())
    batched = Batched()
    slot = batched.counter(metrics.handle_request("resolution", "tcp", "SUCCESS"))
    metrics.before_collect(batched.fold)

    def work() -> None:
        tally = batched.tally()
        for _ in range(10_000):
            tally.counts[slot] += 1
            if _ % 2500 == 0:
                batched.fold()  # folds racing the writers lose nothing

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert metrics.registry.get_sample_value(
        "idnode_handle_requests_total",
        {"operation": "resolution", "transport": "tcp", "code": "SUCCESS"}) == 40_000


def test_disabled_metrics_fold_nothing() -> None:
    metrics = Metrics(CollectorRegistry(), enabled=False)
    batched = Batched(enabled=False)
    slot = batched.counter(metrics.handle_request("resolution", "udp", "SUCCESS"))
    batched.tally().counts[slot] += 1
    batched.fold()  # the children are no-ops: nothing to read, nothing raised
