"""The composition root: the only place that turns settings into running parts.

``build(settings)`` assembles store, key ring, caches, metrics, servicers and servers;
``serve(settings)`` runs them until SIGTERM/SIGINT and shuts down gracefully (stop
accepting, drain in-flight calls, close the store).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from node.cache.beacon import Beacon
from node.cache.l1 import L1Cache
from node.cache.l2 import RedisL2
from node.handle.certify import Certifier
from node.handle.server import HandleServer  # Handle protocol door
from node.handle.service import SITE_SERIAL, HandleService, site_record
from node.observe.logs import configure, event
from node.observe.metrics import Metrics
from node.rpc.mirror import Follower, MirrorSource
from node.rpc.server import SERVICES, Services, add_port, build_server
from node.security.auth import Authenticator
from node.security.certificates import CertificatePrincipals, Credentials
from node.security.ratelimit import RateLimits, build_limits
from node.security.signing import KeyRing, SigningKeyError, open_handle_key
from node.security.tls import TlsError, TlsFiles
from node.service.admission import Admission
from node.service.applications import Applications
from node.service.audit import Audit, RefusalRecorder
from node.service.coherence import Coherence
from node.service.core import Core
from node.service.follow import Follow
from node.service.mirror import Mirror
from node.service.reads import KnownListing, Reads
from node.service.resolve import Resolver
from node.service.templates import Templates
from node.service.tokens import Tokens
from node.service.views import ViewSigner
from node.service.writes import Writes
from node.settings import Settings, read_urls
from node.web.app import Endpoints, Routes, build_app
from node.web.handles import HandleApi
from node.web.openapi import OpenApi
from node.web.scan import ScanProxy
from node.web.server import BindError, HttpServer
from node.web.snms import SnmsApi
from registry import stores
from registry.access.principals import Principal
from registry.access.rights import prefix_handle
from registry.errors import IdnodeError
from registry.registrar import Registrar
from registry.store import ReplicaReader, SchemaStore, Store

log = logging.getLogger("idnode.node")


class StartupError(RuntimeError):
    """The node cannot start; the message says why (and which setting to fix)."""


@dataclass
class Node:
    settings: Settings
    store: Store
    keys: KeyRing
    registrar: Registrar
    resolver: Resolver
    core: Core
    services: Services
    metrics: Metrics
    beacon: Beacon
    server: grpc.Server
    health: health.HealthServicer
    grpc_port: int
    auth: Authenticator | None = None
    http: HttpServer | None = None
    metrics_http: HttpServer | None = None
    l2: RedisL2 | None = None
    handle: HandleServer | None = None  # the Handle protocol door (RFC 3652, TCP+UDP)
    tls: TlsFiles | None = None  # the certificate pair of the gRPC and HTTP doors
    follower: Follower | None = None  # `idnode mirror`: following the primary's changes
    reads: Reads | None = None  # where misses and listings read (read replicas)
    _stopped: bool = field(default=False, repr=False)
    _halt: threading.Event = field(default_factory=threading.Event, repr=False)
    _watchdog: threading.Thread | None = field(default=None, repr=False)

    @property
    def http_port(self) -> int:
        return self.http.port if self.http else 0

    @property
    def metrics_port(self) -> int:
        return self.metrics_http.port if self.metrics_http else 0

    # --- Handle protocol door: bound ports (0 when disabled) ---
    @property
    def handle_tcp_port(self) -> int:
        return self.handle.tcp_port if self.handle else 0

    @property
    def handle_udp_port(self) -> int:
        return self.handle.udp_port if self.handle else 0

    def ready(self) -> tuple[bool, str]:
        if self._stopped:
            return False, "draining"
        try:
            self.store.last_sequence()
        except Exception:  # the store is down: say so, do not crash the probe
            return False, "store unavailable"
        return True, "ready"

    def start(self) -> None:
        self.server.start()
        for part in (self.http, self.metrics_http):
            if part is not None:
                part.start()
        if self.handle is not None:  # Handle protocol door
            self.handle.start()
        if self.tls is not None:
            self.tls.start()
        if self.follower is not None:
            self.follower.start()
        self._refresh_gauges()
        self._set_health(True)
        self._watchdog = threading.Thread(target=self._watch_store, name="store-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _refresh_gauges(self) -> None:
        """Gauges that follow state rather than events: writes move the identifier and
        prefix counts at once (node.service.writes), and this corrects them for writes
        other processes made; the L1 size changes on every miss, so it is sampled."""
        counts = self.store.counts()
        self.metrics.identifiers.set(counts.identifiers)
        self.metrics.prefixes.set(counts.prefixes)
        last = self.store.last_sequence()
        self.metrics.changelog_sequence.set(last)
        if self.reads is not None:
            self.metrics.replica_lag.set(self.reads.max_lag(last))
        self.metrics.cache_entries.set(len(self.resolver.l1))

    def _set_health(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", *SERVICES):
            self.health.set(name, status)

    def _check_keys(self) -> None:
        """A rotated key signs new views from now on; cached views keep their (still
        published) signatures until they are rebuilt."""
        try:
            if self.keys.reload_if_changed():
                self.resolver.l1.clear()
                event(log, "signing key rotated", key_id=self.keys.active.key_id)
        except SigningKeyError as exc:
            event(log, "signing keys unreadable; keeping the current key",
                  level=logging.ERROR, reason=str(exc))

    def _watch_store(self) -> None:
        """Health follows the store: NOT_SERVING while it cannot be read, so load
        balancers route around this process; SERVING again once it recovers. The same
        loop picks up signing keys rotated by `idnode keys rotate`."""
        serving = True
        while not self._halt.wait(self.settings.store_check_interval_seconds):
            self._check_keys()
            ok, why = self.ready()
            if ok:
                with contextlib.suppress(IdnodeError):
                    self._refresh_gauges()
            if self._halt.is_set():
                return
            if ok != serving:
                serving = ok
                self._set_health(ok)
                event(log, "store recovered" if ok else "store unavailable",
                      level=logging.INFO if ok else logging.ERROR, reason=why)

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop accepting, let in-flight calls finish, then close everything."""
        if self._stopped:
            return
        self._stopped = True
        self._halt.set()
        if self.tls is not None:
            self.tls.stop()
        self.health.enter_graceful_shutdown()
        if self.follower is not None:
            self.follower.stop()
        self.services.stop_followers()
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        if self.handle is not None:  # Handle protocol door: stop receiving, drain workers
            self.handle.stop(grace)
        self.server.stop(grace).wait()
        for part in (self.http, self.metrics_http):
            if part is not None:
                part.stop()
        if self.auth is not None:
            self.auth.close()
        if self.l2 is not None:
            self.l2.close()
        if self.core.audit.recorder is not None:
            self.core.audit.recorder.close()  # refusals still queued, before the store goes
        if self.reads is not None:
            self.reads.close()
        self.store.close()
        self.beacon.close()


