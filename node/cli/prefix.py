"""``idnode prefix``: enterprise onboarding (企业前缀申请与实名审核) over ``idnode.v1.Admin``.

- ``idnode prefix apply PREFIX --name … --credit-code … --contact-name … --contact-phone …
  --contact-email … --industry … [--address …]`` — an enterprise applies (no credentials
  needed); prints the application id.
- ``idnode prefix list [--state pending|approved|rejected] [--json]`` — reviewers: every
  application, newest first (``--json``: one JSON object per line).
- ``idnode prefix approve ID [--note …]`` — reviewers: allocates the prefix and prints its
  admin identity and secret, which is shown this once.
- ``idnode prefix reject ID --reason …`` — reviewers.

Like every client command they take ``--target`` / ``IDNODE_TARGET`` and credentials from
``--identity``/``--secret`` (``IDNODE_IDENTITY``/``IDNODE_SECRET``) or ``--token``. Exit
codes: 0 done, 1 refused by the node (the reason is printed), 2 usage, 3 node unavailable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import grpc
import typer

from idnode.v1 import admin_pb2
from node.cli.bulk import DEFAULT_TARGET, _die, _rpc_die, auth_metadata, channel
from node.cli.options import ClientConfig, Identity, Secret, Target, Token

prefix_app = typer.Typer(no_args_is_help=True, help=(
    "Enterprise prefix applications and their review (企业前缀申请与实名审核)."))

_STATES = {"pending": admin_pb2.Application.STATE_PENDING,
           "approved": admin_pb2.Application.STATE_APPROVED,
           "rejected": admin_pb2.Application.STATE_REJECTED}
_NAMES = {number: name for name, number in _STATES.items()}
CALL_TIMEOUT_SECONDS = 30.0


def _stub(ch: grpc.Channel) -> Any:
    from idnode.v1 import admin_pb2_grpc

    return admin_pb2_grpc.AdminStub(ch)


def _when(timestamp: Any, present: bool = True) -> str | None:
    if not present:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp.seconds))


def application_dict(a: admin_pb2.Application) -> dict[str, Any]:
    """An application as ``--json`` prints it: the wire's field names, the state in
    lower case, times in ISO 8601 UTC (``decided_at`` null while pending)."""
    e = a.enterprise
    return {"application_id": a.application_id, "prefix": a.prefix,
            "state": _NAMES.get(a.state, "unspecified"),
            "enterprise": {"name": e.name, "credit_code": e.credit_code,
                           "contact_name": e.contact_name, "contact_phone": e.contact_phone,
                           "contact_email": e.contact_email, "industry": e.industry,
                           "address": e.address},
            "submitted_at": _when(a.submitted_at),
            "decided_at": _when(a.decided_at, a.HasField("decided_at")),
            "reviewer": a.reviewer, "reason": a.reason}


@prefix_app.command("apply")
def apply_command(
    prefix: Annotated[str, typer.Argument(help="The prefix applied for, e.g. 88.118.9.")],
    name: Annotated[str, typer.Option("--name", help="The enterprise's legal name.")],
    credit_code: Annotated[str, typer.Option(
        "--credit-code", help="Unified social credit code (统一社会信用代码), 18 characters.")],
    contact_name: Annotated[str, typer.Option("--contact-name", help="Contact person.")],
    contact_phone: Annotated[str, typer.Option("--contact-phone", help="Their telephone.")],
    contact_email: Annotated[str, typer.Option("--contact-email", help="Their e-mail.")],
    industry: Annotated[str, typer.Option(
        "--industry", help="Industry (e.g. a GB/T 4754 code and name).")],
    address: Annotated[str, typer.Option("--address", help="Registered address.")] = "",
    request_id: Annotated[str, typer.Option(
        "--request-id", help="Idempotency key: running the command again with the same "
                             "one returns the first application instead of refusing a "
                             "second one.")] = "",
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Apply for a prefix under the node prefix (no credentials needed)."""
    request = admin_pb2.ApplyPrefixRequest(
        prefix=prefix, request_id=request_id,
        enterprise=admin_pb2.Enterprise(
            name=name, credit_code=credit_code, contact_name=contact_name,
            contact_phone=contact_phone, contact_email=contact_email, industry=industry,
            address=address))
    try:
        with channel(target) as ch:
            application = _stub(ch).ApplyPrefix(
                request, timeout=CALL_TIMEOUT_SECONDS,
                metadata=auth_metadata(identity, secret, token)).application
    except grpc.RpcError as exc:
        _rpc_die(exc, target)
        raise
    typer.echo(f"application {application.application_id} for prefix {application.prefix}: "
               f"{_NAMES.get(application.state, 'unspecified')} (a reviewer decides; "
               "keep the application id)")


