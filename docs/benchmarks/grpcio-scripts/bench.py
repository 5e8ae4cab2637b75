"""Driver: runs all configs, 3 reps interleaved. Server on core 0, h2load on core 1.
Writes results.json. Run with system python3."""
import subprocess, time, os, re, json, socket, statistics, sys
B = "/tmp/grpcbench"
VENVS = {"1.75.1": f"{B}/v175/bin/python", "1.85.1": f"{B}/vnew/bin/python"}
MODELS = ["aio", "tp8", "tp32"]
HANDLERS = ["empty", "real"]
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
TICK = os.sysconf("SC_CLK_TCK")
H2 = ["-t", "1", "-d", f"{B}/body.bin", "-H", "content-type: application/grpc", "-H", "te: trailers"]
WARM, DUR = 2, 8

def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # fields 14,15 (utime, stime)

def wait_port(port, t=15):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return True
        except OSError: time.sleep(0.1)
    return False

def run(ver, model, handler, port, rep, checked):
    srv = subprocess.Popen(["taskset", "-c", "0", VENVS[ver], f"{B}/server.py", model, handler, str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_port(port), "server did not start"
        time.sleep(0.3)
        key = f"{ver}/{model}/{handler}"
        if key not in checked:
            out = subprocess.run([VENVS[ver], f"{B}/check_client.py", str(port)], capture_output=True, text=True, timeout=30)
            checked[key] = (out.stdout + out.stderr).strip()
        url = f"http://127.0.0.1:{port}/svc.Echo/Call"
        # throughput (closed loop, 128 streams)
        h = subprocess.Popen(["taskset", "-c", "1", "h2load", "-D", str(DUR), f"--warm-up-time={WARM}",
                              "-c", "4", "-m", "32"] + H2 + [url], stdout=subprocess.PIPE, text=True)
        time.sleep(WARM); c0 = cpu_ticks(srv.pid); t0 = time.time()
        out, _ = h.communicate(timeout=DUR + WARM + 30)
        c1 = cpu_ticks(srv.pid); t1 = time.time()
        m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
        ok = int(re.search(r"(\d+) succeeded", out).group(1))
        fail = re.search(r"requests: .*", out).group(0)
        rps = float(m.group(2))
        cpu_us = (c1 - c0) / TICK * 1e6 / ok
        util = (c1 - c0) / TICK / (t1 - t0)
        # low load latency: 1 conn, 1 stream
        lat = f"{B}/lat_{ver}_{model}_{handler}_{rep}.log"
        subprocess.run(["taskset", "-c", "1", "h2load", "-D", "4", "--warm-up-time=1", "-c", "1", "-m", "1",
                        f"--log-file={lat}"] + H2 + [url], capture_output=True, timeout=40)
        ls = sorted(int(l.split("\t")[2]) for l in open(lat) if l.strip())
        p50 = ls[len(ls) // 2]; p99 = ls[int(len(ls) * 0.99)]
        os.remove(lat)
        return dict(ver=ver, model=model, handler=handler, rep=rep, rps=rps, ok=ok, cpu_us=cpu_us,
                    srv_core_util=util, p50_us=p50, p99_us=p99, lowload_n=len(ls), h2=fail)
    finally:
        srv.terminate()
        try: srv.wait(5)
        except subprocess.TimeoutExpired: srv.kill(); srv.wait()

res, checked, port = [], {}, 50600
for rep in range(REPS):
    for ver in VENVS:
        for model in MODELS:
            for handler in HANDLERS:   # empty baseline immediately before the 'real' handler
                port += 1
                r = run(ver, model, handler, port, rep, checked)
                print(json.dumps(r), flush=True); res.append(r)
json.dump(dict(results=res, checks=checked), open(f"{B}/results.json", "w"), indent=1)
print(json.dumps(checked, indent=1))