def open_database(settings: Settings, *, auto_migrate: bool = True) -> Store:
    """The store the settings name (``registry.stores.open_store``), migrated unless
    ``auto_migrate`` is false; StartupError (never the URL: it may carry a password)
    when it cannot be opened."""
    if settings.database_url == "memory:":
        return stores.open_store("memory:")
    if settings.database_url.startswith(("postgres://", "postgresql://")):
        try:
            return stores.open_store(settings.database_url,
                                     postgres_max_connections=settings.grpc_threads + 8,
                                     auto_migrate=auto_migrate)
        except IdnodeError as exc:
            raise StartupError(f"cannot open the PostgreSQL store: {exc.message}") from None
    path = Path(settings.sqlite_path).absolute()
    try:
        return stores.open_store(f"sqlite:///{path}",
                                 sqlite_synchronous=settings.sqlite_synchronous,
                                 sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                                 auto_migrate=auto_migrate)
    except IdnodeError as exc:
        raise StartupError(f"cannot open the store at {path}: {exc.message}") from None


def check_schema(store: Store) -> None:
    """StartupError when the store lacks migrations this build ships (only possible with
    ``database_auto_migrate = false``): the node must not run on a schema it was not
    built for, and migrating is then the operator's explicit step."""
    pending = store.pending_migrations() if isinstance(store, SchemaStore) else []
    if pending:
        versions = ", ".join(str(v) for v in pending)
        raise StartupError(
            f"the store's schema lacks migration{'s' if len(pending) > 1 else ''} "
            f"{versions} that this build ships, and database_auto_migrate is false: run "
            "`idnode db migrate` (same settings) first")


