"""A throw-away PostgreSQL server on a free loopback port, for the contract and
integration tests (they never use a server someone else started, unless told to).

``PostgresServer`` runs ``initdb`` and ``postgres`` from the PostgreSQL binaries
(``/usr/lib/postgresql/<major>/bin``, newest first, or ``pg_config --bindir``) in a
temporary directory, and can kill -9, stop and start it again on the same port, which is
what the failure tests need: the store's pool keeps the same URL throughout.

- PostgreSQL refuses to run as root, so when the tests run as root the data directory
  is handed to the ``postgres`` system user (``nobody`` when there is none) and the
  server runs as that user (``subprocess.Popen(user=...)``, no ``su``/``runuser`` in
  between, so a kill -9 reaches the postmaster itself).
- The server is tuned for tests with ``fsync=off``: a crash of the *machine* may lose
  data, a kill -9 of the server does not (the OS keeps the written pages). Commits stay
  synchronous (``synchronous_commit=off`` would acknowledge commits whose WAL is still in
  the server's memory, and a kill -9 would lose them: the restart test catches that).
- Password authentication is on for TCP (scram-sha-256), so tests can check that a
  wrong password fails without the password appearing in any message.
- ``IDNODE_TEST_DATABASE_URL`` (a URL whose user may ``CREATE DATABASE``) makes
  :func:`shared_server` use that server instead of starting one; tests that must kill or
  restart a server still start their own.

Binaries missing is a hard failure with a pointer to ``scripts/system-deps.sh``: the
PostgreSQL tests never skip.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import psycopg

from loadtest.procs import free_port

ENV_URL = "IDNODE_TEST_DATABASE_URL"
SUPERUSER = "idnode_test"
PASSWORD = "test-only-Pg-pass-1"  # a throw-away server on 127.0.0.1
_PR_SET_PDEATHSIG = 1


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``; RuntimeError when none does."""
    candidates: list[Path] = []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if p.name.isdigit()),
                          key=lambda p: int(p.name), reverse=True)
        candidates += [p / "bin" for p in versions]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 check=True, timeout=10).stdout.strip()
            candidates.append(Path(out))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise RuntimeError("PostgreSQL server binaries (initdb, postgres) are not installed: "
                       "run scripts/system-deps.sh (it installs the postgresql package), "
                       f"or set {ENV_URL} to a server the tests may create databases on")


def _server_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is neither a 'postgres' nor a 'nobody' "
                       "user to run the PostgreSQL server as")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (even by kill -9),
    so no server outlives the run."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, bound to 127.0.0.1.

    Without ``workdir`` a new directory is made under the system temp dir (and removed
    by :meth:`destroy`); a given ``workdir`` must be reachable by the server's user
    (pytest's ``tmp_path`` is not when the tests run as root)."""

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        self.bindir = find_bindir()
        self.user = _server_user()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="idnode-pg-"))
        self.datadir = self.workdir / "data"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._names = 0
        self._lock = threading.Lock()

    # --- URLs --------------------------------------------------------------------------

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return (f"postgresql://{SUPERUSER}:{urllib.parse.quote(password, safe='')}"
                f"@127.0.0.1:{self.port}/{database}")

    @property
    def admin_url(self) -> str:
        return self.url()

    # --- life cycle --------------------------------------------------------------------

    def _popen_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"preexec_fn": _die_with_parent, "cwd": self.workdir,
                                      "start_new_session": True}
        if self.user is not None:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[],
                          env={**os.environ, "HOME": str(self.workdir),
                               "USER": self.user.pw_name})
        return kwargs

    def init(self) -> None:
        """``initdb`` into ``workdir/data`` (once)."""
        if (self.datadir / "PG_VERSION").exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            os.chown(self.workdir, self.user.pw_uid, self.user.pw_gid)
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self.workdir.chmod(0o700)
        result = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, timeout=120, check=False, **self._popen_kwargs())  # type: ignore[call-overload]
        pwfile.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): "
                               f"{result.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout_seconds: float = 30.0) -> None:
        """Start (or start again on the same port) and wait until it accepts logins."""
        self.init()
        log = (self.workdir / "postgres.log").open("ab")
        if self.user is not None:
            os.chown(self.workdir / "postgres.log", self.user.pw_uid, self.user.pw_gid)
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            [str(self.bindir / "postgres"), "-D", str(self.datadir),
             "-c", f"port={self.port}", "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.workdir}",
             "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300",
             "-c", "shared_buffers=64MB", "-c", "logging_collector=off"],
            stdout=log, stderr=subprocess.STDOUT, **self._popen_kwargs())
        log.close()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.workdir / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {tail}")
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"postgres did not accept connections on port {self.port}")

    def kill(self) -> None:
        """kill -9 of the postmaster and of every backend, as in a crash of the server.

        Backends run in sessions of their own, so they are found by their working
        directory (the data directory: only this server's processes have it) and killed
        too; waits until none is left, so a restart finds the shared memory free."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(10)
        self.process = None
        deadline = time.monotonic() + 20
        while self._kill_backends():
            if time.monotonic() > deadline:
                raise RuntimeError("postgres backends survived kill -9")
            time.sleep(0.02)

    def _kill_backends(self) -> int:
        """SIGKILL every live process whose working directory is this data directory;
        how many there were (zombies have none and do not count)."""
        found = 0
        target = str(self.datadir.resolve())
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.readlink(proc / "cwd") != target:
                    continue
                os.kill(int(proc.name), signal.SIGKILL)
                found += 1
            except OSError:
                continue
        return found

    def stop(self) -> None:
        """A fast shutdown (SIGINT: active transactions are rolled back), waited for."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """kill -9 and start again on the same port, with the same data."""
        self.kill()
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove its directory (when we made it)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- databases ---------------------------------------------------------------------

    def create_database(self, icu_locale: str | None = None) -> str:
        """A new empty database (from template0); returns its URL. ``icu_locale`` gives
        it a linguistic default collation (e.g. ``en-US``) instead of the cluster's C."""
        return _create_database(self.admin_url, icu_locale)

    def drop_database(self, url: str) -> None:
        _drop_database(self.admin_url, url)


