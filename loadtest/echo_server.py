"""The empty-handler baseline: what the node would cost if its handler did nothing.

Same grpcio, same process model as the node (``grpc.server`` on a 16-thread pool, a
generic handler taking and returning raw bytes), answering every call with a fixed
payload the size of a typical resolve response. It serves ``idnode.v1.Resolver/Resolve``
so the very same client and request bytes drive both servers; any difference is the
node's handler and its plumbing.

``python -m loadtest.echo_server HOST PORT [PAYLOAD_BYTES]``
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures
from types import FrameType

import grpc

from loadtest.guard import join_target

DEFAULT_PAYLOAD_BYTES = 300


def build(host: str, port: int, payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
          threads: int = 16) -> tuple[grpc.Server, int]:
    """The server and its bound port (loopback only)."""
    payload = b"x" * payload_bytes

    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        return payload

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(answer)
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("idnode.v1.Resolver", {"Resolve": handler}),
        grpc.method_handlers_generic_handler("cc.Echo", {"Call": handler}),
    ))
    bound = server.add_insecure_port(join_target(host, port))
    return server, bound


def main(argv: list[str]) -> int:
    """Serve until SIGTERM/SIGINT."""
    host, port = argv[0], int(argv[1])
    size = int(argv[2]) if len(argv) > 2 else DEFAULT_PAYLOAD_BYTES
    server, _bound = build(host, port, size)
    server.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(3600):
        pass
    server.stop(0).wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