def open_store(settings: Settings) -> tuple[Store, Beacon]:
    """The store the settings name (:func:`open_database`; migrated at open unless
    ``database_auto_migrate`` is false, then refused while migrations are pending) and
    the host's change beacon beside its file (an in-memory store has no other process to
    tell).

    A PostgreSQL store gets an in-process beacon only: its nodes run on several hosts,
    where a file beside the database cannot exist, so invalidations reach the other
    processes through Redis pub/sub (``redis_url``); without Redis, another process's L1
    may serve an older answer until its entry expires. The pool holds a connection per
    gRPC thread plus a few for HTTP and background work."""
    store = open_database(settings, auto_migrate=settings.database_auto_migrate)
    try:
        if not settings.database_auto_migrate:
            check_schema(store)
    except BaseException:
        store.close()
        raise
    if settings.database_url == "memory:" or settings.database_url.startswith(
            ("postgres://", "postgresql://")):
        return store, Beacon(None)
    path = Path(settings.sqlite_path).absolute()
    try:
        beacon = Beacon(path.with_name(path.name + ".beacon"))
    except OSError as exc:
        store.close()
        raise StartupError(f"cannot open the change beacon beside {path}: "
                           f"{exc.strerror}") from None
    return store, beacon


def open_reads(settings: Settings, store: Store, metrics: Metrics) -> Reads:
    """Where resolve misses and listings read: ``store`` and the read replicas
    ``database_read_url`` names (none is connected yet: a replica that is down at start
    is probed in the background, node.service.reads)."""
    replicas: list[ReplicaReader] = []
    try:
        for n, url in enumerate(read_urls(settings), 1):
            try:
                replicas.append(stores.open_replica(
                    url, max_connections=settings.grpc_threads + 4,
                    statement_timeout_ms=settings.database_read_timeout_ms))
            except IdnodeError as exc:
                raise StartupError(f"database_read_url: replica {n}: {exc.message}") from None
        return Reads(store, replicas, metrics,
                     retry_after_seconds=settings.database_read_retry_after_ms / 1000)
    except BaseException:
        for replica in replicas:
            replica.close()
        raise


def assemble_core(settings: Settings, store: Store, beacon: Beacon, keys: KeyRing,
                  registrar: Registrar, metrics: Metrics, l1: L1Cache,
                  l2: RedisL2 | None, reads: Reads | None = None, *,
                  read_only: str = "") -> tuple[Core, Coherence, Authenticator]:
    """The application core every front door calls (node.service), from its parts.
    ``reads`` routes resolve misses and listings (read replicas; None: the store);
    ``read_only`` (a mirror) refuses every write with that message."""
    auth = Authenticator(registrar.credential, hash_threads=settings.auth_hash_threads,
                         queue=settings.auth_queue,
                         max_failures=settings.auth_max_failures,
                         failure_window_seconds=settings.auth_failure_window_seconds,
                         backoff_seconds=settings.auth_backoff_seconds,
                         tokens=store.get_token)
    coherence = Coherence(store, l1, beacon, metrics, l2, derived=(registrar.rights, auth))
    views = ViewSigner(keys, metrics, node_id=settings.node_id,
                       signature_validity_seconds=settings.signature_validity_seconds,
                       resign_before_expiry_seconds=settings.resign_before_expiry_seconds,
                       l1_max_ttl_seconds=settings.l1_max_ttl_seconds)
    resolver = Resolver(store, registrar, coherence, views, metrics,
                        negative_ttl_seconds=settings.negative_ttl_seconds, reads=reads)
    if reads is not None:
        # A listing includes every write this process knows of (read-your-writes).
        registrar.listing = KnownListing(reads, lambda: coherence.known_sequence)
    certificates = None
    if settings.tls_client_ca_file:
        certificates = CertificatePrincipals(store.get, _certified_principal)
    credentials = Credentials(auth, certificates)
    admission = Admission(credentials, rate_limits(settings, metrics),
                          remembered=auth.remembered, read_only=read_only)
    recorder = RefusalRecorder(store, metrics)
    writes = Writes(registrar, coherence, credentials, metrics, recorder, admission=admission)
    follow = Follow(store, registrar.policy, credentials, metrics, admission=admission)
    tokens = Tokens(store, registrar, credentials)
    tokens.writable = admission.writable
    core = Core(registrar, resolver, writes, follow, credentials, keys,
                tokens=tokens,
                max_batch_handles=settings.max_batch_handles, admission=admission,
                applications=Applications(registrar, writes, credentials, store),
                audit=Audit(store, registrar.policy, credentials, recorder),
                templates=Templates(registrar, writes, store))
    return core, coherence, auth


