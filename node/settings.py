"""Node settings: defaults, then a TOML config file, then ``IDNODE_*`` environment
variables, then command-line flags. Parsed, validated and normalised once at start;
every error names the setting. Nothing else in the node reads the environment."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.cache import redis_url
from node.security.ratelimit import parse_networks
from registry.access.principals import check_new_secret
from registry.errors import IdnodeError
from registry.identifier import Prefix

ENV_PREFIX = "IDNODE_"
# IDNODE_* variables that are not settings but are read elsewhere (the CLI's client
# commands, the tests' real servers, the worker supervisor): they never warn.
OTHER_ENV_VARIABLES = frozenset({
    "IDNODE_CONFIG", "IDNODE_TARGET", "IDNODE_IDENTITY", "IDNODE_SECRET", "IDNODE_TOKEN",
    "IDNODE_TEST_REDIS_URL", "IDNODE_TEST_DATABASE_URL", "IDNODE_WORKER_INDEX",
})

log = logging.getLogger("idnode.settings")

# The largest rate or burst a rate-limit setting takes (0 for a rate disables it).
MAX_RATE = 1_000_000


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the node. Units are in the names."""

    data_dir: str = "./idnode-data"
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    metrics_listen: str = ""
    redis_url: str = ""
    database_url: str = ""
    database_auto_migrate: bool = True
    # Read replicas (PostgreSQL streaming standbys) for resolve misses and listings.
    database_read_url: str = field(default="", repr=False)
    database_read_retry_after_ms: int = 1000
    database_read_timeout_ms: int = 1000
    node_prefix: str = "88.118"
    node_id: str = ""
    workers: int = 1
    grpc_threads: int = 16
    sqlite_busy_timeout_ms: int = 5000
    public_url: str = ""
    http_max_connections: int = 1000
    http_idle_timeout_seconds: float = 10.0
    auth_hash_threads: int = 1
    auth_queue: int = 4
    auth_max_failures: int = 5
    auth_failure_window_seconds: float = 60.0
    auth_backoff_seconds: float = 10.0
    # Rate limits (node.security.ratelimit); a rate of 0 disables that limiter.
    rate_resolve_per_address_per_second: float = 0.0
    rate_resolve_per_principal_per_second: float = 0.0
    rate_resolve_burst: int = 500
    rate_write_per_address_per_second: float = 2000.0
    rate_write_per_principal_per_second: float = 1000.0
    rate_write_burst: int = 2000
    rate_auth_failures_per_address_per_minute: float = 60.0
    rate_auth_failures_burst: int = 30
    rate_limit_max_keys: int = 100_000
    rate_limit_exempt_networks: str = ""
    admin_secret: str = field(default="", repr=False)
    log_format: str = "auto"
    log_level: str = "info"
    access_log_sample_ratio: float = 0.0
    metrics_enabled: bool = True
    store_check_interval_seconds: float = 5.0
    signing_algorithm: str = "Ed25519"
    signature_validity_seconds: int = 86400
    resign_before_expiry_seconds: int = 3600
    key_dir: str = ""
    l1_max_entries: int = 100_000
    l1_max_bytes: int = 256 * 1024 * 1024
    l1_max_ttl_seconds: int = 600
    negative_ttl_seconds: int = 30
    redis_timeout_ms: int = 50
    redis_retry_after_ms: int = 1000
    redis_floor_ttl_seconds: int = 600
    redis_invalidate_timeout_ms: int = 1000
    max_batch_handles: int = 100
    shutdown_grace_seconds: float = 10.0
    sqlite_synchronous: str = "FULL"
    handle_listen: str = "127.0.0.1:2641"
    handle_site_address: str = ""
    handle_max_connections: int = 10_000
    handle_idle_timeout_seconds: float = 60.0
    handle_threads: int = 4
    handle_max_pending_requests: int = 256
    handle_udp_max_answer_bytes: int = 4096
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    grpc_tls_client_auth: str = "none"
    http_tls_client_auth: str = "none"
    tls_reload_interval_seconds: float = 5.0

    @property
    def sqlite_path(self) -> str:
        if self.database_url.startswith("sqlite:///"):
            return self.database_url[len("sqlite:///") - 1:]
        if self.database_url.startswith("sqlite:"):
            return self.database_url[len("sqlite:"):]
        return str(Path(self.data_dir) / "idnode.sqlite3")

    @property
    def signing_key_dir(self) -> str:
        return self.key_dir or str(Path(self.data_dir) / "keys")

    @property
    def prefix(self) -> Prefix:
        return Prefix.parse(self.node_prefix)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: object) -> Any:
    kind: type = type(_FIELDS[name].default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(str(raw).replace("_", ""))
        if kind is float:
            return float(str(raw))
        return str(raw)
    except ValueError:
        raise SettingsError(f"setting {name}: {raw!r} is not a valid {kind.__name__}") from None


def _check_listen(name: str, value: str, *, optional: bool = False) -> None:
    if not value and optional:
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"setting {name}: {value!r} is not host:port")


