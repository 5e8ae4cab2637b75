"""The idnode load harness: ``python -m loadtest`` (or ``make bench``).

It starts its own processes only (an empty-handler echo server as the baseline, then the
node), drives them over loopback with pinned multi-process load generators, and reports
throughput, latency percentiles and server CPU per request next to the baseline. See
docs/PERFORMANCE.md for the method and the latest results.
"""
