"""The ``idnode`` command: serve a node, and talk to one (register, resolve, verify, keys)."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer

from node.cli import audit, bulk, db, prefix, templates, tokens
from node.cli.options import Identity, Secret, Target, Token
from node.settings import Settings, SettingsError, load

KEYS_FILE = "keys.json"  # the key directory's index (node.security.signing)

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  help="idnode: a secondary node of an industrial-internet identifier "
                       "resolution system (Handle-compatible).")
keys_app = typer.Typer(no_args_is_help=True, help="Signing keys in the key directory.")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens.app, name="token")
app.add_typer(templates.app, name="template")
app.add_typer(db.app, name="db")



def _die(message: str, code: int = 2) -> None:
    typer.echo(f"idnode: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def serve(
    data_dir: Annotated[str | None, typer.Option(help="Data directory (store, keys).")] = None,
    grpc_listen: Annotated[str | None, typer.Option(help="gRPC host:port.")] = None,
    http_listen: Annotated[str | None, typer.Option(help="HTTP host:port ('' disables).")]
    = None,
    metrics_listen: Annotated[str | None, typer.Option(help="Separate Prometheus host:port.")]
    = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL for the shared L2 cache.")]
    = None,
    database_url: Annotated[str | None, typer.Option(help="sqlite:///PATH or memory:.")]
    = None,
    node_prefix: Annotated[str | None, typer.Option(help="The prefix this node serves.")]
    = None,
    workers: Annotated[int | None, typer.Option(help="Processes sharing the port.")] = None,
    config: Annotated[str | None, typer.Option(help="TOML config file.")] = None,
) -> None:
    """Run the node (embedded default: SQLite under --data-dir, in-process cache)."""
    overrides = {"data_dir": data_dir, "grpc_listen": grpc_listen, "http_listen": http_listen,
                 "metrics_listen": metrics_listen, "redis_url": redis_url,
                 "database_url": database_url, "node_prefix": node_prefix, "workers": workers}
    settings = _load(config, overrides)
    if settings.workers > 1:
        # Imported only here: the supervisor must set up multi-process metrics before
        # prometheus_client is first imported.
        from node.workers import supervise

        raise typer.Exit(supervise(settings))
    from node.app import StartupError
    from node.app import serve as run

    try:
        run(settings)
    except StartupError as exc:
        _die(str(exc))


_MIRROR_HELP = """Run a read-only mirror of the node at --from: its own store (the usual
settings: --data-dir, --database-url, ...) follows the primary's change feed, every
change verified against the primary's published keys and applied with the mirror's
position in one transaction (a mirror killed at any moment resumes with no gap and no
duplicate). Resolves, lists, Handle REST and the Handle protocol are served from the
mirror's store; writes are refused with PERMISSION_DENIED (HTTP 403). Following the
whole log needs the primary's node admin (--identity/--secret or a client certificate);
--prefix follows one prefix with rights on it (a token will do)."""


@app.command(help=_MIRROR_HELP)
def mirror(
    source: Annotated[str, typer.Option("--from", envvar="IDNODE_MIRROR_FROM",
                                        help="The primary's gRPC host:port.")],
    identity: Identity = "",
    secret: Secret = "",
    token: Token = "",
    ca_file: Annotated[str, typer.Option(
        "--ca-file", envvar="IDNODE_CA_FILE",
        help="CA certificates (PEM) to verify the primary's TLS certificate; turns TLS "
             "on.")] = "",
    client_cert: Annotated[str, typer.Option(
        "--client-cert", envvar="IDNODE_CLIENT_CERT",
        help="Client certificate (PEM) for mutual TLS with the primary.")] = "",
    client_key: Annotated[str, typer.Option(
        "--client-key", envvar="IDNODE_CLIENT_KEY",
        help="The client certificate's private key (PEM).")] = "",
    follow_prefix: Annotated[str, typer.Option(
        "--prefix", help="Follow only this prefix instead of the whole log.")] = "",
    data_dir: Annotated[str | None, typer.Option(help="Data directory (store, keys).")] = None,
    grpc_listen: Annotated[str | None, typer.Option(help="gRPC host:port.")] = None,
    http_listen: Annotated[str | None, typer.Option(help="HTTP host:port ('' disables).")]
    = None,
    metrics_listen: Annotated[str | None, typer.Option(help="Separate Prometheus host:port.")]
    = None,
    handle_listen: Annotated[str | None, typer.Option(
        help="Handle protocol host:port ('' disables).")] = None,
    database_url: Annotated[str | None, typer.Option(help="The mirror's own store.")] = None,
    node_prefix: Annotated[str | None, typer.Option(
        help="The prefix the primary serves.")] = None,
    config: Annotated[str | None, typer.Option(help="TOML config file.")] = None,
) -> None:
    if (client_cert or client_key) and not (client_cert and client_key and ca_file):
        _die("--client-cert and --client-key go together, with --ca-file")
    overrides = {"data_dir": data_dir, "grpc_listen": grpc_listen, "http_listen": http_listen,
                 "metrics_listen": metrics_listen, "handle_listen": handle_listen,
                 "database_url": database_url, "node_prefix": node_prefix}
    settings = _load(config, overrides)
    if settings.workers > 1:
        _die("a mirror runs one process (workers = 1): one follower owns its position")
    from node.app import StartupError
    from node.app import serve as run
    from node.rpc.mirror import MirrorSource

    try:
        run(settings, mirror=MirrorSource(
            source, identity=identity, secret=secret, token=token, ca_file=ca_file,
            client_cert_file=client_cert, client_key_file=client_key,
            prefix=follow_prefix))
    except StartupError as exc:
        _die(str(exc))


def _load(config: str | None, overrides: Mapping[str, object]) -> Settings:
    """Settings as ``serve`` reads them: defaults, --config/IDNODE_CONFIG, IDNODE_*, flags."""
    try:
        return load(config_file=config, overrides=overrides)
    except SettingsError as exc:
        _die(str(exc))
        raise


def _local_host(host: str) -> str:
    """Where to reach a listener from the same host: a wildcard means the loopback."""
    host = host.strip("[]")
    if host in {"", "0.0.0.0", "*"}:  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def health_target(settings: Settings) -> tuple[str, str]:
    """What ``idnode health`` probes: ("http", readyz URL) when HTTP is on (https:// with
    TLS), else ("grpc", host:port) for the gRPC health service."""
    if settings.http_listen:
        host, _, port = settings.http_listen.rpartition(":")
        host = _local_host(host)
        scheme = "https" if settings.tls_cert_file else "http"
        return "http", f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/readyz"
    host, _, port = settings.grpc_listen.rpartition(":")
    host = _local_host(host)
    return "grpc", f"{f'[{host}]' if ':' in host else host}:{port}"


def _probe(kind: str, target: str, timeout_seconds: float) -> tuple[bool, str]:
    if kind == "http":
        # No proxy: an HTTP_PROXY in the environment must not answer for the node.
        # The probe asks the node on this host whether it is ready, not who it is: the
        # certificate names the public host, not the loopback, so it is not verified.
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=unverified))
        try:
            with opener.open(target, timeout=timeout_seconds) as response:
                return response.status == 200, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return False, str(getattr(exc, "reason", exc))
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_seconds).status
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    return status == health_pb2.HealthCheckResponse.SERVING, name


@app.command()
def health(
    config: Annotated[str | None, typer.Option(help="TOML config file (as for serve).")]
    = None,
    grpc_listen: Annotated[str | None, typer.Option(help="gRPC host:port (as for serve).")]
    = None,
    http_listen: Annotated[str | None, typer.Option(help="HTTP host:port ('' disables).")]
    = None,
    timeout_seconds: Annotated[float, typer.Option(help="Give up after this long.")] = 2.0,
) -> None:
    """Exit 0 when the node configured here is ready, 1 otherwise (container health check).

    Reads the settings as serve does and probes /readyz on the HTTP address, or the gRPC
    health service when HTTP is disabled. A wildcard address is probed on the loopback."""
    settings = _load(config, {"grpc_listen": grpc_listen, "http_listen": http_listen})
    kind, target = health_target(settings)
    ok, detail = _probe(kind, target, timeout_seconds)
    typer.echo(f"{'ready' if ok else 'NOT ready'}: {target} {detail}", err=not ok)
    raise typer.Exit(0 if ok else 1)


def _metadata(identity: str, secret: str) -> tuple[tuple[str, str], ...]:
    if not identity:
        return ()
    user = urllib.parse.quote(identity, safe="")
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


def _call(fn: Any, request: Any, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    try:
        return fn(request, timeout=10, metadata=metadata)
    except grpc.RpcError as exc:
        _die(f"{exc.code().name}: {exc.details()}", 1)


def _print_record(record: Any, etag: str = "") -> None:
    from google.protobuf.json_format import MessageToDict

    out = MessageToDict(record, preserving_proto_field_name=True)
    if etag:
        out["etag"] = etag
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@app.command()
def register(
    handle: str,
    values: Annotated[list[str], typer.Argument(help="TYPE=TEXT, indexes 1, 2, ... in order")],
    target: Target = "127.0.0.1:50051", identity: Identity = "", secret: Secret = "",
) -> None:
    """Register an identifier with text values, e.g. URL=https://... productName=..."""
    from idnode.v1 import record_pb2, registry_pb2, registry_pb2_grpc

    parsed = []
    for i, item in enumerate(values, 1):
        typ, sep, text = item.partition("=")
        if not sep:
            _die(f"value {item!r} is not TYPE=TEXT")
        parsed.append(record_pb2.Value(index=i, type=typ, text=text))
    with grpc.insecure_channel(target) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        response = _call(stub.Register, registry_pb2.RegisterRequest(
            handle=handle, values=parsed, request_id=str(uuid.uuid4())),
            _metadata(identity, secret))
    typer.echo(f"registered {response.handle} version {response.version} etag {response.etag}")