def _validate(s: Settings) -> Settings:
    _check_listen("grpc_listen", s.grpc_listen)
    _check_listen("http_listen", s.http_listen, optional=True)
    _check_listen("metrics_listen", s.metrics_listen, optional=True)
    _check_listen("handle_listen", s.handle_listen, optional=True)
    if s.handle_site_address:
        try:
            ipaddress.ip_address(s.handle_site_address.strip("[]"))
        except ValueError:
            raise SettingsError(f"setting handle_site_address: {s.handle_site_address!r} "
                                "is not an IP address") from None
    try:
        parse_networks(s.rate_limit_exempt_networks)
    except ValueError as exc:
        raise SettingsError(f"setting rate_limit_exempt_networks: {exc}") from None
    try:
        prefix = Prefix.parse(s.node_prefix)
    except IdnodeError as exc:
        raise SettingsError(f"setting node_prefix: {exc.message}") from None
    if s.database_url and not (s.database_url.startswith(
            ("sqlite:", "postgres://", "postgresql://")) or s.database_url == "memory:"):
        raise SettingsError("setting database_url: only sqlite:///ABSOLUTE/PATH, "
                            "sqlite:RELATIVE/PATH, postgresql://USER:PASSWORD@HOST:PORT/DB "
                            "(or postgres://) and memory: are supported, "
                            f"got {s.database_url.split(':')[0]}:")
    _validate_read_urls(s)
    if s.public_url and not (s.public_url.startswith(("http://", "https://"))
                             and "?" not in s.public_url and "#" not in s.public_url):
        raise SettingsError("setting public_url: expected http(s)://host[:port][/path], "
                            "without query or fragment")
    if s.redis_url:
        try:
            redis_url.parse(s.redis_url)
        except redis_url.RedisUrlError as exc:
            raise SettingsError(f"setting redis_url: {exc}") from None
    checks: list[tuple[str, bool]] = [
        ("workers", 1 <= s.workers <= 64),
        ("grpc_threads", 1 <= s.grpc_threads <= 1024),
        ("sqlite_busy_timeout_ms", 1 <= s.sqlite_busy_timeout_ms <= 600_000),
        ("http_max_connections", 1 <= s.http_max_connections <= 1_000_000),
        ("http_idle_timeout_seconds", 0.1 <= s.http_idle_timeout_seconds <= 3600),
        ("auth_hash_threads", 1 <= s.auth_hash_threads <= 64),
        # Logins waiting for a secret check must never hold every request thread.
        ("auth_queue", s.auth_queue >= 0 and s.auth_hash_threads + s.auth_queue
         < s.grpc_threads),
        ("auth_max_failures", 1 <= s.auth_max_failures <= 1000),
        ("auth_failure_window_seconds", 1 <= s.auth_failure_window_seconds <= 86400),
        ("auth_backoff_seconds", 0 <= s.auth_backoff_seconds <= 86400),
        ("rate_resolve_per_address_per_second",
         0 <= s.rate_resolve_per_address_per_second <= MAX_RATE),
        ("rate_resolve_per_principal_per_second",
         0 <= s.rate_resolve_per_principal_per_second <= MAX_RATE),
        ("rate_resolve_burst", 1 <= s.rate_resolve_burst <= MAX_RATE),
        ("rate_write_per_address_per_second",
         0 <= s.rate_write_per_address_per_second <= MAX_RATE),
        ("rate_write_per_principal_per_second",
         0 <= s.rate_write_per_principal_per_second <= MAX_RATE),
        ("rate_write_burst", 1 <= s.rate_write_burst <= MAX_RATE),
        ("rate_auth_failures_per_address_per_minute",
         0 <= s.rate_auth_failures_per_address_per_minute <= MAX_RATE),
        ("rate_auth_failures_burst", 1 <= s.rate_auth_failures_burst <= MAX_RATE),
        ("rate_limit_max_keys", 1000 <= s.rate_limit_max_keys <= 10_000_000),
        ("signature_validity_seconds", 60 <= s.signature_validity_seconds <= 366 * 86400),
        ("resign_before_expiry_seconds",
         0 <= s.resign_before_expiry_seconds < s.signature_validity_seconds),
        ("l1_max_entries", s.l1_max_entries >= 0),
        ("l1_max_bytes", s.l1_max_bytes >= 0),
        ("l1_max_ttl_seconds", s.l1_max_ttl_seconds >= 0),
        ("negative_ttl_seconds", 0 <= s.negative_ttl_seconds <= 60),
        ("redis_timeout_ms", 1 <= s.redis_timeout_ms <= 10000),
        ("redis_retry_after_ms", 10 <= s.redis_retry_after_ms <= 600000),
        ("redis_floor_ttl_seconds", 10 <= s.redis_floor_ttl_seconds <= 86400),
        ("redis_invalidate_timeout_ms", 1 <= s.redis_invalidate_timeout_ms <= 60000),
        ("database_read_retry_after_ms", 10 <= s.database_read_retry_after_ms <= 600000),
        ("database_read_timeout_ms", 10 <= s.database_read_timeout_ms <= 60000),
        ("max_batch_handles", 1 <= s.max_batch_handles <= 100),
        ("shutdown_grace_seconds", 0 <= s.shutdown_grace_seconds <= 600),
        ("access_log_sample_ratio", 0.0 <= s.access_log_sample_ratio <= 1.0),
        ("store_check_interval_seconds", 0.1 <= s.store_check_interval_seconds <= 3600),
        ("signing_algorithm", s.signing_algorithm in {"Ed25519", "ECDSA-P256-SHA256"}),
        ("log_format", s.log_format in {"auto", "json", "text"}),
        ("log_level", s.log_level in {"debug", "info", "warning", "error"}),
        ("sqlite_synchronous", s.sqlite_synchronous in {"FULL", "NORMAL", "EXTRA"}),
        ("handle_max_connections", 1 <= s.handle_max_connections <= 1_000_000),
        ("handle_idle_timeout_seconds", 0.1 <= s.handle_idle_timeout_seconds <= 3600),
        ("handle_threads", 1 <= s.handle_threads <= 256),
        ("handle_max_pending_requests", 1 <= s.handle_max_pending_requests <= 100_000),
        ("handle_udp_max_answer_bytes", 512 <= s.handle_udp_max_answer_bytes <= 65_536),
        ("tls_reload_interval_seconds", 0.1 <= s.tls_reload_interval_seconds <= 3600),
    ]
    for name, ok in checks:
        if not ok:
            raise SettingsError(f"setting {name}: {getattr(s, name)!r} is out of range")
    _validate_tls(s)
    if s.admin_secret:
        try:
            check_new_secret(s.admin_secret)
        except IdnodeError as exc:
            raise SettingsError(f"setting admin_secret: {exc.message}") from None
    node_id = s.node_id or f"idnode-{prefix.text}"
    return dataclasses.replace(s, node_prefix=prefix.text, node_id=node_id)


