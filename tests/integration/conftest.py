"""Fixtures for tests against real servers started on 127.0.0.1 free ports (Redis per
test, in each topology where asked, PostgreSQL once per session with a fresh database
per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.redis_ha import RedisDeployment, RedisSentinelSet, deployment
from tests.servers import RedisServer

TOPOLOGIES = ("single", "sentinel", "cluster")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server per test: failure tests kill, freeze and restart it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=TOPOLOGIES)
def redis_any(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisDeployment]:
    """A private Redis per test in each topology the L2 supports: one server, a master
    and replica behind three sentinels, and a three-master cluster."""
    server = deployment(request.param, tmp_path / f"redis-{request.param}")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=TOPOLOGIES)
def redis_shared(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisDeployment]:
    """One deployment per topology for the whole session, for tests that never kill,
    freeze or restart it: every test's store has its own id, so its own namespace."""
    server = deployment(request.param, tmp_path_factory.mktemp(f"redis-{request.param}"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinelSet]:
    """A master, its replica and three sentinels that fail over within seconds."""
    server = RedisSentinelSet(tmp_path / "redis-sentinel")
    server.start()
    yield server
    server.stop()

