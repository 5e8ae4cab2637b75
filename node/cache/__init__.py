"""Caches of ready-to-send answers: L1 (in-process), L2 (Redis, shared, fail-open) and
the host-wide change beacon that keeps worker processes' L1 fresh."""
