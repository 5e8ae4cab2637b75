"""The options every client command shares: where the node is and who is asking.

Each comes from the first place that has it: a flag (``--target``, ``--identity`` +
``--secret`` or ``--token``), then the environment (``IDNODE_TARGET``,
``IDNODE_IDENTITY`` + ``IDNODE_SECRET`` or ``IDNODE_TOKEN``), then the client config
file (``--config PATH``, else ``IDNODE_CLI_CONFIG``, else ``~/.config/idnode/cli.toml``
when it exists), then the built-in default. The credentials count as one set: when any
of them is given by a flag or the environment, none is taken from the file, so a token
on the command line is never paired with a secret from the file.

The file is TOML with the keys ``target``, ``identity``, ``secret`` and ``token``::

    target = "id.example.com:50051"
    identity = "300:88.118.8/ADMIN"
    secret = "..."

A file that holds a secret or a token and that others may read gets a warning (chmod
600 it); an unreadable or malformed file, or an unknown key, stops the command (exit 2).
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

CONFIG_ENV = "IDNODE_CLI_CONFIG"
KEYS = ("target", "identity", "secret", "token")
CREDENTIALS = {"identity": "IDNODE_IDENTITY", "secret": "IDNODE_SECRET",
               "token": "IDNODE_TOKEN"}
_META = "idnode.cli_config"  # ctx.meta: the --config path given
_LOADED = "idnode.cli_config.loaded"  # ctx.meta: the file's values, read once
# Where a value was given rather than defaulted (click's ParameterSource, by name: typer
# carries its own copy of click).
_GIVEN = frozenset({"COMMANDLINE", "ENVIRONMENT"})


def _source(ctx: typer.Context, name: str) -> str:
    return str(getattr(ctx.get_parameter_source(name), "name", ""))


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/idnode/cli.toml``, else ``~/.config/idnode/cli.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "idnode" / "cli.toml"


def _fail(message: str) -> None:
    typer.echo(f"idnode: {message}", err=True)
    raise typer.Exit(2)


def read_config(path: Path, *, required: bool) -> dict[str, str]:
    """The file's values (empty when it is the default path and does not exist)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            _fail(f"the client config file {path} does not exist")
        return {}
    except OSError as exc:
        _fail(f"cannot read the client config file {path}: {exc.strerror or exc}")
        raise
    try:
        doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        _fail(f"the client config file {path} is not valid TOML: {exc}")
        raise
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        _fail(f"the client config file {path} has unknown keys: {', '.join(unknown)} "
              f"(known: {', '.join(KEYS)})")
    for key, value in doc.items():
        if not isinstance(value, str):
            _fail(f"the client config file {path}: {key} must be a string")
    if doc.get("secret") or doc.get("token"):
        _warn_if_exposed(path)
    return dict(doc)


def _warn_if_exposed(path: Path) -> None:
    """A secret in a file the group or others may read or write: say so (once)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        typer.echo(f"idnode: warning: {path} holds a secret and other users may read it "
                   f"(mode {stat.filemode(mode)}); run: chmod 600 {path}", err=True)


def _config(ctx: typer.Context) -> dict[str, str]:
    root = ctx.find_root()
    if _LOADED not in root.meta:
        given = ctx.meta.get(_META) or os.environ.get(CONFIG_ENV)
        root.meta[_LOADED] = read_config(Path(given), required=True) if given \
            else read_config(default_config_path(), required=False)
    loaded: dict[str, str] = root.meta[_LOADED]
    return loaded


def _remember_config(ctx: typer.Context, value: str | None) -> str | None:
    if value:
        ctx.meta[_META] = value
    return value


def _target(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    if _source(ctx, param.name or "") in _GIVEN:
        return value
    return _config(ctx).get("target") or value


def _credential(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """From the file only when no credential came from a flag or the environment.
    Flags are processed before options left at their default, so a credential flag
    given anywhere on the command line is already known here."""
    name = param.name or ""
    if _source(ctx, name) in _GIVEN:
        return value
    if any(_source(ctx, other) == "COMMANDLINE" for other in CREDENTIALS) \
            or any(os.environ.get(e) for e in CREDENTIALS.values()):
        return value
    return _config(ctx).get(name) or value


Target = Annotated[str, typer.Option("--target", envvar="IDNODE_TARGET", callback=_target,
                                     help="gRPC address of the node (or the config file's "
                                          "target).")]
Identity = Annotated[str, typer.Option("--identity", envvar="IDNODE_IDENTITY",
                                       callback=_credential,
                                       help="Admin identity, e.g. 300:88.118/ADMIN.")]
Secret = Annotated[str, typer.Option("--secret", envvar="IDNODE_SECRET", callback=_credential,
                                     help="The identity's secret (prefer the env variable "
                                          "or the config file).")]
Token = Annotated[str, typer.Option("--token", envvar="IDNODE_TOKEN", callback=_credential,
                                    help="A bearer token, instead of identity and secret.")]
ClientConfig = Annotated[str | None, typer.Option(
    "--config", envvar=CONFIG_ENV, is_eager=True, callback=_remember_config,
    help="Client config file (TOML: target, identity, secret, token); default "
         "~/.config/idnode/cli.toml. Flags and IDNODE_* variables win over it.",
    show_default=False)]

__all__ = ["ClientConfig", "Identity", "Secret", "Target", "Token", "default_config_path",
           "read_config"]