@app.command()
def resolve(handle: str, target: Target = "127.0.0.1:50051", identity: Identity = "",
            secret: Secret = "",
            protocol: Annotated[str, typer.Option(
                "--protocol", help="grpc (signed, verified) or handle (RFC 3652 over TCP, "
                                   "as Handle clients resolve; public values, unsigned; "
                                   "--target defaults to 127.0.0.1:2641).")] = "grpc",
            as_json: Annotated[bool, typer.Option(
                "--json", help="One line of JSON: the Handle REST values, version, etag "
                               "and the verifying key (gRPC).")] = False,
            certified: Annotated[bool, typer.Option(
                "--certified", help="With --protocol handle: ask for a certified answer "
                                    "and verify its signature with the RSA key the node "
                                    "publishes in its site info.")] = False,
            ) -> None:
    """Resolve an identifier and print the (verified) record."""
    from idnode.v1 import resolver_pb2, resolver_pb2_grpc
    from node.verify import VerificationError, verify

    if protocol not in ("grpc", "handle"):
        _die("--protocol must be grpc or handle")
    if protocol == "handle":
        _resolve_handle(handle, "127.0.0.1:2641" if target == "127.0.0.1:50051" else target,
                        certified=certified)
        return
    if certified:
        _die("--certified is for --protocol handle (gRPC answers are always signed and "
             "verified)")

    with grpc.insecure_channel(target) as channel:
        stub = resolver_pb2_grpc.ResolverStub(channel)
        response = _call(stub.Resolve, resolver_pb2.ResolveRequest(handle=handle),
                         _metadata(identity, secret))
        keys = _call(stub.GetSigningKeys, resolver_pb2.GetSigningKeysRequest())
    try:
        record = verify(response.record, keys.keys)
    except VerificationError as exc:
        _die(f"verification failed: {exc.reason}", 1)
    if as_json:
        typer.echo(bulk.resolve_json(record, response.etag, response.record.key_id))
        return
    _print_record(record, response.etag)


