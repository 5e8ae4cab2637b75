"""``idnode template put|get|list|publish|withdraw``: metadata templates (元数据模板).

- ``idnode template put FILE --prefix P`` — FILE is a template in the SNMS JSON shape
  (``.json``, ``.yaml`` or ``.yml``). It is checked here first,
  with the node's own parser, so every problem is listed before anything is sent; the
  node stores it as a draft (a new version, or in place of a draft of that version).
- ``idnode template publish --prefix P --version V`` — records may name it from now on;
  ``withdraw`` — no new record may.
- ``idnode template get --prefix P [--version V]`` — prints the template as JSON (the
  latest published version without ``--version``); ``list --prefix P`` — every version.

Credentials as every client command: ``--identity``/``--secret`` (``IDNODE_IDENTITY``,
``IDNODE_SECRET``) or ``--token`` (``IDNODE_TOKEN``); reading needs none. Exit codes:
0 done, 1 refused by the node, 2 a usage or file problem (nothing sent), 3 the node was
unreachable or unavailable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer

from node.cli.bulk import (
    DEFAULT_TARGET,
    EXIT_REJECTS,
    EXIT_UNAVAILABLE,
    RETRYABLE,
    _die,
    auth_metadata,
    channel,
)
from node.cli.options import ClientConfig, Identity, Secret, Target, Token

app = typer.Typer(no_args_is_help=True, help=(
    "Metadata templates (元数据模板) of a prefix: put a draft, publish, withdraw, get, "
    "list."))

CALL_TIMEOUT_SECONDS = 30.0
VIOLATIONS_METADATA = "idnode-violations-bin"
Prefix = Annotated[str, typer.Option("--prefix", help="The prefix, e.g. 88.118.8.")]


def load_template_file(path: Path) -> dict[str, Any]:
    """The template a file holds: JSON, or YAML (``.yaml``/``.yml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _die(f"cannot read {path}: {exc}")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only the CLI reads YAML: imported where it is needed

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            _die(f"{path} is not valid YAML: {exc}")
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            _die(f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        _die(f"{path} holds no template (an object with prefix, version and items)")
    template: dict[str, Any] = data
    return template


def _stub(ch: grpc.Channel) -> Any:
    from idnode.v1 import registry_pb2_grpc

    return registry_pb2_grpc.RegistryStub(ch)


def _call(target: str, method: str, request: Any,
          metadata: tuple[tuple[str, str], ...]) -> Any:
    with channel(target) as ch:
        try:
            return getattr(_stub(ch), method)(request, metadata=metadata,
                                              timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            _refused(exc, target)


def _refused(exc: grpc.RpcError, target: str) -> None:
    """The node's refusal, with every violation it listed on a line of its own."""
    from idnode.v1 import record_pb2

    code = exc.code()
    typer.echo(f"idnode: {code.name}: {exc.details()}", err=True)
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for entry in trailing or ():
        if entry.key == VIOLATIONS_METADATA and isinstance(entry.value, bytes):
            listed = record_pb2.Violations.FromString(entry.value)
            for v in listed.violations:
                typer.echo(f"  index {v.index} {v.type} ({v.item or '-'}): {v.rule}: "
                           f"{v.detail}", err=True)
            if listed.omitted:
                typer.echo(f"  … and {listed.omitted} more", err=True)
    if code is grpc.StatusCode.UNAVAILABLE:
        typer.echo(f"  is a node listening on {target}? (--target / IDNODE_TARGET)", err=True)
    raise typer.Exit(EXIT_UNAVAILABLE if code in RETRYABLE else EXIT_REJECTS)


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds else ""


def _answer(message: Any) -> dict[str, Any]:
    """A template the node answered, as JSON in the SNMS shape with its state."""
    from node.rpc.template_wire import template_from_answer
    from registry.templates import template_to_dict

    data = template_to_dict(template_from_answer(message))
    for key in ("createdAt", "updatedAt", "publishedAt", "withdrawnAt"):
        if key in data:
            data[key] = _when(int(data[key]))
    return data


@app.command("put")
def put_command(
    file: Annotated[Path, typer.Argument(help="The template: .json (or .yaml, .yml).")],
    prefix: Prefix,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Store a template as a draft (a new version, or in place of a draft)."""
    from idnode.v1 import registry_pb2
    from node.rpc.template_wire import template_to_wire
    from registry.errors import InvalidArgument
    from registry.templates import parse_template

    data = load_template_file(file)
    try:
        template = parse_template(data, prefix=prefix)
    except InvalidArgument as exc:
        typer.echo(f"idnode: {file}: {len(exc.violations) or 1} problem(s), nothing sent:",
                   err=True)
        for v in exc.violations or ():
            typer.echo(f"  {v.describe()}", err=True)
        if not exc.violations:
            typer.echo(f"  {exc.message}", err=True)
        raise typer.Exit(2) from None
    answer = _call(target, "PutTemplate", registry_pb2.PutTemplateRequest(
        prefix=prefix, template=template_to_wire(template)),
        auth_metadata(identity, secret, token))
    stored = answer.template
    typer.echo(f"draft {answer.prefix} version {stored.version} stored "
               f"({len(stored.fields)} items); publish it with: idnode template publish "
               f"--prefix {answer.prefix} --version {stored.version}")


@app.command("get")
def get_command(
    prefix: Prefix,
    version: Annotated[str, typer.Option(help="The version (default: the latest "
                                              "published one).")] = "",
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Print a template as JSON (the SNMS shape, with its state)."""
    from idnode.v1 import registry_pb2

    answer = _call(target, "GetTemplate", registry_pb2.GetTemplateRequest(
        prefix=prefix, version=version), auth_metadata(identity, secret, token))
    typer.echo(json.dumps(_answer(answer.template), ensure_ascii=False, indent=2))


@app.command("list")
def list_command(
    prefix: Prefix,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
    = False,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Every version of the prefix's templates, oldest first (drafts only when your
    credentials may write them)."""
    from idnode.v1 import registry_pb2

    answer = _call(target, "ListTemplates", registry_pb2.ListTemplatesRequest(prefix=prefix),
                   auth_metadata(identity, secret, token))
    for message in answer.templates:
        row = _answer(message)
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(f"{row['version']:16} {row['state']:9} {len(row['items']):3} items  "
                       f"{row.get('publishedAt') or '-':20}  {row.get('description', '')}")


def _transition(method: str, prefix: str, version: str, target: str,
                metadata: tuple[tuple[str, str], ...], done: str) -> None:
    from idnode.v1 import registry_pb2

    request_type = getattr(registry_pb2, f"{method}Request")
    answer = _call(target, method, request_type(prefix=prefix, version=version), metadata)
    typer.echo(f"{answer.template.prefix} version {answer.template.version} {done}")


@app.command("publish")
def publish_command(
    prefix: Prefix,
    version: Annotated[str, typer.Option(help="The draft's version.")],
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Publish a draft: records may name it at index 1001; it never changes again."""
    _transition("PublishTemplate", prefix, version, target,
                auth_metadata(identity, secret, token), "published")


@app.command("withdraw")
def withdraw_command(
    prefix: Prefix,
    version: Annotated[str, typer.Option(help="The published version.")],
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Withdraw a published version: no new record may name it (its records stay
    writable)."""
    _transition("WithdrawTemplate", prefix, version, target,
                auth_metadata(identity, secret, token), "withdrawn")


__all__ = ["app", "load_template_file"]
