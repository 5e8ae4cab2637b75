"""Throw-away Redis deployments beyond one server, on free loopback ports under a
working directory: a master with a replica watched by three sentinels, and a Redis
Cluster of three masters. Both offer what :class:`RedisServer` offers the failure tests
(``url``, ``client``, ``dbsize``, ``kill``, ``freeze``, ``thaw``, ``restart``, ``stop``),
acting on every data server at once, and the Sentinel set can also kill just the
master and wait for the sentinels to promote the replica.

Everything is started with the installed ``redis-server`` (``--sentinel`` for the
sentinels) and ``redis-cli --cluster create``; nothing is emulated.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis
from redis.cluster import RedisCluster

from loadtest.procs import free_port
from loadtest.redis_server import RedisServer

SERVICE = "idnode"
# A master asked to stop waits (up to 10 s by default) for its replicas to catch up;
# these servers are thrown away, so they stop at once.
_NO_SHUTDOWN_WAIT = ("--shutdown-timeout", "0")


class RedisDeployment(Protocol):
    """What the failure tests do to a Redis, whatever its topology (``RedisServer``,
    :class:`RedisSentinelSet` and :class:`RedisClusterSet` all fit)."""

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def client(self) -> Any: ...

    def dbsize(self) -> int: ...

    def kill(self) -> None: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def restart(self) -> None: ...


def deployment(topology: str, workdir: Path) -> RedisDeployment:
    """A not yet started deployment: ``single``, ``sentinel`` or ``cluster`` (its
    sentinels are not waited for to know each other: no failover expected)."""
    if topology == "single":
        return RedisServer(workdir)
    if topology == "sentinel":
        # No failover expected, so no hair trigger: on a loaded machine a 400 ms
        # down-after marks a healthy master down now and then (MasterNotFoundError).
        return RedisSentinelSet(workdir, ready_for_failover=False, down_after_ms=5000)
    if topology == "cluster":
        return RedisClusterSet(workdir)
    raise ValueError(f"unknown redis topology {topology!r}")


def _wait(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis: {what} not reached within {timeout_seconds} s")


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)


class _ServerSet:
    """What every deployment does to all its data servers at once (outage tests)."""

    servers: list[RedisServer]

    def kill(self) -> None:
        for server in self.servers:
            server.kill()

    def freeze(self) -> None:
        for server in self.servers:
            server.freeze()

    def thaw(self) -> None:
        for server in self.servers:
            server.thaw()


class RedisSentinelSet(_ServerSet):
    """One master, one replica and three sentinels (quorum 2) monitoring ``idnode``.

    Small ``down_after_ms`` / ``failover_timeout_ms`` make a failover take a few
    seconds, which is what the failover tests wait for."""

    def __init__(self, workdir: Path, *, down_after_ms: int = 400,
                 failover_timeout_ms: int = 2000, ready_for_failover: bool = True) -> None:
        self.workdir = workdir
        # The sentinels find each other through the master within a few seconds; a test
        # that never fails over need not wait for it.
        self.ready_for_failover = ready_for_failover
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        first = RedisServer(workdir / "data-a", extra_args=_NO_SHUTDOWN_WAIT)
        second = RedisServer(workdir / "data-b", extra_args=[
            *_NO_SHUTDOWN_WAIT, "--replicaof", "127.0.0.1", str(first.port)])
        self.servers = [first, second]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for server in self.servers:
            server.start()
        binary = shutil.which("redis-server")
        assert binary is not None
        master_port = self.servers[0].port
        for i, port in enumerate(self.sentinel_ports):
            folder = self.workdir / f"sentinel-{i}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"  # the sentinel rewrites it: its own copy
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
            log = (folder / "sentinel.log").open("ab")
            self.sentinels.append(subprocess.Popen(
                [binary, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT))
            log.close()
        self.wait_healthy(self.ready_for_failover)

    def wait_healthy(self, for_failover: bool = True, timeout_seconds: float = 30) -> None:
        """Until every sentinel names the master and (``for_failover``) knows the other
        two sentinels and a live replica whose link to the master is up: a failover can
        then happen."""
        def ready() -> bool:
            for port in self.sentinel_ports:
                c = _client(port)
                try:
                    state: Any = c.sentinel_master(SERVICE)
                    replicas: Any = c.sentinel_slaves(SERVICE)
                finally:
                    c.close()
                if state["is_sdown"] or state["is_odown"]:
                    return False
                if not for_failover:
                    continue
                if state["num-other-sentinels"] < 2:
                    return False
                if not [r for r in replicas if not r["is_sdown"]
                        and r.get("master-link-status") == "ok"]:
                    return False
            return True

        _wait(ready, timeout_seconds, "sentinels agreeing on a master with a replica")

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.terminate()
        for proc in self.sentinels:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.sentinels = []
        for server in self.servers:
            server.stop()

    # --- the master and failover -------------------------------------------------------

    def sentinel_client(self) -> redis.Redis:
        """A client of the first sentinel (for SENTINEL commands in tests)."""
        return _client(self.sentinel_ports[0])

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            c = _client(port)
            try:
                with contextlib.suppress(redis.RedisError):
                    addr: Any = c.sentinel_get_master_addr_by_name(SERVICE)
                    if addr:
                        return int(addr[1])
            finally:
                c.close()
        raise RuntimeError("no sentinel names a master")

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(s for s in self.servers if s.port == port)

    def kill_master(self) -> RedisServer:
        """kill -9 of the current master; the sentinels will promote the replica."""
        victim = self.master()
        victim.kill()
        return victim

    def wait_failover(self, old_port: int, timeout_seconds: float = 30) -> int:
        """Until every sentinel names a master other than ``old_port`` and that server
        says it is a master; its port."""
        def moved() -> bool:
            ports = set()
            for port in self.sentinel_ports:
                c = _client(port)
                try:
                    addr: Any = c.sentinel_get_master_addr_by_name(SERVICE)
                finally:
                    c.close()
                ports.add(int(addr[1]))
            if len(ports) != 1 or old_port in ports:
                return False
            c = _client(ports.pop())
            try:
                return bool(c.info("replication")["role"] == "master")
            finally:
                c.close()

        _wait(moved, timeout_seconds, "failover")
        return self.master_port()

    # --- what the single-server failure tests do, to every data server ------------------

    def client(self) -> redis.Redis:
        return self.master().client()

    def dbsize(self) -> int:
        return self.master().dbsize()

    def restart(self) -> None:
        """Both data servers killed and started again empty, the master first."""
        master = self.master()
        replica = next(s for s in self.servers if s is not master)
        self.kill()
        master.extra_args = list(_NO_SHUTDOWN_WAIT)
        replica.extra_args = [*_NO_SHUTDOWN_WAIT, "--replicaof", "127.0.0.1",
                              str(master.port)]
        master.start()
        replica.start()


class RedisClusterSet(_ServerSet):
    """A Redis Cluster of three masters (no replicas), made by ``redis-cli --cluster
    create``. Each node keeps its cluster configuration (``nodes.conf``) in its own
    folder, so :meth:`restart` brings the same cluster back, empty."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.workdir = workdir
        self.servers = [
            RedisServer(workdir / f"node-{i}", extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000", "--cluster-port", str(free_port())])
            for i in range(masters)]
        self.created = False

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> None:
        for server in self.servers:
            server.start()
        if not self.created:
            cli = shutil.which("redis-cli")
            if cli is None:
                raise RuntimeError("redis-cli is not installed (scripts/system-deps.sh "
                                   "installs it)")
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
                 "--cluster-yes"], check=True, capture_output=True, timeout=60)
            self.created = True
        self.wait_healthy()

    def wait_healthy(self, timeout_seconds: float = 30) -> None:
        def ok() -> bool:
            for server in self.servers:
                c = server.client()
                try:
                    info: Any = c.cluster("INFO")
                finally:
                    c.close()
                if info.get("cluster_state") != "ok":  # redis-py parses CLUSTER INFO
                    return False
            return True

        _wait(ok, timeout_seconds, "cluster_state:ok on every node")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.servers[0].port, socket_timeout=2,
                            socket_connect_timeout=2)

    def dbsize(self) -> int:
        return sum(server.dbsize() for server in self.servers)

    def restart(self) -> None:
        self.kill()
        self.start()


__all__ = ["SERVICE", "RedisClusterSet", "RedisDeployment", "RedisSentinelSet", "deployment"]
