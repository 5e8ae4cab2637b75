"""Fixtures of the contract suite: the session's PostgreSQL server (started once, on first
use by a PostgreSQL test) and a fresh database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.pg_server import ExternalServer, PostgresServer, shared_server, stop_shared_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | ExternalServer]:
    """One PostgreSQL for the whole session (``IDNODE_TEST_DATABASE_URL`` names an
    existing one instead); stopped and removed at the end."""
    yield shared_server()
    stop_shared_server()


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