def _resolve_handle(handle: str, target: str, *, certified: bool) -> None:
    """``resolve --protocol handle``: the Handle native protocol (node.handle.client);
    ``--certified``: the answer's signature verified (a line on stderr says so)."""
    from node.handle.client import HandleClientError, to_json
    from node.handle.client import resolve as handle_resolve

    try:
        name, values = handle_resolve(target, handle, certified=certified)
    except HandleClientError as exc:
        _die(str(exc), 1)
        raise
    except OSError as exc:
        _die(f"cannot reach {target}: {exc}", 1)
        raise
    typer.echo(to_json(name, values))
    if certified:
        typer.echo("verified: HS_SIGNED SHA-256 with RSA, the key of the node's site info",
                   err=True)


@app.command(name="verify")
def verify_cmd(handle: str, target: Target = "127.0.0.1:50051") -> None:
    """Resolve and verify the signature against the node's published keys."""
    from idnode.v1 import resolver_pb2, resolver_pb2_grpc
    from node.verify import VerificationError, verify

    with grpc.insecure_channel(target) as channel:
        stub = resolver_pb2_grpc.ResolverStub(channel)
        response = _call(stub.Resolve, resolver_pb2.ResolveRequest(handle=handle))
        keys = _call(stub.GetSigningKeys, resolver_pb2.GetSigningKeysRequest())
    try:
        verify(response.record, keys.keys)
    except VerificationError as exc:
        _die(f"NOT verified: {exc.reason}", 1)
    typer.echo(f"verified: {response.record.algorithm} signature by key "
               f"{response.record.key_id}")


