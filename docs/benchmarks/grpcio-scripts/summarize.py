import json, statistics as st
import sys
files = sys.argv[1:] or ["/tmp/grpcbench/results.json"]
ds = [json.load(open(f)) for f in files]
R = [r for d in ds for r in d["results"]]
d = ds[0]
print(f"n = {len(R)//12} runs per cell")
keys = []
for r in R:
    k = (r["ver"], r["model"], r["handler"])
    if k not in keys: keys.append(k)
MN = {"aio": "grpc.aio", "tp8": "ThreadPool N=8", "tp32": "ThreadPool N=32"}
print("| grpcio | model | handler | req/s median [min–max] | server CPU µs/req median [min–max] | eff. vs empty (CPU) | p50 low load µs (p99) |")
print("|---|---|---|---|---|---|---|")
base = {}
for k in keys:
    rs = [r for r in R if (r["ver"], r["model"], r["handler"]) == k]
    rps = [r["rps"] for r in rs]; cpu = [r["cpu_us"] for r in rs]
    p50 = st.median(r["p50_us"] for r in rs); p99 = st.median(r["p99_us"] for r in rs)
    if k[2] == "empty": base[k[:2]] = st.median(cpu); eff = "—"
    else: eff = f"{base[k[:2]] / st.median(cpu):.2f} (+{st.median(cpu) - base[k[:2]]:.0f} µs)"
    print(f"| {k[0]} | {MN[k[1]]} | {k[2]} | {st.median(rps):,.0f} [{min(rps):,.0f}–{max(rps):,.0f}] | "
          f"{st.median(cpu):.0f} [{min(cpu):.0f}–{max(cpu):.0f}] | {eff} | {p50:.0f} ({p99:.0f}) |")
print()
print("failed/errored non-zero runs:", [r for r in R if "0 failed, 0 errored, 0 timeout" not in r["h2"]])
print("server core util (min):", round(min(r["srv_core_util"] for r in R), 3))
for k, v in d["checks"].items(): print(f"- {k}: {v}")
