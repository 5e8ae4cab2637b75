"""What the Handle permission model costs, in process (no network): the rights check per
kind of principal, a write per kind of principal against the node admin's (which skips
every lookup), and the anonymous hot resolve with a full rights book against an empty
one (it must not read the book at all).

    python -m loadtest.rights_bench [--rounds 20000]

Numbers are medians of 7 repetitions on the memory store; ratios are against a baseline
measured in the same run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from loadtest.timing import per_op
from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.observe.metrics import Metrics
from node.security.signing import KeyRing
from node.service.coherence import Coherence
from node.service.resolve import Resolver
from node.service.views import ViewSigner
from registry.access.policy import Permission
from registry.access.principals import Principal, Scope
from registry.identifier import Handle, Prefix
from registry.registrar import Registrar
from registry.stores.memory import MemoryStore
from registry.values import AdminRef, Value, ValueList, ValueRef

NODE = Principal.of("300:88.118/ADMIN")
OWNER = Principal.of("300:88.118.8/ADMIN")
WRITER = Principal.of("300:88.118.8/WRITER")
NESTED = Principal.of("300:88.118.8/NESTED")
TOKEN = Principal(OWNER.id, OWNER.key, Scope.RESOLVE, None, "t")


def world() -> Registrar:
    reg = Registrar(MemoryStore(), Prefix.parse("88.118"))
    reg.allocate_prefix(NODE, "88.118.8", "owner-secret-0001")
    for name in ("WRITER", "NESTED"):
        reg.register(OWNER, f"88.118.8/{name}",
                     [Value(300, "HS_SECKEY", f"secret-of-{name.lower()}-1")])
    reg.register(OWNER, "88.118.8/TEAM", [Value(1, "HS_VLIST", ValueList(
        (ValueRef("88.118.8/NESTED", 300),)))])
    current = reg.store.get("0.na/88.118.8")
    assert current is not None
    reg.update(OWNER, "0.NA/88.118.8", [
        Value(101, "HS_ADMIN", AdminRef("88.118.8/WRITER", 300, "000001110011")),
        Value(200, "HS_VLIST", ValueList((ValueRef("88.118.8/ADMIN", 300),
                                          ValueRef("88.118.8/TEAM", 1))))],
        current.etag, merge=True)
    return reg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args(argv)
    reg = world()
    handle = Handle.parse("88.118.8/PN-1")
    policy = reg.policy
    print("rights check (policy.require add_handle on 88.118.8/PN-1, rights book warm):")
    base = per_op(lambda: policy.require(NODE, Permission.ADD_HANDLE, handle, doing="x"),
                  args.rounds)
    for name, who in (("node admin", NODE), ("prefix admin via group", OWNER),
                      ("writer via HS_ADMIN on 0.NA/P", WRITER),
                      ("member of a nested group", NESTED)):
        cost = per_op(lambda w=who: policy.require(w, Permission.ADD_HANDLE, handle,  # type: ignore[misc]
                                                   doing="x"), args.rounds)
        print(f"  {name:32} {cost * 1e9:8.0f} ns   ({cost / base:4.1f}x node admin)")
    cost = per_op(lambda: policy.permits(TOKEN, Permission.READ_VALUE, handle), args.rounds)
    print(f"  {'resolve token (read_value)':32} {cost * 1e9:8.0f} ns")

    print("register on the memory store (validation, rights, store, no network):")
    counter = iter(range(10**9))
    for _ in range(2000):  # warm up: the store's dicts, the value-type cache
        reg.register(NODE, f"88.118.8/W-{next(counter)}", [Value(1, "URL", "https://x")])
    writes = {}
    for name, who in (("node admin", NODE), ("prefix admin via group", OWNER),
                      ("writer via HS_ADMIN on 0.NA/P", WRITER),
                      ("member of a nested group", NESTED)):
        writes[name] = per_op(lambda w=who: reg.register(  # type: ignore[misc]
            w, f"88.118.8/B-{next(counter)}", [Value(1, "URL", "https://x")]),
            max(1, args.rounds // 10))
    for name, cost in writes.items():
        print(f"  {name:32} {cost * 1e6:8.1f} µs   "
              f"(+{(cost - writes['node admin']) * 1e6:5.1f} µs over the node admin)")

    print("anonymous hot resolve (L1 hit), rights book empty vs 10,000 views:")
    metrics = Metrics(enabled=False)
    coherence = Coherence(reg.store, L1Cache(1000, 10**7), Beacon(None), metrics)
    views = ViewSigner(KeyRing.ephemeral(), metrics, node_id="n",
                       signature_validity_seconds=86400, resign_before_expiry_seconds=3600,
                       l1_max_ttl_seconds=600)
    resolver = Resolver(reg.store, reg, coherence, views, metrics, negative_ttl_seconds=30)
    reg.register(NODE, "88.118.8/HOT", [Value(1, "URL", "https://hot")])
    resolver.public("88.118.8/HOT")
    reg.rights.clear()
    empty = per_op(lambda: resolver.public("88.118.8/HOT"), args.rounds * 5)
    for i in range(10_000):
        reg.rights.view(f"88.118.8/b-{i}")
    full = per_op(lambda: resolver.public("88.118.8/HOT"), args.rounds * 5)
    print(f"  empty book {empty * 1e9:6.0f} ns, full book {full * 1e9:6.0f} ns "
          f"(ratio {full / empty:4.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
