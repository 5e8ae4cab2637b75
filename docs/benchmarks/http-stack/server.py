"""One server process: HTTP stack in a background thread (own event loop), optional idle
grpcio thread-pool server in the same process, main thread just waits (as the node would).

python server.py --stack {uvicorn,starlette,granian,raw} --handler {empty,resolve} [--grpc] [--port 8081]
Prints 'READY <pid>' once the HTTP port accepts. SIGTERM/SIGINT stops everything.
"""
import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apps  # noqa: E402


def new_loop(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def start_http(a):
    """Returns stop() callable. Server runs in a daemon thread with its own loop."""
    loop = new_loop(a.loop)
    if a.stack in ("uvicorn", "starlette"):
        import uvicorn
        app = apps.bare_app(a.handler) if a.stack == "uvicorn" else apps.starlette_app(a.handler)
        cfg = uvicorn.Config(app, host="127.0.0.1", port=a.port, http="httptools", loop="none",
                             lifespan="off", access_log=False, log_level="warning",
                             limit_concurrency=a.limit, timeout_keep_alive=a.keepalive,
                             backlog=2048)
        srv = uvicorn.Server(cfg)
        coro = srv.serve()

        def stop():
            srv.should_exit = True
    elif a.stack == "granian":
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
        from granian.server.embed import Server
        srv = Server(apps.bare_app(a.handler), address="127.0.0.1", port=a.port,
                     interface=Interfaces.ASGINL, http=HTTPModes.http1, websockets=False,
                     runtime_threads=1, backlog=2048, log_enabled=False,
                     http1_settings=HTTP1Settings(header_read_timeout=int(a.keepalive * 1000)))
        coro = srv.serve()

        def stop():
            loop.call_soon_threadsafe(srv.stop)
    elif a.stack == "raw":
        proto = apps.raw_protocol_factory(a.handler, loop, a.keepalive)

        async def serve():
            s = await loop.create_server(proto, "127.0.0.1", a.port, backlog=2048)
            async with s:
                await s.serve_forever()
        coro = serve()

        def stop():
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
    else:
        raise SystemExit(f"unknown stack {a.stack}")

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(coro)
        except (asyncio.CancelledError, Exception) as e:  # noqa: BLE001
            if not isinstance(e, asyncio.CancelledError):
                print("http thread error:", repr(e), file=sys.stderr, flush=True)
    th = threading.Thread(target=run, name="http", daemon=True)
    th.start()
    return stop, th


def start_grpc(port):
    from concurrent import futures
    import grpc
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    echo = grpc.unary_unary_rpc_method_handler(lambda req, ctx: apps.EMPTY_BODY)  # raw bytes in/out
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo}),))
    srv.add_insecure_port(f"127.0.0.1:{port}")
    srv.start()
    return srv


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stack", required=True)
    p.add_argument("--handler", default="resolve")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--grpc", action="store_true", help="also start an (idle) grpcio thread-pool server")
    p.add_argument("--grpc-port", type=int, default=50061)
    p.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    p.add_argument("--keepalive", type=float, default=5.0)
    p.add_argument("--limit", type=int, default=2048, help="uvicorn limit_concurrency")
    a = p.parse_args()

    gsrv = start_grpc(a.grpc_port) if a.grpc else None
    stop, th = start_http(a)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", a.port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    print(f"READY {os.getpid()}", flush=True)
    while not done.wait(0.5):
        if not th.is_alive():
            break
    stop()
    th.join(5)
    if gsrv is not None:
        gsrv.stop(1).wait()


if __name__ == "__main__":
    main()