def _certified_principal(identity: str) -> Principal | None:
    """A certificate whose identity an HS_PUBKEY proved is that principal, with whatever
    rights HS_ADMIN values give it (none is fine: then it may resolve, as anyone may)."""
    return Principal.of(identity)


def rate_limits(settings: Settings, metrics: Metrics) -> RateLimits:
    """The rate limiters the settings ask for, counting refusals in ``metrics``."""
    return build_limits(
        resolve_per_address_per_second=settings.rate_resolve_per_address_per_second,
        resolve_per_principal_per_second=settings.rate_resolve_per_principal_per_second,
        resolve_burst=settings.rate_resolve_burst,
        write_per_address_per_second=settings.rate_write_per_address_per_second,
        write_per_principal_per_second=settings.rate_write_per_principal_per_second,
        write_burst=settings.rate_write_burst,
        auth_failures_per_address_per_minute=settings.rate_auth_failures_per_address_per_minute,
        auth_failures_burst=settings.rate_auth_failures_burst,
        max_keys=settings.rate_limit_max_keys,
        exempt_networks=settings.rate_limit_exempt_networks,
        refused=metrics.refused_by)


def web_routes(core: Core, settings: Settings) -> Routes:
    """The HTTP door's routes, in lookup order: the Handle REST API, the SNMS-compatible
    API and the OpenAPI document by path, then the scan-to-resolve proxy for every
    other ``/{handle}``."""
    routes = Routes()
    HandleApi(core).add_to(routes)
    SnmsApi(core).add_to(routes)
    OpenApi().add_to(routes)
    ScanProxy(core, node_id=settings.node_id, public_url=settings.public_url).add_to(routes)
    return routes


def build_http(node: Node, settings: Settings, exposed: CollectorRegistry) -> None:
    """The HTTP door (and the separate metrics port), bound, on ``node``."""
    metrics = node.metrics
    children: dict[tuple[str, int], Any] = {}  # bounded: routes × statuses

    def on_http(route: str, status: int) -> None:
        child = children.get((route, status))
        if child is None:
            child = children[(route, status)] = metrics.http_requests.labels(
                route, str(status))
        child.inc()

    def http_server(listen: str, endpoints: Endpoints, routes: Routes | None = None,
                    tls: TlsFiles | None = None) -> HttpServer:
        return HttpServer(listen, build_app(endpoints, routes),
                          max_connections=settings.http_max_connections,
                          idle_timeout_seconds=settings.http_idle_timeout_seconds,
                          tls=tls, client_auth=settings.http_tls_client_auth)

    try:
        if settings.http_listen:
            # TLS on the HTTP door; the metrics port stays plaintext (see README).
            node.http = http_server(settings.http_listen,
                                    Endpoints(exposed, node.keys, node.ready, on_http),
                                    web_routes(node.core, settings), node.tls)
        if settings.metrics_listen:
            node.metrics_http = http_server(settings.metrics_listen, Endpoints(
                exposed, None, node.ready, on_http, metrics_only=True))
    except BindError as exc:
        if node.http is not None:
            node.http.stop()
        raise StartupError(f"setting http_listen/metrics_listen: {exc.strerror}") from None


