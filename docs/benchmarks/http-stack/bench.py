"""Closed-loop HTTP/1.1 throughput + server CPU per request for each candidate stack.

python bench.py [--reps 3] [--duration 8] [--only uvicorn,granian] [--out results.json]
Server: `taskset -c 0`; h2load: `taskset -c 1 h2load --h1 -D 8 --warm-up-time=1 -c 32 -m 1 -t 1`.
CPU/request = delta(utime+stime) over the server process tree, sampled at the end of
h2load's warm-up and when h2load exits, divided by h2load's succeeded requests.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
TCK = os.sysconf("SC_CLK_TCK")
PORT = 8081

# (label, stack, handler, grpc co-hosted)
CONFIGS = [
    (s, h, g)
    for s in ("uvicorn", "starlette", "granian", "raw", "granian-proc")
    for h, g in (("empty", False), ("resolve", False), ("resolve", True))
    if not (s == "granian-proc" and g)
]


def tree_cpu_ticks(root):
    pids, frontier = {root}, [root]
    while frontier:  # children via /proc/PID/task/TID/children
        p = frontier.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    for c in f.read().split():
                        if int(c) not in pids:
                            pids.add(int(c)); frontier.append(int(c))
        except OSError:
            pass
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tot += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            pass
    return tot, pids


def start_server(stack, handler, grpc):
    if stack == "granian-proc":
        cmd = ["taskset", "-c", "0", os.path.join(os.path.dirname(PY), "granian"), "--interface", "asginl",
               "--http", "1", "--no-ws", "--workers", "1", "--runtime-threads", "1", "--host", "127.0.0.1",
               "--port", str(PORT), "--backlog", "2048", "--no-log", "--factory", "apps:app_from_env"]
        p = subprocess.Popen(cmd, cwd=HERE, env={**os.environ, "HANDLER": handler},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close(); break
            except OSError:
                time.sleep(0.1)
        return p
    cmd = ["taskset", "-c", "0", PY, os.path.join(HERE, "server.py"), "--stack", stack,
           "--handler", handler, "--port", str(PORT)] + (["--grpc"] if grpc else [])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("READY"), line
    return p


def stop_server(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()


def urls_file(handler):
    f = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    base = f"http://127.0.0.1:{PORT}"
    if handler == "empty":
        f.write(f"{base}/api/empty\n")
    else:  # 1000 URIs, 19 of every 20 hit the 20,000-entry dict, 1 in 20 is a 404
        for i in range(1000):
            n = (i * 7919) % 20000 if i % 20 else 100000 + i
            f.write(f"{base}/api/handles/88.118.8/PN-{n}\n")
    f.close()
    return f.name


def run_one(stack, handler, grpc, duration, warmup=1):
    p = start_server(stack, handler, grpc)
    time.sleep(0.5)
    uf = urls_file(handler)
    try:
        root = p.pid
        cmd = ["taskset", "-c", "1", "h2load", "--h1", "-D", str(duration), f"--warm-up-time={warmup}",
               "-c", "32", "-m", "1", "-t", "1", "-i", uf]
        t0 = time.time()
        h = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(warmup + 0.05)
        c0, pids = tree_cpu_ticks(root); w0 = time.time()
        out, _ = h.communicate(timeout=duration + warmup + 30)
        c1, _ = tree_cpu_ticks(root); w1 = time.time()
    finally:
        stop_server(p)
        os.unlink(uf)
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    s = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    st = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if not (m and s):
        print(out, file=sys.stderr)
        raise RuntimeError("h2load output not parsed")
    done, failed, errored = int(s.group(3)), int(s.group(5)), int(s.group(6))
    cpu_s = (c1 - c0) / TCK
    return {"stack": stack, "handler": handler, "grpc": grpc, "rps": float(m.group(3)),
            "requests": done, "failed": failed, "errored": errored,
            "status_2xx": int(st.group(1)), "status_4xx": int(st.group(3)), "status_5xx": int(st.group(4)),
            "cpu_us_per_req": cpu_s * 1e6 / max(done, 1), "server_core_util": cpu_s / (w1 - w0),
            "lat_mean": lat.group(3) if lat else None, "server_pids": len(pids)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--only", default="")
    ap.add_argument("--handlers", default="", help="e.g. resolve")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    a = ap.parse_args()
    cfgs = [c for c in CONFIGS if (not a.only or c[0] in a.only.split(","))
            and (not a.handlers or c[1] in a.handlers.split(","))]
    results = []
    for rep in range(a.reps):  # interleaved: every config once per pass
        for stack, handler, grpc in cfgs:
            r = run_one(stack, handler, grpc, a.duration)
            r["rep"] = rep
            results.append(r)
            print(json.dumps(r), flush=True)
            with open(a.out, "w") as f:
                json.dump(results, f, indent=1)
    summarize(results)


def summarize(results):
    rows = {}
    for r in results:
        rows.setdefault((r["stack"], r["handler"], r["grpc"]), []).append(r)
    print("| stack | handler | gRPC idle in process | req/s median [min–max] | CPU µs/req median [min–max] | server core util | n |")
    print("|---|---|---|---|---|---|---|")
    med = {}
    for (stack, handler, grpc), rs in rows.items():
        rps = [r["rps"] for r in rs]; cpu = [r["cpu_us_per_req"] for r in rs]
        med[(stack, handler, grpc)] = statistics.median(cpu)
        util = min(r["server_core_util"] for r in rs)
        print(f"| {stack} | {handler} | {'yes' if grpc else 'no'} | {statistics.median(rps):,.0f} "
              f"[{min(rps):,.0f}–{max(rps):,.0f}] | {statistics.median(cpu):.1f} [{min(cpu):.1f}–{max(cpu):.1f}] "
              f"| ≥{util:.2f} | {len(rs)} |")
    print("\nEfficiency (CPU): empty µs/req ÷ resolve µs/req, and co-host overhead")
    for stack in dict.fromkeys(k[0] for k in med):
        e, r, g = med.get((stack, "empty", False)), med.get((stack, "resolve", False)), med.get((stack, "resolve", True))
        line = f"- {stack}: resolve/empty efficiency {e / r:.2f} (+{r - e:.1f} µs)" if e and r else f"- {stack}"
        if g and r:
            line += f"; with idle gRPC {g:.1f} µs vs {r:.1f} µs ({(g - r) / r * 100:+.1f} %)"
        print(line)
    bad = [(r["stack"], r["handler"], r["rep"]) for r in results
           if r["errored"] or r["status_5xx"] or r["failed"] != r["status_4xx"]]
    print(f"\nruns with errors/5xx/non-404 failures (h2load counts the 5 % 404s as failed): {bad}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--summarize":
        with open(sys.argv[2]) as f:
            summarize(json.load(f))
    else:
        main()
