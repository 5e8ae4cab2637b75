"""``idnode audit``: read the node's audit log (``Admin.QueryAudit``, node admin only).

One line per entry, newest first, tab-separated: time (UTC), outcome, action, target,
principal, door, client address, change-log sequence, request id, message (``-`` for an
empty field; characters that are not printable are escaped, so a target cannot forge a
line). ``--json`` prints one JSON object per line instead.

Exit codes: 0 listed (possibly nothing); 1 refused by the node (credentials, rights, a
bad filter); 2 bad options; 3 the node was unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import grpc
import typer
from google.protobuf.timestamp_pb2 import Timestamp

from node.cli.bulk import DEFAULT_TARGET, EXIT_USAGE, _die, _rpc_die, auth_metadata, channel
from node.cli.options import ClientConfig, Identity, Secret, Target, Token

MAX_PAGE = 1000
OUTCOMES = ("ok", "refused")


def parse_time(text: str, option: str) -> int:
    """Seconds since the epoch from ISO 8601 (``2026-03-01``, ``2026-03-01T08:00``,
    ``…Z``, ``…+08:00``); without an offset the time is UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 date or time "
                                 "(e.g. 2026-03-01 or 2026-03-01T08:00:00Z)",
                                 param_hint=option) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _iso(ts: Timestamp) -> str:
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(text: str) -> str:
    """Printable as it is; anything else (newline, tab, control and format characters)
    escaped, so one entry is always one line."""
    if text.isprintable():
        return text or "-"
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def entry_dict(entry: Any) -> dict[str, object]:
    """One entry as ``--json`` prints it."""
    return {"id": entry.id, "time": _iso(entry.time), "outcome": entry.outcome,
            "action": entry.action, "target": entry.target, "principal": entry.principal,
            "door": entry.door, "client_address": entry.client_address,
            "sequence": entry.sequence, "request_id": entry.request_id,
            "message": entry.message}


def entry_line(entry: Any) -> str:
    """One entry as a tab-separated line."""
    return "\t".join((_iso(entry.time), _clean(entry.outcome), _clean(entry.action),
                      _clean(entry.target), _clean(entry.principal), _clean(entry.door),
                      _clean(entry.client_address),
                      str(entry.sequence) if entry.sequence else "-",
                      _clean(entry.request_id), _clean(entry.message)))


def query_entries(stub: Any, request: Any, limit: int,
                  metadata: tuple[tuple[str, str], ...]) -> Iterator[Any]:
    """Entries page by page, at most ``limit`` (0: all)."""
    seen = 0
    while True:
        request.page_size = min(MAX_PAGE, limit - seen) if limit else MAX_PAGE
        response = stub.QueryAudit(request, timeout=30, metadata=metadata)
        for entry in response.entries:
            yield entry
            seen += 1
            if limit and seen >= limit:
                return
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


def audit_command(
    prefix: Annotated[str, typer.Option(
        "--prefix", help="Entries about identifiers of this prefix, its prefix handle "
                         "and the prefix itself.")] = "",
    principal: Annotated[str, typer.Option(
        "--principal", help="Entries of this principal, e.g. 300:88.118.8/ADMIN.")] = "",
    since: Annotated[str, typer.Option(
        "--since", help="From this time on (ISO 8601; UTC unless an offset is given).")]
    = "",
    until: Annotated[str, typer.Option(
        "--until", help="Before this time (ISO 8601, exclusive).")] = "",
    outcome: Annotated[str, typer.Option(
        "--outcome", help="ok (accepted writes) or refused (refused attempts).")] = "",
    limit: Annotated[int, typer.Option("--limit", help="At most N entries (0: all).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
    = False,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Print the node's audit log, newest first (node admin only): every accepted write
    and every refused attempt, with principal, action, target, request id, client
    address, door and change-log sequence."""
    from idnode.v1 import admin_pb2, admin_pb2_grpc

    if outcome and outcome.lower() not in OUTCOMES:
        _die(f"--outcome must be one of {', '.join(OUTCOMES)}", EXIT_USAGE)
    if limit < 0:
        _die("--limit must be 0 (all) or more", EXIT_USAGE)
    request = admin_pb2.QueryAuditRequest(prefix=prefix, principal=principal,
                                          outcome=outcome.lower())
    if since:
        request.since.seconds = parse_time(since, "--since")
    if until:
        request.until.seconds = parse_time(until, "--until")
    metadata = auth_metadata(identity, secret, token)
    try:
        with channel(target) as ch:
            for entry in query_entries(admin_pb2_grpc.AdminStub(ch), request, limit,
                                       metadata):
                typer.echo(json.dumps(entry_dict(entry), ensure_ascii=False) if as_json
                           else entry_line(entry))
    except grpc.RpcError as exc:
        _rpc_die(exc, target)


def register(app: typer.Typer) -> None:
    """Add ``idnode audit`` to the ``idnode`` app."""
    app.command("audit", help=audit_command.__doc__)(audit_command)


__all__ = ["audit_command", "entry_dict", "entry_line", "parse_time", "register"]