@app.command()
def top(url: Annotated[str, typer.Option(help="The node's metrics URL.")]
        = "http://127.0.0.1:8080/metrics",
        interval_seconds: Annotated[float, typer.Option(help="Refresh period.")] = 2.0,
        frames: Annotated[int, typer.Option(help="Stop after N frames (0: run until Ctrl-C).")]
        = 0) -> None:
    """Live throughput, latency and cache hit ratio of a running node."""
    from node.cli.top import run

    try:
        run(url, interval_seconds, frames or None)
    except OSError as exc:
        _die(f"cannot read {url}: {exc}", 1)
    except KeyboardInterrupt:
        pass


_QR_HELP = ("Write one QR label per identifier, for printing in bulk (no node needed).\n\n"
            "Each label encodes <base-url>/<handle>; scanning it opens the node's "
            "scan-to-resolve page. Identifiers are checked for syntax only (not looked up). "
            "One file each, named after the identifier: '/' becomes '_', other unsafe "
            "characters %XX (88.118.8_PN-0001.png).\n\n"
            "Prints each file written; failures go to stderr. Exit code 1 when any "
            "identifier failed, 2 on a usage error.")


def _qr_wanted(handles: list[str], from_file: str | None) -> list[tuple[str, str]]:
    """(where it came from, identifier text) for the arguments, then the file's lines."""
    import sys

    wanted = [(f"argument {n}", h) for n, h in enumerate(handles, 1)]
    if from_file is not None:
        try:
            text = (sys.stdin.read() if from_file == "-"
                    else Path(from_file).read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            _die(f"cannot read {from_file}: {exc}")
            raise
        for n, line in enumerate(text.splitlines(), 1):
            item = line.strip()
            if item and not item.startswith("#"):
                wanted.append((f"{from_file}:{n}", item))
    return wanted


@app.command(help=_QR_HELP)
def qr(
    handles: Annotated[list[str] | None, typer.Argument(
        help="Identifiers, e.g. 88.118.8/PN-0001 (more may come from --from-file).",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the labels to "
                                      "(created if missing).")] = Path("labels"),
    from_file: Annotated[str | None, typer.Option(
        "--from-file", help="A file of identifiers, one per line ('-' reads standard "
                            "input); blank lines and lines starting with # are skipped.")]
    = None,
    fmt: Annotated[str, typer.Option("--format", help="png or svg.")] = "png",
    base_url: Annotated[str, typer.Option(
        "--base-url", envvar="IDNODE_PUBLIC_URL",
        help="The node's public URL, e.g. https://id.example.com (required; or set "
             "IDNODE_PUBLIC_URL). Each label encodes <base-url>/<handle>, the page a phone "
             "opens.")] = "",
    scale: Annotated[int, typer.Option(help="Module size: pixels per QR module (1-40).")]
    = 8,
) -> None:
    """Bulk labels for a factory: the base URL is an argument, not looked up, so labels
    can be printed where the node is not reachable, and every identifier is checked
    for syntax so a typo fails here rather than on a riveted plate (see node.web.qr)."""
    from node.web.qr import (
        KINDS,
        Kind,
        LabelError,
        check_scale,
        file_name,
        normalise_base_url,
        proxy_url,
        render,
    )
    from registry.errors import InvalidIdentifier
    from registry.identifier import Handle

    if fmt not in KINDS:
        _die(f"--format must be one of {', '.join(KINDS)}")
    kind: Kind = "svg" if fmt == "svg" else "png"
    if not base_url:
        _die("--base-url (or IDNODE_PUBLIC_URL) is required: the URL the labels point at, "
             "e.g. https://id.example.com")
    try:
        base = normalise_base_url(base_url)
        check_scale(scale)
    except LabelError as exc:
        _die(str(exc))
        raise
    wanted = _qr_wanted(handles or [], from_file)
    if not wanted:
        _die("no identifiers: give them as arguments or with --from-file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _die(f"cannot create {out}: {exc.strerror}")
    written: dict[str, str] = {}  # lower-cased file name → the handle written there
    failed = 0
    for where, text in wanted:
        try:
            handle = Handle.parse(text)
        except InvalidIdentifier as exc:
            typer.echo(f"idnode: {where}: {text!r}: {exc.message}", err=True)
            failed += 1
            continue
        spelled = str(handle)
        name = file_name(spelled, kind)
        if name.lower() in written:  # the same identifier (matching ignores ASCII case)
            typer.echo(f"{where}: {spelled} is a duplicate of {written[name.lower()]}; "
                       "written once", err=True)
            continue
        path = out / name
        try:
            path.write_bytes(render(proxy_url(base, spelled), kind, scale=scale))
        except OSError as exc:
            typer.echo(f"idnode: {where}: cannot write {path}: {exc.strerror}", err=True)
            failed += 1
            continue
        written[name.lower()] = spelled
        typer.echo(f"{path}\t{spelled}")
    typer.echo(f"{len(written)} written, {failed} failed", err=True)
    raise typer.Exit(1 if failed else 0)


def _utc(epoch_seconds: float | None) -> str:
    """ISO 8601 in UTC, e.g. 2026-11-29T01:15:04Z; no time at all is "never"."""
    if epoch_seconds is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def _key_dir(data_dir: str | None, key_dir: str | None) -> str:
    try:
        settings = load(overrides={"data_dir": data_dir, "key_dir": key_dir})
    except SettingsError as exc:
        _die(str(exc))
        raise
    return settings.signing_key_dir


@keys_app.command("list")
def keys_list(data_dir: Annotated[str | None, typer.Option()] = None,
              key_dir: Annotated[str | None, typer.Option()] = None) -> None:
    """List the keys in the key directory."""
    from node.security.signing import KeyRing, SigningKeyError

    folder = Path(_key_dir(data_dir, key_dir))
    if not (folder / KEYS_FILE).is_file():
        # Not `keys rotate`: that would create a key here, beside the node's real ones.
        _die(f"no key directory found at {folder.resolve()}; point at the node's with "
             "--data-dir DIR (keys in DIR/keys) or --key-dir DIR")
    try:
        ring = KeyRing.open(folder, create=False)
    except SigningKeyError as exc:
        _die(str(exc))
        raise
    for key in ring.published():
        typer.echo(f"{key.key_id}  {key.algorithm:<18} since {_utc(key.not_before)}  "
                   f"until {_utc(key.not_after)}  {'active' if key.active else 'retired'}")


@keys_app.command("rotate")
def keys_rotate(data_dir: Annotated[str | None, typer.Option()] = None,
                key_dir: Annotated[str | None, typer.Option()] = None,
                algorithm: Annotated[str, typer.Option()] = "Ed25519",
                retire_after_seconds: Annotated[int, typer.Option()] = 2 * 86400) -> None:
    """Make a new active key; the old one stays published for --retire-after-seconds.
    Running nodes pick the new key up within store_check_interval_seconds (default 5 s),
    without a restart."""
    from node.security.signing import ALGORITHMS, rotate

    if algorithm not in ALGORITHMS:
        _die(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    typer.echo(rotate(_key_dir(data_dir, key_dir), algorithm=algorithm,
                      retire_after_seconds=retire_after_seconds))


bulk.register(app)  # import, export, list, update, delete: node/cli/bulk.py
prefix.register(app)  # prefix apply, list, approve, reject: node/cli/prefix.py
audit.register(app)  # audit: node/cli/audit.py


def main() -> None:
    app(prog_name="idnode")


if __name__ == "__main__":
    main()

