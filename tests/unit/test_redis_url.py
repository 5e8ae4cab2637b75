"""The ``redis_url`` forms: one server, Sentinel and Cluster (parsing only, no I/O)."""

from __future__ import annotations

import pytest

from node.cache.redis_url import RedisTarget, RedisUrlError, parse
from node.settings import load


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "unix:///run/redis.sock",
])
def test_one_server_urls_are_left_to_redis_py(url: str) -> None:
    assert parse(url) == RedisTarget("single", url)


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    target = parse("redis+sentinel://:s%40cret@10.0.0.1:26380,sentinel-b,[::1]:26381/"
                   "cache-master/2")
    assert target.kind == "sentinel"
    assert target.hosts == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert (target.service, target.db) == ("cache-master", 2)
    assert (target.username, target.password) == (None, "s@cret")
    assert parse("redis+sentinel://user:pw@h/svc").db == 0
    assert parse("redis+sentinel://user:pw@h/svc").username == "user"


def test_a_cluster_url_names_its_starting_nodes() -> None:
    target = parse("redis+cluster://10.0.0.1:7000,10.0.0.2")
    assert target.kind == "cluster"
    assert target.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 6379))
    assert parse("redis+cluster://h:7000/").hosts == (("h", 7000),)


def test_a_password_is_never_in_the_repr_or_the_description() -> None:
    target = parse("redis+sentinel://:hunter2secret@h:26379/svc")
    assert "hunter2secret" not in repr(target)
    assert "hunter2secret" not in target.describe()


@pytest.mark.parametrize(("url", "problem"), [
    ("http://h", "unknown scheme"),
    ("h:6379", "expected redis://"),
    ("redis+sentinel://h:26379", "SERVICE_NAME"),
    ("redis+sentinel://h:26379/svc/db1", "not a number"),
    ("redis+sentinel://h/svc/0/extra", "SERVICE_NAME"),
    ("redis+sentinel://h:0/svc", "not a port number"),
    ("redis+sentinel://h,,i/svc", "empty host"),
    ("redis+cluster://h:7000/1", "only database 0"),
    ("redis+cluster://h:port", "not a port number"),
    ("redis+cluster://h?ssl=1", "no query"),
    ("redis+cluster://[::1/", "malformed host"),
])
def test_a_malformed_url_is_refused_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError, match=problem):
        parse(url)


def test_the_settings_accept_every_form() -> None:
    for url in ("redis://h:6379/0", "redis+sentinel://h1,h2,h3/idnode/0",
                "redis+cluster://h1:7000,h2:7001"):
        assert load(env={"IDNODE_REDIS_URL": url}).redis_url == url