def _pages(stub: Any, state: admin_pb2.Application.State, metadata: tuple[tuple[str, str], ...]
           ) -> Iterator[admin_pb2.Application]:
    token = ""
    while True:
        page = stub.ListApplications(admin_pb2.ListApplicationsRequest(
            state=state, page_size=500, page_token=token), timeout=CALL_TIMEOUT_SECONDS,
            metadata=metadata)
        yield from page.applications
        token = page.next_page_token
        if not token:
            return


@prefix_app.command("list")
def list_command(
    state: Annotated[str, typer.Option(
        "--state", help="pending, approved or rejected (default: every state).")] = "",
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per application and line, with every detail.")]
    = False,
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Applications, newest first (reviewers: add_derived_prefix on 0.NA/<node prefix>)."""
    if state and state not in _STATES:
        _die(f"--state must be one of {', '.join(_STATES)}")
    metadata = auth_metadata(identity, secret, token)
    wanted = _STATES.get(state, admin_pb2.Application.STATE_UNSPECIFIED)
    try:
        with channel(target) as ch:
            for a in _pages(_stub(ch), wanted, metadata):
                if as_json:
                    typer.echo(json.dumps(application_dict(a), ensure_ascii=False))
                    continue
                d = application_dict(a)
                line = (f"{a.application_id}  {d['state']:<8}  {a.prefix:<14}  "
                        f"{d['submitted_at']}  {a.enterprise.credit_code}  "
                        f"{a.enterprise.name}")
                if a.reviewer:
                    line += f"  [{d['state']} by {a.reviewer}"
                    line += f": {a.reason}]" if a.reason else "]"
                typer.echo(line)
    except grpc.RpcError as exc:
        _rpc_die(exc, target)


@prefix_app.command("approve")
def approve_command(
    application_id: Annotated[str, typer.Argument(help="The application's id.")],
    note: Annotated[str, typer.Option("--note", help="A note kept with the decision.")]
    = "",
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Approve: the prefix, its admin identity and prefix handle are created, and the
    admin's secret is printed this once."""
    try:
        with channel(target) as ch:
            approval = _stub(ch).ApproveApplication(admin_pb2.ApproveApplicationRequest(
                application_id=application_id, note=note), timeout=CALL_TIMEOUT_SECONDS,
                metadata=auth_metadata(identity, secret, token))
    except grpc.RpcError as exc:
        _rpc_die(exc, target)
        raise
    typer.echo(f"approved application {approval.application.application_id}: prefix "
               f"{approval.application.prefix} is allocated")
    typer.echo(f"owner identity: {approval.owner}")
    typer.echo(f"owner secret:   {approval.owner_secret}")
    typer.echo("WARNING: this secret is shown only this once; the node keeps only its hash. "
               "Store it now and hand it to the enterprise over a secure channel.", err=True)


@prefix_app.command("reject")
def reject_command(
    application_id: Annotated[str, typer.Argument(help="The application's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (the enterprise is told).")],
    config: ClientConfig = None,
    target: Target = DEFAULT_TARGET, identity: Identity = "", secret: Secret = "",
    token: Token = "",
) -> None:
    """Reject, with the reason the enterprise is given."""
    try:
        with channel(target) as ch:
            rejected = _stub(ch).RejectApplication(admin_pb2.RejectApplicationRequest(
                application_id=application_id, reason=reason), timeout=CALL_TIMEOUT_SECONDS,
                metadata=auth_metadata(identity, secret, token)).application
    except grpc.RpcError as exc:
        _rpc_die(exc, target)
        raise
    typer.echo(f"rejected application {rejected.application_id} (prefix {rejected.prefix}): "
               f"{rejected.reason}")


def register(app: typer.Typer) -> None:
    """Add ``idnode prefix …`` to the ``idnode`` app."""
    app.add_typer(prefix_app, name="prefix")


__all__ = ["application_dict", "register"]
