"""Fixtures for tests against real servers started on 127.0.0.1 free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server per test: failure tests kill, freeze and restart it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
