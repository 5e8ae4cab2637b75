"""``idnode token create|list|revoke``: bearer tokens for enterprise systems."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any

import grpc
import typer

from node.cli.bulk import auth_metadata
from node.cli.options import ClientConfig, Identity, Secret, Target

app = typer.Typer(no_args_is_help=True,
                  help="Bearer tokens for systems (an ERP, a label printer).")

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, now: float) -> int | None:
    """``--expires``: a duration (``90d``, ``12h``, ``30m``), an ISO 8601 time (UTC when
    it has no offset), or ``never``."""
    text = text.strip()
    if not text or text == "never":
        return None
    match = _DURATION.fullmatch(text)
    if match is not None:
        return int(now) + int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration (90d, 12h, 30m) nor an "
                                 "ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _stub(channel: grpc.Channel) -> Any:
    from idnode.v1 import admin_pb2_grpc
    return admin_pb2_grpc.AdminStub(channel)


def _call(fn: Any, request: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    try:
        return fn(request, timeout=10, metadata=metadata)
    except grpc.RpcError as exc:
        typer.echo(f"idnode: {exc.code().name}: {exc.details()}", err=True)
        raise typer.Exit(1) from None


def _row(token: Any) -> dict[str, Any]:
    def when(ts: Any, field: str) -> str:
        if not token.HasField(field):
            return ""
        return dt.datetime.fromtimestamp(ts.seconds, dt.UTC).isoformat().replace("+00:00", "Z")
    return {"token_id": token.token_id, "principal": token.principal, "scope": token.scope,
            "prefix": token.prefix, "created_at": when(token.created_at, "created_at"),
            "expires_at": when(token.expires_at, "expires_at"),
            "revoked_at": when(token.revoked_at, "revoked_at"),
            "description": token.description}


@app.command()
def create(
    principal: Annotated[str, typer.Option(help="Identity the token acts for "
                                                "(default: your own).")] = "",
    scope: Annotated[str, typer.Option(help="resolve (reads) or write.")] = "resolve",
    prefix: Annotated[str, typer.Option(help="Only under this prefix.")] = "",
    expires: Annotated[str, typer.Option(help="90d, 12h, an ISO 8601 time, or never.")]
    = "never",
    description: Annotated[str, typer.Option(help="What uses it, for the list.")] = "",
    config: ClientConfig = None,
    target: Target = "127.0.0.1:50051", identity: Identity = "", secret: Secret = "",
) -> None:
    """Create a token; the token is printed once (store it now)."""
    import time

    from idnode.v1 import admin_pb2

    request = admin_pb2.CreateTokenRequest(principal=principal, scope=scope, prefix=prefix,
                                           description=description)
    expires_at = parse_expiry(expires, time.time())
    if expires_at is not None:
        request.expires_at.seconds = expires_at
    with grpc.insecure_channel(target) as channel:
        made = _call(_stub(channel).CreateToken, request, auth_metadata(identity, secret))
    row = _row(made.token)
    typer.echo(f"token {row['token_id']} for {row['principal']} (scope {row['scope']}"
               f"{', prefix ' + row['prefix'] if row['prefix'] else ''}"
               f"{', expires ' + row['expires_at'] if row['expires_at'] else ''}):", err=True)
    typer.echo(made.secret)
    typer.echo("shown only now: use it as 'Authorization: Bearer <token>' or IDNODE_TOKEN",
               err=True)


@app.command(name="list")
def list_tokens(
    principal: Annotated[str, typer.Option(help="Whose tokens (node admin; default: "
                                                "yours).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
    = False,
    config: ClientConfig = None,
    target: Target = "127.0.0.1:50051", identity: Identity = "", secret: Secret = "",
) -> None:
    """List tokens (never their secrets)."""
    from idnode.v1 import admin_pb2

    with grpc.insecure_channel(target) as channel:
        found = _call(_stub(channel).ListTokens, admin_pb2.ListTokensRequest(
            principal=principal), auth_metadata(identity, secret))
    for token in found.tokens:
        row = _row(token)
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            state = "revoked" if row["revoked_at"] else "active"
            typer.echo(f"{row['token_id']}  {state:7}  {row['scope']:7}  "
                       f"{row['prefix'] or '-':12}  {row['expires_at'] or 'never':20}  "
                       f"{row['description']}")


@app.command()
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from create or list).")],
    config: ClientConfig = None,
    target: Target = "127.0.0.1:50051", identity: Identity = "", secret: Secret = "",
) -> None:
    """Revoke a token: refused from the next request on."""
    from idnode.v1 import admin_pb2

    with grpc.insecure_channel(target) as channel:
        done = _call(_stub(channel).RevokeToken, admin_pb2.RevokeTokenRequest(
            token_id=token_id), auth_metadata(identity, secret))
    typer.echo(f"revoked {done.token.token_id} ({done.token.principal})")
