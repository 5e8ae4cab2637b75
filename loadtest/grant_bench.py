"""What field-level data authorisation costs a resolve, in process (no network), every
answer cached (L1 hits): a record based on a template with two granted items, resolved
by an anonymous caller, a principal of another enterprise (no grants: it shares the
anonymous view), the prefix admin (read_value: the full view), a principal granted one
item directly and a member of a group granted the other. Then the anonymous hot path of
this tree against another tree's (``--baseline``, e.g. the main branch's checkout), each
in its own process, taken in turn.

    python -m loadtest.grant_bench [--rounds 20000] [--baseline /path/to/other/tree]

Numbers are medians of 7 repetitions taken in turn (A, B, A, B, ...) on the memory
store with metrics enabled, as the node runs; ratios are against the anonymous resolve
measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.timing import REPEATS, compare
from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.observe.metrics import Metrics
from node.security.signing import KeyRing
from node.service.coherence import Coherence
from node.service.resolve import Resolver
from node.service.views import ViewSigner
from registry.access.principals import Principal
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore
from registry.templates import parse_template, publish, put_draft
from registry.values import Value, ValueList, ValueRef

NODE = Principal.of("300:88.118/ADMIN")
OWNER = Principal.of("300:88.118.8/ADMIN")
PARTNER = Principal.of("300:88.118.8/PARTNER")
MEMBER = Principal.of("300:88.118.8/MEMBER")
OTHER = Principal.of("300:88.118.9/ADMIN")
HOT = "88.118.8/HOT"

# The anonymous hot path, written against APIs every tree since templates has, so that
# it runs unchanged in a baseline checkout: prints nanoseconds per resolve.
HOT_PATH = r'''
import gc, statistics, sys, time
from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.observe.metrics import Metrics
from node.security.signing import KeyRing
from node.service.coherence import Coherence
from node.service.resolve import Resolver
from node.service.views import ViewSigner
from registry.access.principals import Principal
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore
from registry.templates import parse_template, publish, put_draft
from registry.values import Value
rounds, repeats = int(sys.argv[1]), int(sys.argv[2])
node, owner = Principal.of("300:88.118/ADMIN"), Principal.of("300:88.118.8/ADMIN")
reg = Registrar(MemoryStore(), Prefix.parse("88.118"))
reg.allocate_prefix(node, "88.118.8", "owner-secret-0001")
draft = parse_template({"prefix": "88.118.8", "version": "1.0", "items": [
    {"name": "a", "idType": "productName", "idIndex": 2000},
    {"name": "b", "idType": "price", "idIndex": 2001, "grants": ["300:88.118.8/ADMIN"]}]})
reg.store.change_templates("88.118.8", lambda ex: put_draft(ex, draft, 1, node.id))
reg.store.change_templates("88.118.8", lambda ex: publish(ex, "1.0", 2, node.id))
reg.register(owner, "88.118.8/HOT", [Value(1, "URL", "https://hot"),
    Value(1001, "TEMPLATE", "1.0"), Value(2000, "productName", "Spindle"),
    Value(2001, "price", "12.50")])
metrics = Metrics()
coherence = Coherence(reg.store, L1Cache(1000, 10**7), Beacon(None), metrics)
views = ViewSigner(KeyRing.ephemeral(), metrics, node_id="n",
                   signature_validity_seconds=86400, resign_before_expiry_seconds=3600,
                   l1_max_ttl_seconds=600)
resolver = Resolver(reg.store, reg, coherence, views, metrics, negative_ttl_seconds=30)
public, resolve = resolver.public, resolver.resolve
public("88.118.8/HOT")
resolve("88.118.8/HOT", principal=owner)
gc.freeze()
gc.set_threshold(50_000, 50, 100)
samples, admin = [], []
for _ in range(repeats):
    started = time.perf_counter()
    for _ in range(rounds):
        public("88.118.8/HOT")
    samples.append((time.perf_counter() - started) / rounds)
    started = time.perf_counter()
    for _ in range(rounds // 5):
        resolve("88.118.8/HOT", principal=owner)
    admin.append((time.perf_counter() - started) / (rounds // 5))
print(statistics.median(samples) * 1e9, statistics.median(admin) * 1e9)
'''


def world() -> tuple[Registrar, Resolver]:
    reg = Registrar(MemoryStore(), Prefix.parse("88.118"))
    for prefix in ("88.118.8", "88.118.9"):
        reg.allocate_prefix(NODE, prefix, "owner-secret-0001")
    for name in ("PARTNER", "MEMBER"):
        reg.register(OWNER, f"88.118.8/{name}", [Value(300, "HS_SECKEY", "secret-of-it-01")])
    reg.register(OWNER, "88.118.8/PARTNERS", [Value(200, "HS_VLIST", ValueList(
        (ValueRef("88.118.8/MEMBER", 300),)))])
    draft = parse_template({"prefix": "88.118.8", "version": "1.0", "items": [
        {"name": "名称", "idType": "productName", "idIndex": 2000},
        {"name": "价格", "idType": "price", "idIndex": 2001,
         "grants": ["300:88.118.8/PARTNER rw"]},
        {"name": "供应商", "idType": "supplier", "idIndex": 2002,
         "grants": ["200:88.118.8/PARTNERS"]}]})
    reg.store.change_templates("88.118.8", lambda ex: put_draft(ex, draft, 1, NODE.id))
    reg.store.change_templates("88.118.8", lambda ex: publish(ex, "1.0", 2, NODE.id))
    reg.register(OWNER, HOT, [Value(1, "URL", "https://hot"), Value(1001, "TEMPLATE", "1.0"),
                              Value(2000, "productName", "Spindle"),
                              Value(2001, "price", "12.50"), Value(2002, "supplier", "ACME")])
    metrics = Metrics()
    coherence = Coherence(reg.store, L1Cache(1000, 10**7), Beacon(None), metrics)
    views = ViewSigner(KeyRing.ephemeral(), metrics, node_id="n",
                       signature_validity_seconds=86400, resign_before_expiry_seconds=3600,
                       l1_max_ttl_seconds=600)
    return reg, Resolver(reg.store, reg, coherence, views, metrics, negative_ttl_seconds=30)


def hot_path(tree: Path, rounds: int) -> tuple[float, float]:
    """Nanoseconds per L1-hit resolve with ``tree``'s code, in a fresh process: an
    anonymous one, and one by the prefix admin (read_value, its private view)."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'proto'}"}
    done = subprocess.run([sys.executable, "-c", HOT_PATH, str(rounds), str(REPEATS)],
                          cwd=tree, env=env, capture_output=True, text=True, check=True,
                          timeout=600)
    anonymous, admin = done.stdout.split()
    return float(anonymous), float(admin)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout whose anonymous hot path to compare")
    parser.add_argument("--runs", type=int, default=3,
                        help="processes per tree for the hot-path comparison")
    args = parser.parse_args(argv)
    reg, resolver = world()
    callers = {"anonymous (public)": None, "other enterprise": OTHER,
               "prefix admin (read_value)": OWNER, "granted principal": PARTNER,
               "group member (granted)": MEMBER}
    seen = {}
    for name, who in callers.items():
        entry = resolver.public(HOT) if who is None else resolver.resolve(HOT, principal=who)
        seen[name] = entry.payload
    assert seen["anonymous (public)"] is seen["other enterprise"]  # one shared view
    gc.freeze()  # as the node runs (node.app.serve)
    gc.set_threshold(50_000, 50, 100)  # node.app.GC_THRESHOLDS
    signs = resolver.metrics.sign_view
    before = signs._value.get()
    cost = compare({name: (lambda: resolver.public(HOT)) if who is None else
                    (lambda w=who: resolver.resolve(HOT, principal=w))  # type: ignore[misc]
                    for name, who in callers.items()}, args.rounds)
    assert signs._value.get() == before  # every answer came from the cache
    base = cost["anonymous (public)"]
    print("cached resolve of a templated record with two granted items (L1 hits):")
    for name, seconds in cost.items():
        print(f"  {name:28} {seconds * 1e9:7.0f} ns   ({seconds / base:4.1f}x anonymous)")
    audience = {"granted principal": PARTNER, "group member (granted)": MEMBER}
    handle = resolver.parse(HOT)
    for name, who in audience.items():
        alone = compare({"": lambda w=who: reg.audience(w, handle)},  # type: ignore[misc]
                        args.rounds)[""]
        print(f"  of which the audience ({name}): {alone * 1e9:5.0f} ns")
    if args.baseline is not None:
        here = Path(__file__).resolve().parent.parent
        samples: dict[str, list[tuple[float, float]]] = {"baseline": [], "this tree": []}
        for _ in range(args.runs):
            samples["baseline"].append(hot_path(args.baseline.resolve(), args.rounds * 5))
            samples["this tree"].append(hot_path(here, args.rounds * 5))
        print("L1 hits against the baseline tree, one process per run, in turn:")
        for column, label in ((0, "anonymous hot path (resolver.public)"),
                              (1, "prefix admin (read_value view)")):
            print(f" {label}:")
            old = statistics.median(s[column] for s in samples["baseline"])
            for name, found in samples.items():
                runs = [s[column] for s in found]
                ns = statistics.median(runs)
                print(f"  {name:10} {ns:6.0f} ns  (runs: {', '.join(f'{r:.0f}' for r in runs)}"
                      f"; {ns / old:4.2f}x baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
