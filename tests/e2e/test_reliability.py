"""Reliability runs with several real node processes (marked slow; the test command runs
them): kill -9 of a node in the middle of bulk registration loses no acknowledged write,
on SQLite and on PostgreSQL; and 1,000 concurrent conflicting updates with etags through
three nodes on one PostgreSQL have exactly one winner per etag and lose no update; and a
PostgreSQL killed and restarted under write load is answered UNAVAILABLE meanwhile, then
recovered from by itself with nothing acknowledged lost.

Every loop is bounded by a count and stops on its own; the nodes are `idnode serve`
processes (loadtest.procs, the harness's own starter), PostgreSQL the tests' own server
(tests/pg_server.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2
from loadtest.procs import Pinning, ProcessGroup, Server, start_node
from registry.identifier import Handle
from registry.record import etag_of
from registry.store import Store
from registry.stores import open_store
from tests.conftest import ADMIN, ADMIN_SECRET, Client, whole_log
from tests.pg_server import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

NO_PIN = Pinning(False, reason="tests")
WRITERS = 4
ROWS_PER_STREAM = 50
MAX_STREAMS_PER_WRITER = 200  # bounds the run if the kill never comes
KILL_AFTER_ROWS = 1500




def _node(group: ProcessGroup, data: Path, database_url: str, name: str = "node") -> Server:
    env = {"IDNODE_LOG_LEVEL": "warning"}
    if database_url:
        env["IDNODE_DATABASE_URL"] = database_url
    return start_node(group, NO_PIN, "127.0.0.1", data, ADMIN_SECRET, env, name=name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_bulk_registration_loses_no_acknowledged_write(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    database_url = request.getfixturevalue("pg_url") if backend == "postgresql" else ""
    data = tmp_path / "data"
    data.mkdir()
    acknowledged: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()

    def writer(target: str, number: int) -> None:
        """BulkRegister streams until the node dies; the rows a finished stream reports
        stored are acknowledged (a cut stream acknowledges nothing)."""
        client = Client(target)
        try:
            for _ in range(MAX_STREAMS_PER_WRITER):
                rows = [f"88.118.8/KILL-{number}-{next(counter)}" for _ in range(ROWS_PER_STREAM)]
                requests = (registry_pb2.BulkRegisterRequest(handle=h, values=[
                    record_pb2.Value(index=1, type="URL", text=f"https://k/{h}")]) for h in rows)
                try:
                    answer = client.registry.BulkRegister(requests, metadata=ADMIN, timeout=20)
                except grpc.RpcError:
                    return  # the node is gone
                failed = {f.row for f in answer.failures}
                with lock:
                    acknowledged.extend(h for i, h in enumerate(rows) if i not in failed)
        finally:
            client.close()

    with ProcessGroup() as group:
        node = _node(group, data, database_url)
        threads = [threading.Thread(target=writer, args=(node.target, n)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        for _ in range(600):  # at most 60 s
            with lock:
                if len(acknowledged) >= KILL_AFTER_ROWS:
                    break
            if not any(t.is_alive() for t in threads):
                break
            threading.Event().wait(0.1)
        node.proc.kill()  # kill -9 while streams are open
        node.proc.wait(10)
        group.procs.remove(node.proc)
        for t in threads:
            t.join(30)
        assert len(acknowledged) >= KILL_AFTER_ROWS
        restarted = _node(group, data, database_url, name="restarted")
        client = Client(restarted.target)
        try:
            missing = []
            for i in range(0, len(acknowledged), 100):
                chunk = acknowledged[i:i + 100]
                answer = client.resolver.BatchResolve(
                    resolver_pb2.BatchResolveRequest(handles=chunk), timeout=20)
                missing += [r.handle for r in answer.results if r.WhichOneof("outcome")
                            != "record"]
        finally:
            client.close()
    assert missing == []


CONTENDED = 10
ROUNDS = 20
CONTENDERS = 5  # 10 identifiers × 20 rounds × 5 = 1,000 conflicting updates


def test_1000_conflicting_updates_through_three_nodes_have_one_winner_per_etag(
        tmp_path: Path, pg_url: str) -> None:
    handles = [f"88.118.8/RACE-{i}" for i in range(CONTENDED)]
    keys = [Handle.parse(h).key for h in handles]
    outcomes: dict[tuple[str, str], list[str]] = {}  # (handle, etag) -> codes
    winners: dict[str, list[str]] = {h: [] for h in handles}
    store = open_store(pg_url)
    with ProcessGroup() as group:
        nodes = [_node(group, tmp_path / f"n{i}", pg_url, name=f"node{i}") for i in range(3)]
        clients = [Client(n.target) for n in nodes]
        try:
            for h in handles:
                clients[0].register(h, ("URL", "https://race/0"))
            # One write per node first, so each has checked the admin's secret once and
            # the contended rounds measure etags, not secret hashing.
            for i, client in enumerate(clients):
                client.register(f"88.118.8/WARM-{i}", ("URL", "https://warm"))

            def attempt(client: Client, handle: str, etag: str, text: str) -> str:
                """One update as a well-behaved client makes it: RESOURCE_EXHAUSTED (the
                node's secret checks are busy; nothing was tried) is retried, bounded."""
                for _ in range(100):
                    try:
                        client.registry.Update(registry_pb2.UpdateRequest(
                            handle=handle, etag=etag, values=[record_pb2.Value(
                                index=1, type="URL", text=text)]), metadata=ADMIN, timeout=30)
                    except grpc.RpcError as exc:
                        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            threading.Event().wait(0.05)
                            continue
                        if exc.code() == grpc.StatusCode.ABORTED:
                            return "ABORTED"
                        return f"{exc.code().name}: {exc.details()}"
                    return "OK"
                return "RESOURCE_EXHAUSTED 100 times"

            with futures.ThreadPoolExecutor(CONTENDED * CONTENDERS) as pool:
                for round_ in range(ROUNDS):
                    # The current etag from the store itself (a node's cache may lag).
                    etags = {h: etag_of(_record_seq(store, k)) for h, k in zip(handles, keys,
                                                                               strict=True)}
                    jobs: dict[futures.Future[str], tuple[str, str, str]] = {}
                    for h in handles:
                        for c in range(CONTENDERS):
                            text = f"https://race/{round_}/{c}"
                            job = pool.submit(attempt, clients[(c + round_) % 3], h, etags[h],
                                              text)
                            jobs[job] = (h, etags[h], text)
                    for job, (h, etag, text) in jobs.items():
                        code = job.result()
                        outcomes.setdefault((h, etag), []).append(code)
                        if code == "OK":
                            winners[h].append(text)
        finally:
            for client in clients:
                client.close()
    try:
        assert sum(len(codes) for codes in outcomes.values()) == 1000
        for (h, etag), codes in outcomes.items():
            assert sorted(codes) == ["ABORTED"] * (CONTENDERS - 1) + ["OK"], (h, etag, codes)
        for h, k in zip(handles, keys, strict=True):
            record = store.get(k)
            assert record is not None
            assert record.version == 1 + ROUNDS  # one accepted update per round
            assert record.values[0].data == winners[h][-1]  # no lost update
        log = [c for c in whole_log(store) if c.key in set(keys)]
        for h, k in zip(handles, keys, strict=True):
            updates = [c.values[0].data for c in log if c.key == k][1:]
            assert updates == winners[h]  # every winner is in the log, in order
    finally:
        store.close()


def _record_seq(store: Store, key: str) -> int:
    record = store.get(key)
    assert record is not None
    return record.sequence


RESTART_WRITERS = 4
MAX_WRITES_PER_WRITER = 5000  # bounds the run if a phase never ends


def test_postgresql_restarted_under_load_fails_fast_recovers_and_loses_nothing(
        tmp_path: Path) -> None:
    """Writers keep registering through a node while its PostgreSQL is killed and started
    again: during the outage every refused call is UNAVAILABLE (an answer before the
    deadline, never DEADLINE_EXCEEDED or INTERNAL), a warm identifier still resolves from
    the cache, the pool recovers by itself, and every acknowledged write is there."""
    server = PostgresServer()  # this test's own: it is killed
    server.start()
    data = tmp_path / "data"
    data.mkdir()
    acknowledged: list[str] = []
    refused: list[grpc.StatusCode] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(target: str, number: int) -> None:
        client = Client(target)
        try:
            for i in range(MAX_WRITES_PER_WRITER):
                if stop.is_set():
                    return
                handle = f"88.118.8/PG-RESTART-{number}-{i}"
                try:
                    client.registry.Register(registry_pb2.RegisterRequest(
                        handle=handle, values=[record_pb2.Value(
                            index=1, type="URL", text="https://r")]), metadata=ADMIN, timeout=15)
                except grpc.RpcError as exc:
                    with lock:
                        refused.append(exc.code())
                    stop.wait(0.05)
                    continue
                with lock:
                    acknowledged.append(handle)
        finally:
            client.close()

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        for _ in range(600):  # at most 60 s
            with lock:
                if condition():
                    return
            threading.Event().wait(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        url = server.create_database()
        with ProcessGroup() as group:
            node = _node(group, data, url)
            client = Client(node.target)
            try:
                client.register("88.118.8/WARM", ("URL", "https://warm"))
                client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/WARM"),
                                        timeout=10)  # now in the node's cache
                threads = [threading.Thread(target=writer, args=(node.target, n))
                           for n in range(RESTART_WRITERS)]
                for t in threads:
                    t.start()
                wait_for(lambda: len(acknowledged) >= 200, "writes before the outage")
                server.kill()
                wait_for(lambda: len(refused) >= 20, "refusals during the outage")
                warm = client.resolver.Resolve(  # served from the cache meanwhile
                    resolver_pb2.ResolveRequest(handle="88.118.8/WARM"), timeout=10)
                server.start()
                with lock:
                    before_recovery = len(acknowledged)
                wait_for(lambda: len(acknowledged) >= before_recovery + 200,
                         "writes after the restart")
                stop.set()
                for t in threads:
                    t.join(30)
                missing = []
                for i in range(0, len(acknowledged), 100):
                    chunk = acknowledged[i:i + 100]
                    answer = client.resolver.BatchResolve(
                        resolver_pb2.BatchResolveRequest(handles=chunk), timeout=20)
                    missing += [r.handle for r in answer.results
                                if r.WhichOneof("outcome") != "record"]
            finally:
                client.close()
    finally:
        stop.set()
        server.destroy()
    assert warm.record.payload  # a signed record, not an error
    assert set(refused) == {grpc.StatusCode.UNAVAILABLE}
    assert missing == []