def ensure_admin(settings: Settings, registrar: Registrar, coherence: Coherence, *,
                 mirror: bool = False) -> None:
    """Create the node admin from ``admin_secret`` when it does not exist yet (on a
    mirror as a principals row: its records are the primary's)."""
    if mirror:
        if settings.admin_secret and registrar.ensure_mirror_admin(settings.admin_secret):
            event(log, "mirror node admin created", principal=f"300:{settings.node_prefix}/ADMIN")
        return
    if settings.admin_secret:
        created = registrar.ensure_node_admin(settings.admin_secret)
        if created:
            coherence.invalidate_many([(r.key, r.sequence) for r in created])
            event(log, "node admin created", principal=f"300:{settings.node_prefix}/ADMIN")


def build(settings: Settings, *, reuse_port: bool = False,
          metrics_dir: str | None = None, mirror: MirrorSource | None = None) -> Node:
    """Assemble a node from settings (it is not started).

    ``metrics_dir`` is set by the ``--workers`` supervisor: every worker then writes its
    metrics there and the HTTP side exposes the sum over all workers. ``mirror`` makes a
    read-only mirror of that primary (`idnode mirror`, node/service/mirror.py): writes are
    refused (ReadOnly: PERMISSION_DENIED, HTTP 403), the store follows the primary's
    change feed, and ``admin_secret`` makes a node admin of the mirror's own (a principals
    row, never a record: the records are the primary's).
    """
    tls = open_tls(settings)  # first: bad TLS files stop the start before anything opens
    with ExitStack() as cleanup:  # undone in reverse order if any step fails
        store, beacon = open_store(settings)
        cleanup.callback(beacon.close)
        cleanup.callback(store.close)
        try:
            keys = KeyRing.open(settings.signing_key_dir, algorithm=settings.signing_algorithm)
        except SigningKeyError as exc:
            raise StartupError(f"signing keys: {exc}") from None
        registrar = Registrar(store, settings.prefix)
        metrics = Metrics(enabled=settings.metrics_enabled)
        l1 = L1Cache(settings.l1_max_entries, settings.l1_max_bytes)
        # L2 is optional: without a Redis URL the node is L1-only (the embedded default).
        # Creating the client does no I/O; an unreachable Redis only degrades the cache.
        l2 = None
        if settings.redis_url:
            l2 = RedisL2(settings.redis_url, metrics, store_id=store.store_id(),
                         timeout_ms=settings.redis_timeout_ms,
                         retry_after_ms=settings.redis_retry_after_ms,
                         floor_ttl_seconds=settings.redis_floor_ttl_seconds,
                         invalidate_timeout_ms=settings.redis_invalidate_timeout_ms)
            cleanup.callback(l2.close)
        read_only = (f"this node is a read-only mirror of {mirror.target}: send writes to "
                     "the primary" if mirror is not None else "")
        reads = cleanup.enter_context(contextlib.closing(open_reads(settings, store, metrics)))
        core, coherence, auth = assemble_core(settings, store, beacon, keys, registrar, metrics,
                                              l1, l2, reads, read_only=read_only)
        ensure_admin(settings, registrar, coherence, mirror=mirror is not None)
        require_certificates = settings.grpc_tls_client_auth == "require"
        services = Services(core, metrics,
                            access_log_sample_ratio=settings.access_log_sample_ratio,
                            client_certificates=require_certificates)
        server, health_servicer = build_server(services, threads=settings.grpc_threads,
                                               reuse_port=reuse_port)
        cleanup.callback(server.stop, 0)
        try:
            port = add_port(server, settings.grpc_listen, tls,
                            require_client_certificate=require_certificates)
        except RuntimeError:
            port = 0
        if port == 0:
            raise StartupError(f"setting grpc_listen: cannot listen on {settings.grpc_listen}")
        node = Node(settings, store, keys, registrar, core.resolver, core, services, metrics,
                    beacon, server, health_servicer, port, auth=auth, l2=l2, tls=tls,
                    reads=reads)
        if tls is not None:
            cleanup.callback(tls.stop)
        if mirror is not None:
            node.follower = Follower(mirror, Mirror(store, coherence, metrics))
        # --- Handle protocol door (RFC 3652 on TCP and UDP) ---
        if settings.handle_listen:
            node.handle = build_handle(settings, core, metrics, reuse_port=reuse_port)
            cleanup.callback(node.handle.stop)
        # --- end of the Handle protocol door ---
        exposed = metrics.registry
        if metrics_dir is not None:
            exposed = CollectorRegistry()
            MultiProcessCollector(exposed, path=metrics_dir)

        build_http(node, settings, exposed)
        for part in (node.http, node.metrics_http):
            if part is not None:
                cleanup.callback(part.stop)
        if l2 is not None:
            # Listening starts before serving, so no invalidation published from now on
            # is missed by this process's L1.
            l2.start(coherence.remote_invalidate, coherence.resync, store)
        cleanup.pop_all()
    return node


