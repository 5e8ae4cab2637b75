"""The Handle protocol's sockets: UDP and TCP on one port, in threads of their own.

- **UDP**: one thread in a blocking ``recvfrom`` loop. It first asks
  :meth:`~node.handle.service.HandleService.fast` whether the datagram repeats a
  remembered plain resolution (an answer without decoding anything); otherwise it
  decodes, asks :class:`~node.handle.service.HandleService` and sends. Fragments of a
  request sent in several datagrams are put together first
  (:mod:`node.handle.reassembly`). A blocking socket loop costs a fraction of an event
  loop's per-datagram overhead, and UDP has no slow client that could hold it.
- **TCP**: an asyncio event loop in its own thread. Connections are protocol objects
  with a buffer, never threads, so a client that sends half a message and stalls costs
  a few hundred bytes until the idle sweep closes it; their number is bounded
  (``handle_max_connections``, beyond which new connections are closed at once), and
  so is each buffer (a request longer than the codec's bound is refused unread).
- **Workers**: answers the core can give from memory are made on the UDP thread or the
  event loop; the others (an L1 miss that reads the store or Redis) go to a small thread
  pool with a bounded backlog, and a full backlog is answered ``RC_SERVER_TOO_BUSY`` at
  once. A TCP connection has at most one request at a worker, so its answers keep the
  order of its requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from node.handle import codec as c
from node.handle.reassembly import Reassembler, Refused
from node.handle.service import HandleService
from node.observe.metrics import Metrics

log = logging.getLogger("idnode.handle")

# Unread bytes a TCP connection may hold before we stop reading from it: one whole
# request of the largest size accepted, plus the next envelope.
_TCP_BUFFER_LIMIT = c.ENVELOPE_BYTES + c.MAX_REQUEST_BYTES + c.ENVELOPE_BYTES
_UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) → (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def bind_pair(host: str, port: int, *,
              reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A listening TCP socket and a UDP socket on the same port (port 0: any free one).
    ``reuse_port``: several worker processes share the port (``--workers``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    attempts = 20 if port == 0 else 1
    for attempt in range(attempts):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.bind((host, port))
            tcp.listen(1024)
            actual = tcp.getsockname()[1]
            udp = socket.socket(family, socket.SOCK_DGRAM)
            if reuse_port:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError:
            tcp.close()
            raise
        try:
            udp.bind((host, actual))
        except OSError:
            udp.close()
            tcp.close()
            if attempt == attempts - 1:
                raise
            continue
        with contextlib.suppress(OSError):
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RECEIVE_BUFFER_BYTES)
        return tcp, udp
    raise OSError("no port free for both TCP and UDP")  # pragma: no cover


class HandleServer:
    """RFC 3652 over UDP and TCP for one :class:`HandleService`."""

    def __init__(self, service: HandleService, metrics: Metrics, *, listen: str,
                 max_connections: int, idle_timeout_seconds: float, threads: int,
                 max_pending: int, udp_max_answer_bytes: int,
                 reuse_port: bool = False) -> None:
        self.service = service
        self.metrics = metrics
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout_seconds
        self.udp_max_answer_bytes = udp_max_answer_bytes
        host, port = split_listen(listen)
        self.host = host
        self.tcp_sock, self.udp_sock = bind_pair(host, port, reuse_port=reuse_port)
        self.tcp_port = int(self.tcp_sock.getsockname()[1])
        self.udp_port = int(self.udp_sock.getsockname()[1])
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="handle-worker")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._stopping = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._connections: set[_Connection] = set()
        self._tcp_server: asyncio.AbstractServer | None = None
        self._udp_thread: threading.Thread | None = None
        self._tcp_thread: threading.Thread | None = None
        self._tcp_ready = threading.Event()
        self._gauge = metrics.handle_connections if metrics.enabled else None
        self._reassembler = Reassembler()  # used by the UDP thread only

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._udp_thread = threading.Thread(target=self._serve_udp, name="handle-udp",
                                            daemon=True)
        self._tcp_thread = threading.Thread(target=self._serve_tcp, name="handle-tcp",
                                            daemon=True)
        self._udp_thread.start()
        self._tcp_thread.start()
        self._tcp_ready.wait(10)

    def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop receiving, let requests at the workers finish within ``grace_seconds``,
        then close every connection."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake_udp()
        if self._tcp_thread is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close_listener(), self._loop)
        self._pool.shutdown(wait=grace_seconds > 0, cancel_futures=grace_seconds <= 0)
        if self._tcp_thread is not None and self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._tcp_thread.join(5)
        if self._udp_thread is not None:
            self._udp_thread.join(5)
        self.service.flush_metrics()
        self.udp_sock.close()
        self.tcp_sock.close()
        if not self._loop.is_running():
            self._loop.close()

    def _wake_udp(self) -> None:
        """An empty datagram to ourselves unblocks ``recvfrom`` so the loop sees the flag."""
        family = self.udp_sock.family
        address = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        if not ipaddress.ip_address(self.udp_sock.getsockname()[0]).is_unspecified:
            address = self.host
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
            s.sendto(b"", (address, self.udp_port))

    # --- workers ------------------------------------------------------------------------

    def _offload(self, env: c.Envelope, msg: bytes, transport: str, peer: str,
                 done: Callable[[bytes], None]) -> bool:
        """Answer on a worker and hand the answer to ``done`` (on the worker thread).
        False when every worker and backlog slot is taken."""
        if not self._slots.acquire(blocking=False):
            return False
        try:
            future = self._pool.submit(self.service.answer, env, msg, transport, peer)
        except RuntimeError:  # shutting down
            self._slots.release()
            return False

        def finished(f: Future[bytes | None]) -> None:
            self._slots.release()
            try:
                out = f.result()
            except BaseException:
                log.exception("handle worker failed")
                out = self.service.error(env, 0, 0, 0, b"", c.RC_ERROR, "internal error")
            done(out or b"")

        future.add_done_callback(finished)
        return True

    # --- UDP ----------------------------------------------------------------------------

    def _serve_udp(self) -> None:
        sock = self.udp_sock
        recvfrom, sendto = sock.recvfrom, sock.sendto
        fast = self.service.fast
        stopping = self._stopping.is_set
        send = self._send_udp

        while True:
            try:
                data, addr = recvfrom(65535)
            except OSError:
                if stopping():
                    return
                continue
            if stopping():
                return
            try:
                out = fast(data)  # a remembered plain resolution: no decoding at all
                if out is not None:
                    try:  # noqa: SIM105 (contextlib.suppress costs ~0.3 µs here)
                        sendto(out, addr)
                    except OSError:
                        pass  # the client's problem (unreachable, buffer full)
                    continue
                if len(data) < c.ENVELOPE_BYTES:
                    continue  # nothing to answer to: no request id
                env = c.decode_envelope(data)
                msg = data[c.ENVELOPE_BYTES:]
                if env.truncated or env.sequence or env.length > len(msg):
                    self._fragment(env, msg, addr)
                elif env.length != len(msg):
                    if len(msg) >= 8 and msg[4:8] == b"\0\0\0\0":
                        send(self.service.protocol_error(
                            env, "udp", f"a request of {env.length} bytes arrived in a "
                                        f"datagram of {len(msg)}"), addr)
                else:
                    self._udp_request(env, msg, addr)
            except Exception:  # one bad datagram must never stop the loop
                log.exception("handle UDP request failed")

    def _send_udp(self, out: bytes, addr: tuple[str, int]) -> None:
        """Send an answer, in fragments when it does not fit one datagram."""
        if not out:
            return
        try:
            if len(out) <= c.UDP_PACKET_BYTES:
                self.udp_sock.sendto(out, addr)
            else:
                for datagram in c.udp_fragments(out[:c.ENVELOPE_BYTES],
                                                out[c.ENVELOPE_BYTES:],
                                                max_bytes=self.udp_max_answer_bytes):
                    self.udp_sock.sendto(datagram, addr)
        except OSError:
            pass  # the client's problem (unreachable, buffer full); UDP may drop

    def _udp_request(self, env: c.Envelope, msg: bytes, addr: tuple[str, int]) -> None:
        """Answer one whole request message (one datagram's, or put together)."""
        peer = f"{addr[0]}:{addr[1]}"  # host:port, as TCP and the other doors
        out = self.service.answer(env, msg, "udp", peer, may_block=False)
        if out is None:
            if not self._offload(env, msg, "udp", peer, partial(self._send_udp, addr=addr)):
                self._send_udp(self.service.busy(env, msg, "udp"), addr)
        elif out:
            self._send_udp(out, addr)

    def _fragment(self, env: c.Envelope, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram of a request sent in several (see :mod:`node.handle.reassembly`):
        kept until the request is whole, then answered like any other."""
        if env.sequence == 0 and len(data) >= 8 and data[4:8] != b"\0\0\0\0":
            return  # the first fragment of an answer (or garbage shaped like one)
        got = self._reassembler.add(env, data, addr[0], addr[1])
        if got is None:
            return
        if isinstance(got, Refused):
            if got.code == c.RC_SERVER_TOO_BUSY:
                out = self.service.busy(env, data if env.sequence == 0 else b"", "udp")
            else:
                out = self.service.protocol_error(env, "udp", got.message)
            if len(out) <= c.ENVELOPE_BYTES + len(data):
                # Never more bytes than the refused datagram: a spoofed sender address
                # gains nothing by reflecting refusals off this node.
                self._send_udp(out, addr)
            return
        self._udp_request(*got, addr)

    # --- TCP ----------------------------------------------------------------------------

    def _serve_tcp(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._tcp_server = self._loop.run_until_complete(self._loop.create_server(
                lambda: _Connection(self), sock=self.tcp_sock, backlog=1024))
            self._loop.call_later(self._sweep_every(), self._sweep)
            self._tcp_ready.set()
            self._loop.run_forever()
        finally:
            self._tcp_ready.set()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    def _sweep_every(self) -> float:
        return min(1.0, max(0.05, self.idle_timeout / 4))

    def _sweep(self) -> None:
        """Close connections with no complete request for ``idle_timeout`` seconds
        (including those stalled halfway through a message)."""
        now = self._loop.time()
        for conn in list(self._connections):
            if not conn.busy and now - conn.last > self.idle_timeout:
                conn.close()
        self.service.flush_metrics()  # for --workers (see node.observe.batched)
        if not self._stopping.is_set():
            self._loop.call_later(self._sweep_every(), self._sweep)

    async def _close_listener(self) -> None:
        if self._tcp_server is not None:
            self._tcp_server.close()

    async def _close_all(self) -> None:
        for conn in list(self._connections):
            conn.close()
        await asyncio.sleep(0)

    def _opened(self, conn: _Connection) -> bool:
        if len(self._connections) >= self.max_connections or self._stopping.is_set():
            return False
        self._connections.add(conn)
        if self._gauge is not None:
            self._gauge.set(len(self._connections))
        return True

    def _closed(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if self._gauge is not None:
            self._gauge.set(len(self._connections))


class _Connection(asyncio.Protocol):
    """One TCP connection: a buffer, at most one request at a worker, flow control.

    Kept open after an answer whatever the keep-connection flag says (pooled industrial
    SDK connections reuse it without setting the flag) until ``idle_timeout`` passes
    without a complete request."""

    def __init__(self, server: HandleServer) -> None:
        self.server = server
        self.loop = server._loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.write_paused = False
        self.read_paused = False
        self.closing = False
        self.last = self.loop.time()
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.server._opened(self):
            self.closing = True
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server._closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.drain()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.buf += data
        self.drain()
        if len(self.buf) > _TCP_BUFFER_LIMIT and not self.read_paused and \
                self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def close(self) -> None:
        if self.closing or self.transport is None:
            return
        self.closing = True
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a client that does not read its answers
        else:
            self.transport.close()

    def drain(self) -> None:
        """Answer every whole request in the buffer, in order, until one needs a worker."""
        transport = self.transport
        service = self.server.service
        while not self.busy and not self.write_paused and not self.closing \
                and transport is not None and len(self.buf) >= c.ENVELOPE_BYTES:
            env = c.decode_envelope(bytes(self.buf[:c.ENVELOPE_BYTES]))
            try:
                c.check_envelope(env)
            except c.ProtocolError as exc:
                transport.write(service.protocol_error(env, "tcp", exc.message))
                self.close()
                return
            total = c.ENVELOPE_BYTES + env.length
            if len(self.buf) < total:
                break
            data = bytes(self.buf[:total])
            del self.buf[:total]
            self.last = self.loop.time()
            out = service.fast(data, "tcp")  # a remembered plain resolution
            if out is not None:
                transport.write(out)
                continue
            msg = data[c.ENVELOPE_BYTES:]
            out = service.answer(env, msg, "tcp", self.peer, may_block=False)
            if out is None:
                self.busy = True
                if not self.server._offload(env, msg, "tcp", self.peer, self._from_worker):
                    self.busy = False
                    transport.write(service.busy(env, msg, "tcp"))
            elif out:
                transport.write(out)
        if self.read_paused and len(self.buf) <= _TCP_BUFFER_LIMIT and transport is not None \
                and not self.closing:
            self.read_paused = False
            transport.resume_reading()

    def _from_worker(self, out: bytes) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
            self.loop.call_soon_threadsafe(self._answered, out)

    def _answered(self, out: bytes) -> None:
        self.busy = False
        self.last = self.loop.time()
        if self.closing or self.transport is None:
            return
        if out:
            self.transport.write(out)
        self.drain()


__all__ = ["HandleServer", "bind_pair", "split_listen"]
