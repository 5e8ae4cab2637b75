"""``idnode serve --workers N``: a small supervisor that forks N node processes.

Forking happens before any gRPC object exists (grpcio does not survive a fork of a
process with live channels or servers). Every worker binds the same gRPC port with
SO_REUSEPORT, so the kernel spreads connections across them; each has its own L1 and
shares the store, the change beacon and Redis. Worker 0 also serves HTTP and the
metrics port, aggregating every worker's metrics (prometheus_client multiprocess mode).
The supervisor forwards SIGTERM/SIGINT, waits for the drain, and restarts a worker that
died unexpectedly (with a back-off so a crash loop does not spin).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from node.settings import Settings

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_RESTART_BACKOFF_SECONDS = (0.5, 1, 2, 5, 10)


def metrics_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "metrics-multiprocess"


def prepare_multiprocess_metrics(settings: Settings) -> None:
    """Must run before prometheus_client is imported: it picks its value class then."""
    folder = metrics_dir(settings)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[METRICS_DIR_ENV] = str(folder)


def _prepare_shared_state(settings: Settings) -> None:
    """Migrate the store, create the first key and the admin once, before forking, so
    workers never race to create them; check the TLS files once, so a bad one stops the
    start instead of a restart loop."""
    from node.app import StartupError, open_store
    from node.security.signing import KeyRing, SigningKeyError, open_handle_key
    from node.security.tls import TlsError, TlsFiles
    from registry.registrar import Registrar

    if settings.tls_cert_file:
        try:
            TlsFiles(settings.tls_cert_file, settings.tls_key_file,
                     client_ca_file=settings.tls_client_ca_file)
        except TlsError as exc:
            raise StartupError(str(exc)) from None

    store, beacon = open_store(settings)
    try:
        KeyRing.open(settings.signing_key_dir, algorithm=settings.signing_algorithm)
        if settings.handle_listen:
            try:
                open_handle_key(settings.signing_key_dir)
            except SigningKeyError as exc:
                raise StartupError(f"Handle protocol key: {exc}") from None
        if settings.admin_secret:
            Registrar(store, settings.prefix).ensure_node_admin(settings.admin_secret)
    finally:
        store.close()
        beacon.close()


def _worker_settings(settings: Settings, index: int) -> Settings:
    if index == 0:
        return settings
    return dataclasses.replace(settings, http_listen="", metrics_listen="")


def _spawn(settings: Settings, index: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from node.app import serve

        serve(_worker_settings(settings, index), reuse_port=True, worker=index,
              metrics_dir=str(metrics_dir(settings)))
    except BaseException as exc:  # a worker must never return into the supervisor's code
        print(f"idnode worker {index}: {exc}", file=sys.stderr)
        code = 1
    finally:
        os._exit(code)


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` node processes until SIGTERM/SIGINT; return an exit code."""
    prepare_multiprocess_metrics(settings)
    from node.app import StartupError

    try:
        _prepare_shared_state(settings)
    except StartupError as exc:
        print(f"idnode: {exc}", file=sys.stderr)
        return 2
    from prometheus_client import multiprocess

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers: dict[int, int] = {}
    crashes = [0] * settings.workers
    for index in range(settings.workers):
        workers[_spawn(settings, index)] = index
    status = 0
    while workers:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries os.wait
            continue
        if pid not in workers:
            continue
        index = workers.pop(pid)
        multiprocess.mark_process_dead(pid, str(metrics_dir(settings)))
        code = os.waitstatus_to_exitcode(raw)
        if stopping:
            status = status or (code if code > 0 else 0)
            continue
        delay = _RESTART_BACKOFF_SECONDS[min(crashes[index], len(_RESTART_BACKOFF_SECONDS) - 1)]
        crashes[index] += 1
        print(f"idnode: worker {index} (pid {pid}) exited with {code}; restarting in "
              f"{delay}s", file=sys.stderr)
        time.sleep(delay)
        if not stopping:
            workers[_spawn(settings, index)] = index
    return status