def open_tls(settings: Settings) -> TlsFiles | None:
    """The certificate pair of the gRPC and HTTP doors (None: plaintext), read and
    checked now; an unusable file is a StartupError naming its setting."""
    if not settings.tls_cert_file:
        return None
    try:
        tls = TlsFiles(settings.tls_cert_file, settings.tls_key_file,
                       client_ca_file=settings.tls_client_ca_file,
                       reload_interval_seconds=settings.tls_reload_interval_seconds)
    except TlsError as exc:
        raise StartupError(str(exc)) from None
    event(log, "TLS on gRPC and HTTP", serial=hex(tls.current.serial),
          subject=tls.current.subject, not_after=tls.current.not_after,
          grpc_client_auth=settings.grpc_tls_client_auth,
          http_client_auth=settings.http_tls_client_auth)
    return tls


def build_handle(settings: Settings, core: Core, metrics: Metrics, *,
                 reuse_port: bool = False) -> HandleServer:
    """The Handle protocol door, bound (not started); its site record names the bound
    port and ``handle_site_address`` (else the listen host), and publishes the public
    half of the RSA key certified answers are signed with (``handle-rsa.pem`` in the key
    directory, made on first start)."""
    host = settings.handle_listen.rpartition(":")[0]
    try:
        key = open_handle_key(settings.signing_key_dir)
    except SigningKeyError as exc:
        raise StartupError(f"Handle protocol key: {exc}") from None
    except OSError as exc:
        raise StartupError(f"Handle protocol key: cannot write to {settings.signing_key_dir}: "
                           f"{exc.strerror or exc}") from None
    certifier = Certifier(key, str(prefix_handle(settings.prefix)))
    try:
        server = HandleServer(
            HandleService(core, metrics, site_record=b"", site_serial=SITE_SERIAL,
                          certifier=certifier), metrics,
            listen=settings.handle_listen, max_connections=settings.handle_max_connections,
            idle_timeout_seconds=settings.handle_idle_timeout_seconds,
            threads=settings.handle_threads,
            max_pending=settings.handle_max_pending_requests,
            udp_max_answer_bytes=settings.handle_udp_max_answer_bytes, reuse_port=reuse_port)
    except OSError as exc:
        raise StartupError(f"setting handle_listen: cannot listen on "
                           f"{settings.handle_listen}: {exc.strerror or exc}") from None
    server.service.set_site(site_record(settings.handle_site_address or host,
                                        server.tcp_port, description=settings.node_id,
                                        public_key=certifier.public_key))
    return server


# A collection every 50,000 net allocations instead of 700: requests and imports make
# short-lived objects, and scanning them (and the start-up heap) was a tenth of an import.
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    """Move the start-up heap out of the collector's sight and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(settings: Settings, *, reuse_port: bool = False, worker: int = 0,
          metrics_dir: str | None = None, mirror: MirrorSource | None = None) -> None:
    """Run one node process (a mirror of ``mirror``) until SIGTERM or SIGINT."""
    configure(settings.log_format, settings.log_level)
    node = build(settings, reuse_port=reuse_port, metrics_dir=metrics_dir, mirror=mirror)
    tune_gc()
    node.start()
    event(log, "serving", grpc=f"{settings.grpc_listen.rpartition(':')[0]}:{node.grpc_port}",
          http=node.http_port, metrics=node.metrics_port, node_prefix=settings.node_prefix,
          key_id=node.keys.active.key_id, tls=node.tls is not None, worker=worker,
          pid=os.getpid())
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(3600):
        pass
    event(log, "draining", grace_seconds=settings.shutdown_grace_seconds, worker=worker)
    node.stop()
    event(log, "stopped", worker=worker)
