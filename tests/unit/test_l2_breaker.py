"""The circuit breaker in front of Redis: no retry storms, one probe at a time."""

from __future__ import annotations

from node.cache.l2 import Breaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_closed_breaker_lets_everyone_through() -> None:
    breaker = Breaker(1.0, FakeClock())
    assert breaker.up
    assert all(breaker.allow() for _ in range(10))


def test_after_a_failure_redis_is_skipped_until_the_retry_delay_passed() -> None:
    clock = FakeClock()
    breaker = Breaker(1.0, clock)
    assert breaker.failure() is True  # the state changed: worth one log line
    assert not breaker.up
    assert not breaker.allow()
    clock.now += 0.999
    assert not breaker.allow()


def test_only_one_caller_probes_when_the_delay_is_over() -> None:
    clock = FakeClock()
    breaker = Breaker(1.0, clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    assert not any(breaker.allow() for _ in range(10))


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = Breaker(1.0, clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    assert breaker.success() is True
    assert breaker.up
    assert breaker.success() is False  # no state change, no second log line
    assert breaker.allow()


def test_a_failed_probe_reopens_for_another_full_delay() -> None:
    clock = FakeClock()
    breaker = Breaker(1.0, clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    assert breaker.failure() is False  # still down: not a new state
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()
