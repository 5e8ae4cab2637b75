"""One load-generator process: a ``grpc.aio`` client driven by a JSON spec.

The orchestrator starts several of these (pinned to the client core), waits until each
prints ``READY`` (channel connected, requests prebuilt), then writes ``GO <t0>`` on their
stdin with a shared CLOCK_MONOTONIC start so every process warms up and measures in the
same window as the orchestrator's server-CPU readings. Results go to a JSON file.

closed loop: ``concurrency`` coroutines, each sends its next request when the previous
answer arrives (throughput at a fixed concurrency).
open loop: requests are due at ``t0 + i / rate`` whatever happens to earlier ones;
latency is measured from that intended send time, so a stalled server shows up as
queueing in the percentiles instead of silently slowing the client down (coordinated
omission).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from loadtest.guard import split_target
from loadtest.wire import Op, OpSource, Workload

MAX_SAMPLES = 400_000


@dataclass
class Tally:
    """What one process saw inside the measurement window."""

    window_start: float
    window_end: float
    completed_in_window: int = 0
    sent_in_window: int = 0
    errors: int = 0
    overflow: int = 0
    latencies_us: list[int] = field(default_factory=list)
    send_lag_us: list[int] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    response_bytes: dict[str, int] = field(default_factory=dict)
    last_done: float = 0.0
    max_gap: float = 0.0

    def record(self, op: Op, sent: float, started: float, done: float, code: str,
               detail: str, size: int) -> None:
        """``sent`` is the intended send time (open loop) or the actual one (closed)."""
        if self.window_start <= done < self.window_end:
            self.completed_in_window += 1
            # The longest stretch without any answer: a stalled server (or a machine
            # busy with something else) shows here even when the averages look fine.
            self.max_gap = max(self.max_gap, done - max(self.last_done, self.window_start))
        self.last_done = max(self.last_done, done)
        if not self.window_start <= sent < self.window_end:
            return
        self.sent_in_window += 1
        self.codes[f"{op.name}:{code}"] += 1
        if code in op.ok_codes:
            if len(self.latencies_us) < MAX_SAMPLES:
                self.latencies_us.append(round((done - sent) * 1e6))
                if started != sent:
                    self.send_lag_us.append(round((started - sent) * 1e6))
            if op.name not in self.response_bytes:
                self.response_bytes[op.name] = size
        else:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{op.name}: {code} {detail}"[:200])

    def to_dict(self) -> dict[str, Any]:
        """The JSON the orchestrator merges."""
        return {
            "window": [self.window_start, self.window_end],
            "completed_in_window": self.completed_in_window,
            "sent_in_window": self.sent_in_window,
            "errors": self.errors,
            "overflow": self.overflow,
            "latencies_us": self.latencies_us,
            "send_lag_us": self.send_lag_us,
            "codes": dict(self.codes),
            "error_samples": self.error_samples,
            "response_bytes": self.response_bytes,
            "max_gap_ms": 1000 * max(self.max_gap, self.window_end - max(
                self.last_done, self.window_start)),
        }


class Caller:
    """Raw-bytes calls on one channel (no protobuf work on the client's hot path)."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout
        self._stubs: dict[str, Any] = {}

    async def call(self, op: Op) -> tuple[str, str, int]:
        """(status name, detail, response size)."""
        stub = self._stubs.get(op.path)
        if stub is None:
            stub = self._stubs[op.path] = self.channel.unary_unary(op.path)
        try:
            response: bytes = await stub(op.body, metadata=op.metadata or None,
                                         timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details() or "", 0
        return "OK", "", len(response)


async def closed_loop(caller: Caller, source: OpSource, tally: Tally, concurrency: int,
                      end: float) -> None:
    """``concurrency`` workers back to back until ``end``."""
    async def worker() -> None:
        while True:
            started = time.monotonic()
            if started >= end:
                return
            op = source.next()
            code, detail, size = await caller.call(op)
            tally.record(op, started, started, time.monotonic(), code, detail, size)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_loop(caller: Caller, source: OpSource, tally: Tally, rate: float, t0: float,
                    end: float, max_inflight: int, drain_seconds: float) -> None:
    """Fixed arrival rate from ``t0``; latency from each request's intended time."""
    interval = 1.0 / rate
    inflight: set[asyncio.Task[None]] = set()

    async def one(op: Op, intended: float) -> None:
        started = time.monotonic()
        code, detail, size = await caller.call(op)
        tally.record(op, intended, started, time.monotonic(), code, detail, size)

    i = 0
    while True:
        intended = t0 + i * interval
        if intended >= end:
            break
        i += 1
        now = time.monotonic()
        if intended > now:
            await asyncio.sleep(intended - now)
        if len(inflight) >= max_inflight:
            # The server (or this client) fell this far behind: the request is lost
            # and counted as an error rather than quietly never sent.
            if tally.window_start <= intended < tally.window_end:
                tally.overflow += 1
                tally.errors += 1
                tally.sent_in_window += 1
            continue
        task = asyncio.create_task(one(source.next(), intended))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        _done, pending = await asyncio.wait(set(inflight), timeout=drain_seconds)
        for task in pending:
            task.cancel()
        tally.errors += len(pending)
        tally.sent_in_window += len(pending)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Connect, report READY, wait for GO, run, return the tally."""
    host, port = split_target(spec["target"])  # loopback only, checked again here
    source = OpSource(Workload.from_dict(spec["workload"]), spec["process_index"])
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=15)
        caller = Caller(channel, float(spec.get("call_timeout", 5.0)))
        print("READY", flush=True)
        line = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), timeout=60)
        verb, _, t0_text = line.strip().partition(" ")
        if verb != "GO":
            raise SystemExit(f"expected GO, got {line!r}")
        t0 = float(t0_text)
        window_start = t0 + float(spec["warmup"])
        window_end = window_start + float(spec["duration"])
        tally = Tally(window_start, window_end)
        delay = t0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if spec["mode"] == "open":
            await open_loop(caller, source, tally, float(spec["rate"]), t0, window_end,
                            int(spec.get("max_inflight", 2000)),
                            float(spec.get("drain_seconds", 3.0)))
        else:
            await closed_loop(caller, source, tally, int(spec["concurrency"]), window_end)
    return tally.to_dict()


def main(argv: list[str]) -> int:
    """``python -m loadtest.client SPEC.json``: results to spec["out"]."""
    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    result = asyncio.run(run(spec))
    with open(spec["out"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
