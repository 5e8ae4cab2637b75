"""The ``idnode`` command: serve a node, and talk to one (register, resolve, verify, keys)."""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from typing import Annotated, Any

import grpc
import typer

from node.settings import SettingsError, load

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="idnode: a secondary node of an industrial-internet identifier "
                       "resolution system (Handle-compatible).")
keys_app = typer.Typer(no_args_is_help=True, help="Signing keys in the key directory.")
app.add_typer(keys_app, name="keys")

Target = Annotated[str, typer.Option("--target", envvar="IDNODE_TARGET",
                                     help="gRPC address of the node.")]
Identity = Annotated[str, typer.Option("--identity", envvar="IDNODE_IDENTITY",
                                       help="Admin identity, e.g. 300:88.118/ADMIN.")]
Secret = Annotated[str, typer.Option("--secret", envvar="IDNODE_SECRET",
                                     help="The identity's secret (prefer the env variable).")]


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
    try:
        settings = load(config_file=config, overrides=overrides)
    except SettingsError as exc:
        _die(str(exc))
        raise
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
            secret: Secret = "") -> None:
    """Resolve an identifier and print the (verified) record."""
    from idnode.v1 import resolver_pb2, resolver_pb2_grpc
    from node.verify import VerificationError, verify

    with grpc.insecure_channel(target) as channel:
        stub = resolver_pb2_grpc.ResolverStub(channel)
        response = _call(stub.Resolve, resolver_pb2.ResolveRequest(handle=handle),
                         _metadata(identity, secret))
        keys = _call(stub.GetSigningKeys, resolver_pb2.GetSigningKeysRequest())
    try:
        record = verify(response.record, keys.keys)
    except VerificationError as exc:
        _die(f"verification failed: {exc.reason}", 1)
    _print_record(record, response.etag)


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

    try:
        ring = KeyRing.open(_key_dir(data_dir, key_dir), create=False)
    except SigningKeyError as exc:
        _die(str(exc))
        raise
    for key in ring.published():
        state = "active" if key.active else f"retired, published until {key.not_after}"
        typer.echo(f"{key.key_id}  {key.algorithm:<18} since {key.not_before}  {state}")


@keys_app.command("rotate")
def keys_rotate(data_dir: Annotated[str | None, typer.Option()] = None,
                key_dir: Annotated[str | None, typer.Option()] = None,
                algorithm: Annotated[str, typer.Option()] = "Ed25519",
                retire_after_seconds: Annotated[int, typer.Option()] = 2 * 86400) -> None:
    """Make a new active key; the old one stays published for --retire-after-seconds.
    Running nodes pick the new key up when restarted."""
    from node.security.signing import ALGORITHMS, rotate

    if algorithm not in ALGORITHMS:
        _die(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    typer.echo(rotate(_key_dir(data_dir, key_dir), algorithm=algorithm,
                      retire_after_seconds=retire_after_seconds))


def main() -> None:
    app(prog_name="idnode")


if __name__ == "__main__":
    main()

