"""1,000 idle keep-alive connections against one stack (server on core 0, client on core 1).

python idle.py --stack uvicorn [--keepalive 8] [--limit 2048] [--no-grpc]
Half the connections send one request then sit idle ("used"), half connect and send
nothing ("fresh"). Reports server Threads, latency of new requests while they are held
(5 s), and how many of each kind the server has closed keep-alive + 3 s later.
"""
import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 8082
REQ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("Threads:")).split()[1])


def probe(n=20):
    lat, codes = [], []
    for _ in range(n):
        t = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
        c.request("GET", "/api/handles/88.118.8/PN-42")
        r = c.getresponse(); r.read(); c.close()
        lat.append((time.perf_counter() - t) * 1e3); codes.append(r.status)
    return {"p50_ms": round(statistics.median(lat), 2), "max_ms": round(max(lat), 2),
            "statuses": sorted(set(codes))}


async def open_conns(n_used, n_fresh):
    conns = []
    for i in range(n_used + n_fresh):
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        if i < n_used:
            w.write(REQ)
            await w.drain()
            await r.readuntil(b"\r\n\r\n")
            await r.read(2)  # "ok" body (or a 503 body start)
        conns.append((("used" if i < n_used else "fresh"), r, w))
    return conns


async def closed_counts(conns):
    async def is_closed(r):
        try:
            while True:
                if not await asyncio.wait_for(r.read(4096), 0.2):
                    return True
        except (asyncio.TimeoutError, ConnectionError):
            return False
    flags = await asyncio.gather(*(is_closed(r) for _, r, _ in conns))  # all at once, ~0.2 s
    out = {}
    for (kind, _, _), closed in zip(conns, flags):
        c, t = out.get(kind, (0, 0))
        out[kind] = (c + closed, t + 1)
    return {k: f"{c}/{t} closed" for k, (c, t) in out.items()}


async def amain(a, pid):
    res = {"threads_before": threads(pid)}
    t0 = time.monotonic()
    conns = await open_conns(500, 500)
    res["open_s"] = round(time.monotonic() - t0, 2)
    res["threads_with_1000_idle"] = threads(pid)
    res["probe_while_idle"] = await asyncio.to_thread(probe)
    await asyncio.sleep(max(0.0, 5 - (time.monotonic() - t0)))
    res["threads_after_5s_hold"] = threads(pid)
    res["closed_after_5s_hold"] = await closed_counts(conns)
    await asyncio.sleep(max(0.0, a.keepalive + 3 - (time.monotonic() - t0)))
    res[f"closed_at_keepalive+3s ({a.keepalive + 3:.0f}s)"] = await closed_counts(conns)
    for _, _, w in conns:
        w.close()
    res["threads_end"] = threads(pid)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", required=True)
    ap.add_argument("--keepalive", type=float, default=8)
    ap.add_argument("--limit", type=int, default=2048)
    ap.add_argument("--no-grpc", action="store_true")
    a = ap.parse_args()
    cmd = ["taskset", "-c", "0", sys.executable, os.path.join(HERE, "server.py"), "--stack", a.stack,
           "--port", str(PORT), "--keepalive", str(a.keepalive), "--limit", str(a.limit)]
    if not a.no_grpc:
        cmd += ["--grpc", "--grpc-port", "50062"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("READY")
        os.sched_setaffinity(0, {1})
        res = asyncio.run(amain(a, p.pid))
    finally:
        p.terminate()
        p.wait(10)
    print(json.dumps({"stack": a.stack, "keepalive_s": a.keepalive, "limit": a.limit, **res}))


if __name__ == "__main__":
    main()
