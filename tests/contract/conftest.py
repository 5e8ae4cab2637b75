"""Fixtures of the contract suite: the session's PostgreSQL server (started once, on first
use by a PostgreSQL test) and a fresh database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.pg_server import ExternalServer, PostgresServer


@pytest.fixture
def pg_database(pg_server: PostgresServer | ExternalServer) -> Iterator[Callable[[], str]]:
    """Make empty databases on the session server (URL each); dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(pg_server.create_database())
        return made[-1]

    yield make
    for url in made:
        pg_server.drop_database(url)
