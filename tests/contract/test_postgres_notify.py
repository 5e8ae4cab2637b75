"""Followers on PostgreSQL are woken by LISTEN/NOTIFY (migration 0002's trigger on the
change log), not by polling: with every poll interval set to an hour, a follower waiting
in ``wait_for_changes`` still wakes when another store object (as another process
would) commits a change, and the only thing that could have woken it is the
notification."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from registry.identifier import Handle
from registry.record import Operation, Precondition, Write
from registry.stores import postgres as pg
from registry.stores.postgres import PostgresStore
from registry.values import Value
from tests.servers import wait_until

NOW = 1_700_000_000
HOUR = 3600.0


def test_a_waiting_follower_wakes_on_notify_with_polling_an_hour_apart(
        pg_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "_POLL_WITH_LISTENER", HOUR)
    monkeypatch.setattr(pg, "_POLL_WITHOUT_LISTENER", HOUR)
    url = pg_database()
    follower = PostgresStore(url)
    writer = PostgresStore(url)  # its commits reach the follower only through the server
    outcome: list[bool] = []
    try:
        last = follower.last_sequence()
        waiter = threading.Thread(
            target=lambda: outcome.append(follower.wait_for_changes(last, HOUR)),
            daemon=True)
        waiter.start()
        # LISTEN is in place before the commit (otherwise the listener's own wake-up when
        # it connects could be what finds the change).
        wait_until(lambda: follower._listening, message="the follower never listened")
        writer.apply(Write(Operation.REGISTER, Handle.parse("88.118.8/NOTIFIED"),
                           (Value(1, "URL", "https://example.com/n"),),
                           Precondition(absent=True), "tester"), NOW)
        waiter.join(30)  # a bound for a broken build, an hour short of any poll
        assert not waiter.is_alive()
        assert outcome == [True]
        assert follower.changes_since(last, 10)[0].handle == "88.118.8/NOTIFIED"
    finally:
        writer.close()
        follower.close()


class CountingStore(PostgresStore):
    """Counts how often the highest committed sequence is asked of the database."""

    looks = 0

    def last_sequence(self) -> int:
        self.looks += 1
        return super().last_sequence()


def test_an_idle_follower_asks_the_database_only_after_a_notification(
        pg_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower waits in short slices (node.service.follow); while nothing commits,
    the slices cost no queries, and the first commit (another process's) is seen."""
    monkeypatch.setattr(pg, "_POLL_WITH_LISTENER", HOUR)
    url = pg_database()
    follower = CountingStore(url)
    writer = PostgresStore(url)
    try:
        last = follower.last_sequence()
        follower.wait_for_changes(last, 0.01)  # starts the listener
        wait_until(lambda: follower._listening, message="the follower never listened")
        assert not follower.wait_for_changes(last, 0.01)  # one look while listening
        before = follower.looks
        for _ in range(20):
            assert not follower.wait_for_changes(last, 0.01)
        assert follower.looks == before
        writer.apply(Write(Operation.REGISTER, Handle.parse("88.118.8/SEEN"),
                           (Value(1, "URL", "https://example.com/s"),),
                           Precondition(absent=True), "tester"), NOW)
        assert follower.wait_for_changes(last, 30.0)
        assert follower.looks > before
    finally:
        writer.close()
        follower.close()
