"""h2load (Debian ``nghttp2-client``) as a low-cost C load generator.

One Python asyncio client costs about as much CPU per call as the Python server it
drives, so from one core it cannot saturate the server; h2load can. It only counts HTTP
statuses (a gRPC error is still HTTP 200), so the caller checks the gRPC status of a
sample request separately.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from loadtest.guard import join_target
from loadtest.wire import grpc_frame

_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_REQ_TIME = re.compile(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+"
                       r"([\d.]+)(us|ms|s)")


def available() -> str | None:
    """Path of h2load, or None."""
    return shutil.which("h2load")


def write_body(path: Path, message: bytes) -> Path:
    """The request as one gRPC frame, the way h2load's ``-d`` sends it."""
    path.write_bytes(grpc_frame(message))
    return path


def command(h2load: str, host: str, port: int, method_path: str, body: Path, *,
            duration: float, warmup: float, connections: int = 4, streams: int = 32
            ) -> list[str]:
    """The invocation from BENCHMARKING.md (one thread; -D excludes the warm-up)."""
    url = f"http://{join_target(host, port)}{method_path}"
    return [h2load, "-D", f"{round(duration * 1000)}ms",
            f"--warm-up-time={round(warmup * 1000)}ms",
            "-c", str(connections), "-m", str(streams), "-t", "1", "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers", url]


@dataclass(frozen=True)
class H2Result:
    """The parts of h2load's summary the report uses."""

    rps: float
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    non_2xx: int
    mean_ms: float

    @property
    def errors(self) -> int:
        """Anything h2load did not count as a 2xx success."""
        return self.failed + self.errored + self.timeout + self.non_2xx


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse(output: str) -> H2Result:
    """Parse h2load's text summary; ValueError if it is not there."""
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    if finished is None or requests is None:
        raise ValueError("h2load output has no summary:\n" + output[-800:])
    status = _STATUS.search(output)
    ok2, s3, s4, s5 = (int(x) for x in status.groups()) if status else (0, 0, 0, 0)
    req_time = _REQ_TIME.search(output)
    mean = _ms(req_time.group(5), req_time.group(6)) if req_time else float("nan")
    _total, _started, done, succeeded, failed, errored, timeout = (
        int(x) for x in requests.groups())
    return H2Result(rps=float(finished.group(3)), done=done, succeeded=succeeded,
                    failed=failed, errored=errored, timeout=timeout, status_2xx=ok2,
                    non_2xx=s3 + s4 + s5, mean_ms=mean)
