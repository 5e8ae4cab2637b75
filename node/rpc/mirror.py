"""The mirror's follower: a gRPC client of the primary's ``Sync.WatchChanges``.

One thread reads the stream into a bounded queue; the follower thread takes whatever is
queued (up to a page) and hands it, verified, to :class:`node.service.mirror.Mirror` as
one unit of work, so a mirror catching up commits pages rather than single changes and a
live mirror commits each change as it arrives. Whatever ends a connection (the primary
stopped or unreachable, a refused change, the store unavailable) ends it whole: the
follower waits a back-off (doubling from ``backoff_initial_seconds`` to
``backoff_max_seconds``, with jitter, reset by a change applied) and resumes from the
position its store holds.
"""

from __future__ import annotations

import base64
import logging
import queue
import random
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from idnode.v1 import record_pb2, resolver_pb2, resolver_pb2_grpc, sync_pb2, sync_pb2_grpc
from node.observe.logs import event
from node.service.mirror import ChangeCheck, ChangeRefused, Mirror
from registry.errors import IdnodeError
from registry.record import Change

log = logging.getLogger("idnode.mirror")

PAGE = 500
STATS_INTERVAL_SECONDS = 1.0
CALL_TIMEOUT_SECONDS = 5.0
_END = object()


@dataclass(frozen=True)
class MirrorSource:
    """Where and how to follow the primary: ``target`` (host:port of its gRPC door),
    credentials (an identity and secret, or a token; following the whole log needs the
    node admin), TLS (a CA file turns it on; a client certificate pair for mutual TLS),
    and optionally one prefix to follow instead of the whole log."""

    target: str
    identity: str = ""
    secret: str = ""
    token: str = ""
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    prefix: str = ""
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 10.0

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.token:
            return (("authorization", f"Bearer {self.token}"),)
        if self.identity:
            user = urllib.parse.quote(self.identity, safe="")
            basic = base64.b64encode(f"{user}:{self.secret}".encode()).decode()
            return (("authorization", f"Basic {basic}"),)
        return ()

    def channel(self) -> grpc.Channel:
        if not self.ca_file:
            return grpc.insecure_channel(self.target)
        key = Path(self.client_key_file).read_bytes() if self.client_key_file else None
        cert = Path(self.client_cert_file).read_bytes() if self.client_cert_file else None
        credentials = grpc.ssl_channel_credentials(Path(self.ca_file).read_bytes(), key, cert)
        return grpc.secure_channel(self.target, credentials)


class Follower:
    """Keeps ``mirror`` following ``source`` until :meth:`stop`."""

    def __init__(self, source: MirrorSource, mirror: Mirror) -> None:
        self.source = source
        self.mirror = mirror
        self.metrics = mirror.metrics
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._call: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mirror-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = self.source.backoff_initial_seconds
        first = True
        while not self._stopping.is_set():
            if not first:
                self.metrics.mirror_reconnects.inc()
            first = False
            applied = 0
            try:
                applied = self._follow()
            except ChangeRefused as exc:
                self.mirror.refused(exc)
            except grpc.RpcError as exc:
                if not self._stopping.is_set():
                    code = exc.code() if isinstance(exc, grpc.Call) else None
                    event(log, "mirror lost its primary", level=logging.WARNING,
                          primary=self.source.target, code=code.name if code else "",
                          detail=exc.details() if isinstance(exc, grpc.Call) else "")
            except IdnodeError as exc:  # the mirror's own store could not apply
                event(log, "mirror could not apply changes", level=logging.ERROR,
                      reason=exc.message)
            except OSError as exc:  # TLS files unreadable
                event(log, "mirror cannot connect", level=logging.ERROR, reason=str(exc))
            except Exception:  # a bug must not end following for good: log, back off, retry
                log.exception("mirror follower failed")
            finally:
                self.metrics.mirror_connected.set(0)
            if applied:
                delay = self.source.backoff_initial_seconds
            wait = delay * (0.5 + random.random())
            delay = min(delay * 2, self.source.backoff_max_seconds)
            self._stopping.wait(wait)

    def _follow(self) -> int:
        """One connection: stream, verify, apply until it ends; the changes applied."""
        metadata = self.source.metadata()
        with self.source.channel() as channel:
            resolver = resolver_pb2_grpc.ResolverStub(channel)
            sync = sync_pb2_grpc.SyncStub(channel)

            def fetch_keys() -> Sequence[record_pb2.SigningKey]:
                answer: resolver_pb2.GetSigningKeysResponse = resolver.GetSigningKeys(
                    resolver_pb2.GetSigningKeysRequest(), timeout=CALL_TIMEOUT_SECONDS)
                return list(answer.keys)

            check = ChangeCheck(fetch_keys)
            position = self.mirror.position
            call = sync.WatchChanges(sync_pb2.WatchChangesRequest(
                sequence=position.sequence, prefix=self.source.prefix), metadata=metadata)
            with self._lock:
                if self._stopping.is_set():
                    call.cancel()
                self._call = call
            inbox: queue.Queue[Any] = queue.Queue(maxsize=4 * PAGE)
            done = threading.Event()
            reader = threading.Thread(target=_read, args=(call, inbox, done), daemon=True,
                                      name="mirror-reader")
            reader.start()
            try:
                return self._apply_loop(inbox, check, sync, position.store_id)
            finally:
                done.set()
                call.cancel()
                reader.join(timeout=5)
                with self._lock:
                    self._call = None

    def _apply_loop(self, inbox: queue.Queue[Any], check: ChangeCheck,
                    sync: sync_pb2_grpc.SyncStub, store_id: str) -> int:
        applied = 0
        stats_at = 0.0
        connected = False
        while not self._stopping.is_set():
            now = time.monotonic()
            if now - stats_at >= STATS_INTERVAL_SECONDS:
                stats_at = now
                stats = sync.GetStats(sync_pb2.GetStatsRequest(), timeout=CALL_TIMEOUT_SECONDS)
                self.mirror.heard(stats.sequence)
                if not connected:
                    connected = True
                    self.metrics.mirror_connected.set(1)
                    event(log, "mirror following", primary=self.source.target,
                          sequence=self.mirror.position.sequence)
            try:
                first = inbox.get(timeout=STATS_INTERVAL_SECONDS)
            except queue.Empty:
                continue
            batch: list[Change] = []
            item = first
            while True:
                if item is _END:
                    self._apply(batch, store_id)
                    return applied + len(batch)
                if isinstance(item, BaseException):
                    self._apply(batch, store_id)  # what arrived before the failure
                    raise item
                msg: sync_pb2.Change = item
                if not store_id:
                    store_id = msg.store_id  # an empty mirror takes the first change's log
                try:
                    batch.append(check.verify(msg, store_id))
                except ChangeRefused:
                    self._apply(batch, store_id)  # the valid changes before it
                    raise
                if len(batch) >= PAGE:
                    break
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
            self._apply(batch, store_id)
            applied += len(batch)
        return applied

    def _apply(self, batch: Sequence[Change], store_id: str) -> None:
        if batch:
            self.mirror.apply(batch, store_id)


def _read(call: Iterator[sync_pb2.WatchChangesResponse], inbox: queue.Queue[Any],
          done: threading.Event) -> None:
    """Stream → queue; ends with _END or the exception that ended the stream, or as soon
    as ``done`` is set (the follower gave up on this connection)."""

    def put(item: object) -> bool:
        while not done.is_set():
            try:
                inbox.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for response in call:
            if not put(response.change):
                return
        put(_END)
    except BaseException as exc:
        put(exc)


__all__ = ["Follower", "MirrorSource"]
