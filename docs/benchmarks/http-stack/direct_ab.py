"""A/B of the node's HTTP server answering an empty handler three ways, same run:

- ``asgi``:   node.web.server.HttpServer + a bare ASGI app (loadtest.http_echo asgi)
- ``direct``: the same server, the same answer from the app's ``direct`` hook
              (loadtest.http_echo direct: what the node does for its hot GET)
- ``raw``:    the floor: asyncio.Protocol + httptools, ~40 lines (apps.raw_protocol_factory)

Each server runs in its own process pinned to core 0 (taskset), h2load on core 1:
``h2load --h1 -n 150000 -c 32 -m 1`` after a 20,000-request warm-up; server CPU per
request = Δ(utime+stime) of all the server's threads (/proc) ÷ requests.

    PYTHONPATH=$PWD:$PWD/proto python docs/benchmarks/http-stack/direct_ab.py 3 raw direct asgi
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_seconds(pid: int) -> float:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_raw(port: int) -> None:
    """The raw floor in a thread with its own loop, as the node runs its HTTP server."""
    sys.path.insert(0, HERE)
    import apps  # noqa: PLC0415

    from node.web.server import bind  # noqa: PLC0415

    sock = bind(f"127.0.0.1:{port}")

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        factory = apps.raw_protocol_factory("empty", loop, 10.0)

        async def main() -> None:
            await loop.create_server(factory, sock=sock)
            await asyncio.Event().wait()

        loop.run_until_complete(main())

    threading.Thread(target=run, daemon=True).start()
    while True:
        time.sleep(3600)


def one(way: str, n: int = 150_000, connections: int = 32) -> tuple[float, float, str]:
    port = free_port()
    cmd = ([sys.executable, __file__, "serve-raw", str(port)] if way == "raw" else
           [sys.executable, "-m", "loadtest.http_echo", "127.0.0.1", str(port), "378", way])
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd])
    url = f"http://127.0.0.1:{port}/api/handles/88.118.8/LT-0000001"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        load = ["taskset", "-c", "1", "h2load", "--h1", "-c", str(connections), "-m", "1"]
        subprocess.run([*load, "-n", "20000", url], capture_output=True, check=True)
        before, t0 = cpu_seconds(proc.pid), time.monotonic()
        out = subprocess.run([*load, "-n", str(n), url], capture_output=True, text=True,
                             check=True).stdout
        seconds, after = time.monotonic() - t0, cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    codes = next((line for line in out.splitlines() if line.startswith("status codes")), "")
    return (after - before) / n * 1e6, n / seconds, codes


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve-raw"]:
        serve_raw(int(argv[1]))
    reps = int(argv[0]) if argv else 3
    for _ in range(reps):
        for way in argv[1:] or ["raw", "direct", "asgi"]:
            us, rps, codes = one(way)
            print(f"{way:7s} {us:6.1f} server CPU µs/req {rps:8,.0f} req/s  {codes}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
