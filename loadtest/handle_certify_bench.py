"""What a certified Handle answer costs: ``python -m loadtest.handle_certify_bench``
(a measurement, not a test).

Drives the Handle door's answer path (``HandleService.answer``) in process, on a node
built with the memory store and never started (no socket traffic), for one cached
identifier of three values, and times with ``timeit`` (best of 7 repetitions, µs of
the thread's CPU per answer):

* remembered — the raw-bytes fast path (``HandleService.fast``: the same request
  answered before, its answer copied with this request's ids patched in);
* plain — the general path's hot case (an unfiltered resolution: a decode, a lookup and
  a 44-byte header);
* digest — the general path (the request digest flag): decoding plus SHA-256;
* certified 2.10 / 2.5 — the same answer with the CT flag: the header and body signed
  (RSA-2048, PKCS#1 v1.5, SHA-256) per request, with and without the envelope fields
  that 2.6+ clients sign;
* rsa sign — the bare signature over the same bytes, to show what the rest costs.

Certified answers are signed per request because 2.6+ clients sign and verify the
request id (docs/ARCHITECTURE.md, "Handle protocol"); the difference between
"certified" and "plain" is what that costs.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import timeit
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from node.app import build
from node.handle import codec as c
from node.security.signing import open_handle_key
from node.settings import load
from registry.access.principals import Principal
from registry.values import Value

ADMIN = Principal.of("300:88.118/ADMIN")
HANDLE = "88.118.8/BENCH-1"


def best_us(fn: Callable[[], object], number: int) -> float:
    """Best of 7 timeit repetitions, µs of this thread's CPU per call (CPU time, not wall
    time: the machine is shared, and a descheduled thread would count others' work)."""
    return min(timeit.repeat(fn, number=number, repeat=7,
                             timer=time.thread_time)) / number * 1e6


def request(*, op_flags: int = 0, minor: int = 10) -> tuple[c.Envelope, bytes]:
    body = c.encode_resolution_request(c.ResolutionRequest(HANDLE))
    msg = c.encode_header(c.Header(c.OC_RESOLUTION, 0, op_flags, 0, 0, 0, len(body))) + \
        body + c.NO_CREDENTIAL
    return c.Envelope(c.MAJOR_VERSION, minor, 0, 0, 0, 12345, 0, len(msg)), msg


def measure(number: int, *, metrics: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        node = build(load(env={}, overrides={
            "data_dir": tmp, "database_url": "memory:", "grpc_listen": "127.0.0.1:0",
            "http_listen": "", "handle_listen": "127.0.0.1:0",
            "metrics_enabled": metrics}))
        try:
            assert node.handle is not None
            node.registrar.register(ADMIN, HANDLE, [
                Value(1, "URL", "https://example.com/p/1"),
                Value(2, "productName", "bearing 6204-2RS"),
                Value(3, "serial", "SN-0001-0002-0003")])
            service = node.handle.service
            cases = {"plain": request(), "digest": request(op_flags=c.FLAG_REQUEST_DIGEST),
                     "certified 2.10": request(op_flags=c.FLAG_CERTIFIED),
                     "certified 2.5": request(op_flags=c.FLAG_CERTIFIED, minor=5)}
            out: dict[str, float] = {}
            gc.collect()
            env, msg = cases["plain"]
            datagram = c.encode_envelope(env) + msg
            service.answer(env, msg, "udp", "127.0.0.1:9")  # L1 has it
            service.answer(env, msg, "udp", "127.0.0.1:9")  # remembered from L1
            fast = service.fast(datagram)
            assert fast is not None and fast[24:28] == b"\0\0\0\x01"
            out["remembered"] = best_us(lambda: service.fast(datagram), number)
            out["remembered bytes"] = float(len(fast))
            for name, (env, msg) in cases.items():
                def answer(env: c.Envelope = env, msg: bytes = msg) -> object:
                    return service.answer(env, msg, "udp", "127.0.0.1:9")
                first = answer()
                assert isinstance(first, bytes) and first[24:28] == b"\0\0\0\x01", name
                out[name] = best_us(answer, number if "certified" not in name
                                    else max(50, number // 100))
                out[f"{name} bytes"] = float(len(first))
            key = open_handle_key(node.settings.signing_key_dir, create=False)
            signed = bytes(400)
            out["rsa sign"] = best_us(lambda: key.sign(signed, padding.PKCS1v15(),
                                                       hashes.SHA256()), max(50, number // 100))
            return out
        finally:
            node.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.handle_certify_bench")
    parser.add_argument("--number", type=int, default=20_000,
                        help="calls per repetition for the unsigned answers (a hundredth "
                             "of that, at least 50, for the signed ones)")
    parser.add_argument("--metrics-disabled", action="store_true",
                        help="build the node with metrics_enabled=false (what metrics cost)")
    args = parser.parse_args(argv)
    r = measure(args.number, metrics=not args.metrics_disabled)
    print(f"{'answer':<16} {'µs/answer':>10} {'bytes':>6}   (HandleService.answer, "
          "best of 7, thread CPU time)")
    for name in ("remembered", "plain", "digest", "certified 2.10", "certified 2.5"):
        print(f"{name:<16} {r[name]:10.1f} {r[name + ' bytes']:6.0f}")
    print(f"{'rsa sign':<16} {r['rsa sign']:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
