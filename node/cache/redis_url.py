"""Which Redis the L2 talks to, read from ``redis_url``, and redis-py's client for it.

Three topologies, each served by redis-py's own client (nothing here re-implements what
redis-py or Redis already do):

* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS), ``unix://…`` — one
  server: :meth:`redis.Redis.from_url`.
* ``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service_name[/db]`` —
  a master watched by Sentinel: :class:`redis.sentinel.Sentinel` asked for
  ``service_name``; every new connection asks the sentinels where the master is now, so
  clients follow a failover. The hosts are sentinels (default port 26379); the
  credentials are those of the master (sentinels are reached without them).
* ``redis+cluster://[[user]:password@]host[:port][,host[:port]…][/]`` — a Redis Cluster:
  :class:`redis.cluster.RedisCluster` with those nodes as its starting points (default
  port 6379); it learns the slot map and follows ``MOVED``/failovers itself. A cluster
  has only database 0.

This module only parses and builds clients: it has no opinion on keys or pub/sub (see
:mod:`node.cache.l2`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

if TYPE_CHECKING:  # the settings parse URLs without loading redis-py
    from redis.sentinel import Sentinel

Kind = Literal["single", "sentinel", "cluster"]

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SINGLE_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379


class RedisUrlError(ValueError):
    """``redis_url`` is not one of the documented forms; the message names the problem."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``redis_url``. ``url`` is the original (for a single server, redis-py
    reads it itself); the other fields are for Sentinel and Cluster."""

    kind: Kind
    url: str = field(repr=False)  # may hold a password
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """For logs: the topology and its addresses, never a password."""
        if self.kind == "single":
            return "redis (one server)"
        where = ",".join(f"{h}:{p}" for h, p in self.hosts)
        if self.kind == "sentinel":
            return f"redis sentinel {where} service {self.service} db {self.db}"
        return f"redis cluster {where}"


def parse(url: str) -> RedisTarget:
    """The topology ``url`` names; :class:`RedisUrlError` naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise RedisUrlError("expected redis://, rediss://, unix://, redis+sentinel:// "
                            "or redis+cluster://")
    scheme = scheme.lower()
    if scheme in SINGLE_SCHEMES:
        return RedisTarget("single", url)
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise RedisUrlError(f"unknown scheme {scheme}://; expected redis://, rediss://, "
                            "unix://, redis+sentinel:// or redis+cluster://")
    if "?" in rest or "#" in rest:
        raise RedisUrlError(f"{scheme}:// takes no query or fragment")
    authority, _, path = rest.partition("/")
    username: str | None = None
    password: str | None = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    default_port = DEFAULT_SENTINEL_PORT if scheme == SENTINEL_SCHEME else DEFAULT_REDIS_PORT
    hosts = tuple(_host_port(part, default_port) for part in authority.split(","))
    parts = [p for p in path.split("/") if p] if path else []
    if scheme == CLUSTER_SCHEME:
        if parts:
            raise RedisUrlError("redis+cluster:// takes no path: a cluster has only "
                                "database 0")
        return RedisTarget("cluster", url, hosts, username=username, password=password)
    if not parts or len(parts) > 2:
        raise RedisUrlError("expected redis+sentinel://host:port[,host:port...]/"
                            "SERVICE_NAME[/DB]")
    service = unquote(parts[0])
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise RedisUrlError(f"database {parts[1]!r} is not a number")
        db = int(parts[1])
    return RedisTarget("sentinel", url, hosts, service, db, username, password)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if not text:
        raise RedisUrlError("empty host in the host list")
    if text.startswith("["):  # [::1]:26379
        host, bracket, tail = text[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise RedisUrlError(f"malformed host {text!r}")
        port_text = tail[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise RedisUrlError(f"empty host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"port {port_text!r} of {host} is not a port number")
    return host, int(port_text)


def connect(target: RedisTarget, sentinel: Sentinel | None = None,
            **options: Any) -> Any:
    """A new redis-py client for ``target`` (``redis.Redis``, or a ``RedisCluster`` made
    on first use; both speak the commands the L2 uses) with ``options`` (timeouts, retry) for its
    connections. For Sentinel pass the :func:`sentinel_for` object, so every client of
    one L2 shares one view of the sentinels."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    if target.kind == "single":
        return redis.Redis.from_url(target.url, **options)
    options.update(username=target.username, password=target.password)
    if target.kind == "sentinel":
        assert sentinel is not None
        master_for: Any = sentinel.master_for  # redis-py leaves it untyped
        return master_for(target.service, db=target.db, **options)
    node: Any = ClusterNode
    return LazyCluster(lambda: RedisCluster(
        startup_nodes=[node(h, p) for h, p in target.hosts], **options))


class LazyCluster:
    """A ``RedisCluster`` made on first use. Its constructor reads the slot map from
    the cluster, so made eagerly a node could not start (nor fail open) while the
    cluster is down or slow; made here, that failure is the first command's, which the
    L2 counts and survives like any other, and the next command tries again."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def sentinel_for(target: RedisTarget, timeout_seconds: float) -> Sentinel:
    """The sentinels of ``target``, asked with a short timeout (a dead sentinel must not
    cost a connection attempt more than that)."""
    from redis import sentinel
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    make: Any = sentinel.Sentinel  # redis-py leaves it untyped
    # No retries (with their back-off sleeps): the next sentinel in the list is the retry.
    made: Sentinel = make(list(target.hosts), sentinel_kwargs={
        "socket_timeout": timeout_seconds, "socket_connect_timeout": timeout_seconds,
        "retry": Retry(NoBackoff(), 0)})
    return made


__all__ = ["LazyCluster", "RedisTarget", "RedisUrlError", "connect", "parse", "sentinel_for"]