def read_urls(s: Settings) -> list[str]:
    """The replica URLs of ``database_read_url`` (comma-separated), in order."""
    return [u.strip() for u in s.database_read_url.split(",") if u.strip()]


def _validate_read_urls(s: Settings) -> None:
    """Replicas are copies of a PostgreSQL primary (the messages never echo a URL: it
    may carry a password)."""
    urls = read_urls(s)
    if not urls:
        return
    if not s.database_url.startswith(("postgres://", "postgresql://")):
        raise SettingsError("setting database_read_url: read replicas need a PostgreSQL "
                            "database_url (the primary they are copies of)")
    for n, url in enumerate(urls, 1):
        if not url.startswith(("postgres://", "postgresql://")):
            raise SettingsError(f"setting database_read_url: URL {n} is not "
                                "postgresql://USER:PASSWORD@HOST:PORT/DB (or postgres://)")


def _validate_tls(s: Settings) -> None:
    """The TLS settings agree with each other (the files themselves are read and checked
    when the node is built: node.security.tls)."""
    if s.tls_cert_file and not s.tls_key_file:
        raise SettingsError("setting tls_key_file: required when tls_cert_file is set")
    if s.tls_key_file and not s.tls_cert_file:
        raise SettingsError("setting tls_cert_file: required when tls_key_file is set")
    if s.grpc_tls_client_auth not in {"none", "require"}:
        # grpcio's server credentials either do not ask for a client certificate or
        # require one: there is no "optional" on the gRPC door.
        raise SettingsError(f"setting grpc_tls_client_auth: {s.grpc_tls_client_auth!r} is "
                            "not none or require")
    if s.http_tls_client_auth not in {"none", "optional", "require"}:
        raise SettingsError(f"setting http_tls_client_auth: {s.http_tls_client_auth!r} is "
                            "not none, optional or require")
    for name in ("grpc_tls_client_auth", "http_tls_client_auth"):
        if getattr(s, name) != "none" and not s.tls_client_ca_file:
            raise SettingsError(f"setting {name}: {getattr(s, name)} needs "
                                "tls_client_ca_file (the CAs client certificates chain to)")
    if s.tls_client_ca_file:
        if not s.tls_cert_file:
            raise SettingsError("setting tls_client_ca_file: needs tls_cert_file and "
                                "tls_key_file (client certificates need TLS)")
        if s.grpc_tls_client_auth == "none" and s.http_tls_client_auth == "none":
            raise SettingsError("setting tls_client_ca_file: set, but neither "
                                "grpc_tls_client_auth nor http_tls_client_auth asks for "
                                "client certificates")


def _warn_unknown(key: str) -> None:
    """A misspelt variable would otherwise be ignored without a word."""
    # Compared without the prefix every candidate shares, which would make anything
    # look close.
    known = [name.upper() for name in _FIELDS] + sorted(
        name[len(ENV_PREFIX):] for name in OTHER_ENV_VARIABLES)
    close = difflib.get_close_matches(key[len(ENV_PREFIX):].upper(), known, n=1)
    hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
    log.warning("unknown environment variable %s is ignored%s", key, hint)


def load(*, config_file: str | None = None, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, object] | None = None) -> Settings:
    """Defaults → config file → environment → overrides (command-line flags)."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG", "")
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path}: {exc}") from None
        for key, raw in data.items():
            name = key.replace("-", "_")
            if name not in _FIELDS or name == "admin_secret":
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            merged[name] = _coerce(name, raw)
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key in OTHER_ENV_VARIABLES:
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in _FIELDS:
            merged[name] = _coerce(name, raw)
        else:
            _warn_unknown(key)
    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in _FIELDS:
            raise SettingsError(f"unknown setting {name!r}")
        merged[name] = _coerce(name, raw)
    return _validate(Settings(**merged))