class StandbyServer(PostgresServer):
    """A hot standby streaming from ``primary`` (a :class:`PostgresServer`): its data
    directory is a ``pg_basebackup -R`` of the primary (which writes ``standby.signal``
    and the ``primary_conninfo`` to stream from), started on a port of its own. It takes
    read-only logins with the primary's user and password; :meth:`stop` and
    :meth:`start` (or :meth:`kill`) make it a dead replica and bring it back, and
    :meth:`pause_replay` keeps it streaming but applying nothing (a lagging replica)."""

    def __init__(self, primary: PostgresServer, workdir: Path | None = None,
                 port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.primary = primary

    def url_of(self, primary_url: str) -> str:
        """The URL of the same database on this standby."""
        parts = urllib.parse.urlsplit(primary_url)
        return urllib.parse.urlunsplit(parts._replace(
            netloc=parts.netloc.replace(f":{self.primary.port}", f":{self.port}")))

    def init(self) -> None:
        """``pg_basebackup -R`` of the primary into ``workdir/data`` (once)."""
        if (self.datadir / "PG_VERSION").exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(self.workdir, self.user.pw_uid, self.user.pw_gid)
        self.workdir.chmod(0o700)
        kwargs = self._popen_kwargs()
        env = dict(kwargs.pop("env", os.environ))  # type: ignore[call-overload]
        env["PGPASSWORD"] = PASSWORD
        result = subprocess.run(
            [str(self.bindir / "pg_basebackup"), "-D", str(self.datadir), "-R",
             "-X", "stream", "-c", "fast", "--no-sync", "-h", "127.0.0.1",
             "-p", str(self.primary.port), "-U", SUPERUSER],
            capture_output=True, timeout=120, check=False, env=env,
            **kwargs)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed ({result.returncode}): "
                               f"{result.stderr.decode(errors='replace')[-2000:]}")

    def wait_streaming(self, timeout_seconds: float = 30.0) -> None:
        """Until the standby's WAL receiver streams from the primary."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError), \
                    psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
                if row is not None and row[0] == "streaming":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the standby on port {self.port} does not stream")

    def wait_replayed(self, timeout_seconds: float = 30.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.admin_url, autocommit=True,
                             connect_timeout=5) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert target is not None
        deadline = time.monotonic() + timeout_seconds
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                   (str(target[0]),)).fetchone()
                if row is not None and row[0]:
                    return
                time.sleep(0.02)
        raise RuntimeError(f"the standby on port {self.port} did not catch up")

    def _replay(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def pause_replay(self) -> None:
        """Keep receiving WAL but apply none of it (``pg_wal_replay_pause``)."""
        self._replay("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._replay("SELECT pg_wal_replay_resume()")


def start_pair() -> tuple[PostgresServer, StandbyServer]:
    """A primary and a streaming hot standby of it, both started (destroy both after)."""
    primary = PostgresServer()
    primary.start()
    try:
        standby = StandbyServer(primary)
        standby.start()
        standby.wait_streaming()
    except BaseException:
        primary.destroy()
        raise
    return primary, standby


class ExternalServer:
    """A server named by ``IDNODE_TEST_DATABASE_URL``: databases only, no life cycle."""

    def __init__(self, url: str) -> None:
        self.admin_url = url

    def create_database(self, icu_locale: str | None = None) -> str:
        return _create_database(self.admin_url, icu_locale)

    def drop_database(self, url: str) -> None:
        _drop_database(self.admin_url, url)

    def destroy(self) -> None:
        """Nothing to stop: someone else runs it."""


def _create_database(admin_url: str, icu_locale: str | None = None) -> str:
    name = f"idnode_t_{uuid.uuid4().hex[:16]}"
    locale = ""
    if icu_locale is not None:
        assert icu_locale.replace("-", "").isalnum()
        locale = f" LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'{locale}')
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _drop_database(admin_url: str, url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    if not name.startswith("idnode_t_"):
        raise ValueError("only databases made by create_database are dropped")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_shared: PostgresServer | ExternalServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> PostgresServer | ExternalServer:
    """The one server of this test process: started on first use, stopped at exit (the
    session fixtures also stop it). ``IDNODE_TEST_DATABASE_URL`` names an existing one."""
    global _shared  # noqa: PLW0603 - one server per test session, by design
    with _shared_lock:
        if _shared is None:
            external = os.environ.get(ENV_URL, "")
            if external:
                _shared = ExternalServer(external)
            else:
                server = PostgresServer()
                server.start()
                atexit.register(server.destroy)
                _shared = server
        return _shared


def stop_shared_server() -> None:
    global _shared  # noqa: PLW0603
    with _shared_lock:
        if _shared is not None:
            _shared.destroy()
            _shared = None
