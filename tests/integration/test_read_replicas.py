"""Read replicas with read-your-writes, against a real PostgreSQL primary and a real
streaming hot standby of it (``pg_basebackup -R``, tests/pg_server.py).

Nodes are built through the composition root with ``database_read_url`` naming the
standby. What is pinned: misses read the standby once it has replayed what the node
knows of (counted by ``idnode_store_reads_total{target}``); with replay paused on the
standby, a write followed by a resolve or a listing through the same node never shows
the older state (the standby really is behind: read directly, it shows it); a stopped
standby costs clients nothing and is used again once it is back; and three nodes on
one primary + standby and one Redis never answer stale across 1,000 rounds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from idnode.v1 import registry_pb2
from node.app import Node
from node.cli.main import app as cli_app
from registry.identifier import Handle
from registry.record import Operation, Precondition, Write
from registry.stores.postgres import PostgresReplica, PostgresStore
from registry.values import Value
from tests.conftest import ADMIN, Client, NodeFactory
from tests.integration.helpers import resolve_version, sample, update, wait_until
from tests.pg_server import PostgresServer, StandbyServer, start_pair
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

Pair = tuple[PostgresServer, StandbyServer]


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """One primary and one streaming standby for the module (each test gets its own
    database on them)."""
    primary, standby = start_pair()
    yield primary, standby
    standby.destroy()
    primary.destroy()


@pytest.fixture
def urls(pair: Pair) -> Iterator[tuple[str, str]]:
    """A fresh database: its URL on the primary and on the standby (created and migrated
    on the primary, then replayed by the standby)."""
    primary, standby = pair
    url = primary.create_database()
    PostgresStore(url).close()  # migrate now, so the standby has the schema too
    standby.wait_replayed()
    yield url, standby.url_of(url)
    primary.drop_database(url)


def reads(node: Node, target: str) -> float:
    return sample(node, "idnode_store_reads_total", target=target)


def fallbacks(node: Node, reason: str) -> float:
    return sample(node, "idnode_store_replica_fallbacks_total", reason=reason)


def replicated_node(node_factory: NodeFactory, urls: tuple[str, str],
                    **overrides: object) -> Node:
    """A node on the primary reading misses from the standby, once the standby is in
    use. Without an L1 every resolve is a miss, so every read is counted."""
    node = node_factory(database_url=urls[0], database_read_url=urls[1],
                        l1_max_entries=0, **overrides)
    assert node.reads is not None
    assert wait_until(lambda: node.reads is not None and node.reads.replicas_in_use == 1)
    return node


def listing(client: Client, prefix: str) -> list[str]:
    response = client.registry.List(registry_pb2.ListRequest(prefix=prefix, page_size=1000),
                                    metadata=ADMIN, timeout=10)
    return list(response.handles)


def test_resolve_misses_read_the_replica_once_it_has_replayed_the_write(
        node_factory: NodeFactory, pair: Pair, urls: tuple[str, str]) -> None:
    node = replicated_node(node_factory, urls)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    try:
        ack = client.register("88.118.8/FRESH-1", ("URL", "https://example.com/1"))
        pair[1].wait_replayed()
        replica, primary = reads(node, "replica"), reads(node, "primary")
        for _ in range(20):
            assert resolve_version(client, "88.118.8/FRESH-1") == (1, ack.etag)
        assert reads(node, "replica") - replica == 20
        assert reads(node, "primary") == primary
        assert "88.118.8/FRESH-1" in listing(client, "88.118.8")
        assert reads(node, "replica") - replica == 21
        assert fallbacks(node, "lagging") == fallbacks(node, "unavailable") == 0
        assert sample(node, "idnode_store_replicas_up") == 1
    finally:
        client.close()


def test_a_write_is_never_read_older_through_the_writing_node_while_replay_is_paused(
        node_factory: NodeFactory, pair: Pair, urls: tuple[str, str]) -> None:
    standby = pair[1]
    node = replicated_node(node_factory, urls)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    replica = PostgresReplica(urls[1])
    handle = "88.118.8/PAUSED-1"
    try:
        etag = client.register(handle, ("URL", "https://example.com/0")).etag
        client.register("88.118.8/UNTOUCHED", ("URL", "https://example.com/u"))
        standby.wait_replayed()
        standby.pause_replay()
        try:
            acks = []
            for i in range(1, 6):
                ack = update(client, handle, etag, f"https://example.com/{i}")
                etag = ack.etag
                acks.append(ack)
                # Resolved at once through the same node: never an older version.
                assert resolve_version(client, handle) == (ack.version, ack.etag)
            # The standby really is behind: read directly, it has the first version.
            _, record = replica.get_replayed(Handle.parse(handle).key)
            assert record is not None and record.version == 1
            assert fallbacks(node, "lagging") >= 5
            # An identifier this node knows no newer write of still reads the replica.
            before = reads(node, "replica")
            assert resolve_version(client, "88.118.8/UNTOUCHED")[0] == 1
            assert reads(node, "replica") == before + 1
            # A listing after a registration includes it (the replica would not).
            client.register("88.118.8/PAUSED-NEW", ("URL", "https://example.com/n"))
            assert "88.118.8/PAUSED-NEW" in listing(client, "88.118.8")
            assert "88.118.8/PAUSED-NEW" not in [
                shown for _, shown in replica.list_keys_replayed("88.118.8", "", 1000)[1]]
        finally:
            standby.resume_replay()
        standby.wait_replayed()
        # Caught up: the same identifier reads the replica again.
        before = reads(node, "replica")
        assert resolve_version(client, handle) == (acks[-1].version, acks[-1].etag)
        assert reads(node, "replica") == before + 1
    finally:
        replica.close()
        client.close()


def test_a_node_started_next_to_a_stuck_replica_never_serves_what_it_did_not_hear_of(
        node_factory: NodeFactory, pair: Pair, urls: tuple[str, str]) -> None:
    """Writes made before a node started are unknown to it key by key, but it knows they
    were committed: a replica that has not replayed them is not used for any key."""
    standby = pair[1]
    writer = node_factory(database_url=urls[0])
    writing = Client(f"127.0.0.1:{writer.grpc_port}")
    handle = "88.118.8/BEFORE-START"
    try:
        etag = writing.register(handle, ("URL", "https://example.com/0")).etag
        standby.wait_replayed()
        standby.pause_replay()
        try:
            ack = update(writing, handle, etag, "https://example.com/1")
            node = replicated_node(node_factory, urls)  # no Redis: hears of nothing
            client = Client(f"127.0.0.1:{node.grpc_port}")
            try:
                assert resolve_version(client, handle) == (ack.version, ack.etag)
                assert fallbacks(node, "lagging") == 1
            finally:
                client.close()
        finally:
            standby.resume_replay()
    finally:
        writing.close()


def test_a_stopped_replica_costs_clients_nothing_and_is_used_again_once_back(
        node_factory: NodeFactory, pair: Pair, urls: tuple[str, str]) -> None:
    standby = pair[1]
    node = replicated_node(node_factory, urls, database_read_retry_after_ms=50)
    assert node.reads is not None
    client = Client(f"127.0.0.1:{node.grpc_port}")
    handle = "88.118.8/DEAD-REPLICA"
    try:
        ack = client.register(handle, ("URL", "https://example.com/d"))
        standby.wait_replayed()
        assert resolve_version(client, handle) == (1, ack.etag)
        standby.stop()
        try:
            primary = reads(node, "primary")
            for _ in range(50):  # every one answered, none an error
                assert resolve_version(client, handle) == (1, ack.etag)
            assert reads(node, "primary") > primary
            assert wait_until(lambda: node.reads is not None
                              and node.reads.replicas_in_use == 0)
            assert sample(node, "idnode_store_replicas_up") == 0
            for _ in range(20):
                assert resolve_version(client, handle) == (1, ack.etag)
        finally:
            standby.start()
            standby.wait_streaming()
        assert wait_until(lambda: node.reads is not None and node.reads.replicas_in_use == 1,
                          timeout_seconds=60)
        before = reads(node, "replica")
        assert resolve_version(client, handle) == (1, ack.etag)
        assert reads(node, "replica") == before + 1
    finally:
        client.close()


def test_a_replica_of_another_store_is_never_used(
        node_factory: NodeFactory, pair: Pair, urls: tuple[str, str]) -> None:
    primary, standby = pair
    other = primary.create_database()
    try:
        PostgresStore(other).close()
        standby.wait_replayed()
        node = node_factory(database_url=urls[0], database_read_url=standby.url_of(other),
                            l1_max_entries=0, database_read_retry_after_ms=50)
        client = Client(f"127.0.0.1:{node.grpc_port}")
        try:
            ack = client.register("88.118.8/OWN", ("URL", "https://example.com/o"))
            assert node.reads is not None
            assert wait_until(lambda: node.reads is not None and any(
                "another store" in why for why in node.reads.out_of_use()))
            assert node.reads.replicas_in_use == 0
            assert resolve_version(client, "88.118.8/OWN") == (1, ack.etag)
            assert reads(node, "replica") == 0
        finally:
            client.close()
    finally:
        primary.drop_database(other)


ROUNDS = 1_000


@pytest.mark.slow
def test_three_nodes_on_a_primary_and_standby_never_answer_stale(
        node_factory: NodeFactory, pair: Pair, urls: tuple[str, str],
        redis_server: RedisServer) -> None:
    """Write through one node, resolve through the two others, 1,000 times; replay is
    paused on the standby for a third of the rounds. The nodes are strict (no L1), as
    stateless nodes behind a balancer are: each resolve is L2 or a store read."""
    standby = pair[1]
    nodes = [replicated_node(node_factory, urls, redis_url=redis_server.url)
             for _ in range(3)]
    clients = [Client(f"127.0.0.1:{n.grpc_port}") for n in nodes]
    handle = "88.118.8/ROUNDS-1"
    stale: list[tuple[int, int, int, int]] = []
    try:
        etag = clients[0].register(handle, ("URL", "https://example.com/0")).etag
        for i in range(1, ROUNDS + 1):
            if i == ROUNDS // 3:
                standby.pause_replay()
            if i == 2 * ROUNDS // 3:
                standby.resume_replay()
            writer = i % 3
            ack = update(clients[writer], handle, etag, f"https://example.com/{i}")
            etag = ack.etag
            readers = [(writer + 1) % 3, (writer + 2) % 3]
            if i % 2:
                readers.reverse()
            for r in readers:
                version, got = resolve_version(clients[r], handle)
                if (version, got) != (ack.version, ack.etag):
                    stale.append((i, r, version, ack.version))
    finally:
        standby.resume_replay()  # also when a round failed while it was paused
        for c in clients:
            c.close()
    assert stale == []
    # The replica served part of the load, the pause sent reads to the primary.
    assert sum(reads(n, "replica") for n in nodes) > 0
    assert sum(fallbacks(n, "lagging") for n in nodes) > 0
    assert sum(fallbacks(n, "unavailable") for n in nodes) == 0


def test_db_status_says_how_far_each_replica_has_replayed_or_why_it_is_not_used(
        pair: Pair, urls: tuple[str, str]) -> None:
    primary, standby = pair
    other = primary.create_database()
    try:
        PostgresStore(other).close()
        store = PostgresStore(urls[0])
        store.apply(Write(Operation.REGISTER, Handle.parse("88.118.8/STATUS"),
                          (Value(1, "URL", "https://example.com/s"),),
                          Precondition(absent=True), "tester"), 1_700_000_000)
        last = store.last_sequence()
        store.close()
        standby.wait_replayed()
        dead = f"postgresql://u:pw-Secret-1@127.0.0.1:{free_port()}/idnode"
        result = CliRunner().invoke(cli_app, ["db", "status"], env={
            "IDNODE_DATABASE_URL": urls[0],
            "IDNODE_DATABASE_READ_URL": ",".join([urls[1], standby.url_of(other), dead]),
            "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert f"replica 1:      replayed sequence {last}, 0 behind the primary" in lines
        assert "replica 2:      serves another store" in result.output
        assert "replica 3:      the store is unavailable" in result.output
        assert "pw-Secret-1" not in result.output and "127.0.0.1" not in result.output
    finally:
        primary.drop_database(other)
