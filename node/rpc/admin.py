"""The idnode.v1.Admin servicer: tokens, prefix applications, the audit log.

Like every servicer it only translates wire ⇄ core; the decisions live in
:mod:`node.service` (tokens, applications, audit).
"""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from idnode.v1 import admin_pb2
from node.rpc.servicers import caller_of
from node.rpc.wire import audit_entry_to_wire
from node.service.audit import AuditFilter
from node.service.core import Core
from registry.access.tokens import StoredToken
from registry.applications import Application, ApplicationState, Enterprise
from registry.errors import InvalidArgument


def token_to_wire(token: StoredToken) -> admin_pb2.Token:
    out = admin_pb2.Token(token_id=token.token_id, principal=token.principal,
                          scope=token.scope.value, prefix=token.prefix_text,
                          created_at=Timestamp(seconds=token.created_at),
                          description=token.description)
    if token.expires_at is not None:
        out.expires_at.seconds = token.expires_at
    if token.revoked_at is not None:
        out.revoked_at.seconds = token.revoked_at
    return out



_WIRE_STATES: dict[ApplicationState, admin_pb2.Application.State] = {
    ApplicationState.PENDING: admin_pb2.Application.STATE_PENDING,
    ApplicationState.APPROVED: admin_pb2.Application.STATE_APPROVED,
    ApplicationState.REJECTED: admin_pb2.Application.STATE_REJECTED,
}
_STATES: dict[int, ApplicationState] = {n: state for state, n in _WIRE_STATES.items()}


def enterprise_from_wire(e: admin_pb2.Enterprise) -> Enterprise:
    return Enterprise(e.name, e.credit_code, e.contact_name, e.contact_phone,
                      e.contact_email, e.industry, e.address)


def state_from_wire(number: int) -> ApplicationState | None:
    """None for STATE_UNSPECIFIED (every state)."""
    if number == admin_pb2.Application.STATE_UNSPECIFIED:
        return None
    state = _STATES.get(number)
    if state is None:
        raise InvalidArgument(f"state {number} is not one of STATE_UNSPECIFIED (0), "
                              "STATE_PENDING (1), STATE_APPROVED (2) or STATE_REJECTED (3)")
    return state


def application_to_wire(a: Application) -> admin_pb2.Application:
    e = a.enterprise
    out = admin_pb2.Application(
        application_id=a.id, prefix=a.prefix.text, state=_WIRE_STATES[a.state],
        enterprise=admin_pb2.Enterprise(
            name=e.name, credit_code=e.credit_code, contact_name=e.contact_name,
            contact_phone=e.contact_phone, contact_email=e.contact_email,
            industry=e.industry, address=e.address),
        submitted_at=Timestamp(seconds=a.submitted_at), reviewer=a.reviewer, reason=a.reason)
    if a.decided_at:
        out.decided_at.CopyFrom(Timestamp(seconds=a.decided_at))
    return out


class AdminServicer:
    """One method per Admin RPC (see proto/idnode/v1/admin.proto)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # --- tokens ------------------------------------------------------------------------

    def create_token(self, request: admin_pb2.CreateTokenRequest,
                     context: grpc.ServicerContext) -> admin_pb2.CreateTokenResponse:
        expires = request.expires_at.seconds if request.HasField("expires_at") else None
        token, text = self.core.tokens.create(
            caller_of(context), request.principal, request.scope, request.prefix, expires,
            request.description)
        return admin_pb2.CreateTokenResponse(token=token_to_wire(token), secret=text)

    def list_tokens(self, request: admin_pb2.ListTokensRequest,
                    context: grpc.ServicerContext) -> admin_pb2.ListTokensResponse:
        tokens = self.core.tokens.list(caller_of(context), request.principal)
        return admin_pb2.ListTokensResponse(tokens=[token_to_wire(t) for t in tokens])

    def revoke_token(self, request: admin_pb2.RevokeTokenRequest,
                     context: grpc.ServicerContext) -> admin_pb2.RevokeTokenResponse:
        token = self.core.tokens.revoke(caller_of(context), request.token_id)
        return admin_pb2.RevokeTokenResponse(token=token_to_wire(token))

    # --- prefix applications -----------------------------------------------------------

    def apply_prefix(self, request: admin_pb2.ApplyPrefixRequest,
                     context: grpc.ServicerContext) -> admin_pb2.ApplyPrefixResponse:
        application = self.core.applications.apply(
            caller_of(context), request.prefix, enterprise_from_wire(request.enterprise),
            request.request_id)
        return admin_pb2.ApplyPrefixResponse(application=application_to_wire(application))

    def list_applications(self, request: admin_pb2.ListApplicationsRequest,
                          context: grpc.ServicerContext) -> admin_pb2.ListApplicationsResponse:
        page, token = self.core.applications.list(
            caller_of(context), state_from_wire(request.state), request.page_size,
            request.page_token)
        return admin_pb2.ListApplicationsResponse(
            applications=[application_to_wire(a) for a in page], next_page_token=token)

    def approve_application(
            self, request: admin_pb2.ApproveApplicationRequest,
            context: grpc.ServicerContext) -> admin_pb2.ApproveApplicationResponse:
        approval = self.core.applications.approve(caller_of(context), request.application_id,
                                                  request.note)
        return admin_pb2.ApproveApplicationResponse(
            application=application_to_wire(approval.application),
            owner=approval.allocation.owner,
            owner_secret=approval.allocation.generated_secret)

    def reject_application(
            self, request: admin_pb2.RejectApplicationRequest,
            context: grpc.ServicerContext) -> admin_pb2.RejectApplicationResponse:
        rejected = self.core.applications.reject(caller_of(context), request.application_id,
                                                 request.reason)
        return admin_pb2.RejectApplicationResponse(application=application_to_wire(rejected))

    # --- audit -------------------------------------------------------------------------

    def query_audit(self, request: admin_pb2.QueryAuditRequest,
                    context: grpc.ServicerContext) -> admin_pb2.QueryAuditResponse:
        filters = AuditFilter(
            request.prefix, request.principal,
            _seconds(request.since, up=False) if request.HasField("since") else None,
            _seconds(request.until, up=True) if request.HasField("until") else None,
            request.outcome)
        answer = self.core.audit.query(caller_of(context), filters, request.page_size,
                                       request.page_token)
        return admin_pb2.QueryAuditResponse(
            entries=[audit_entry_to_wire(e) for e in answer.entries],
            next_page_token=answer.next_page_token)


def _seconds(ts: Timestamp, *, up: bool) -> int:
    """Whole seconds (entries are stamped in seconds): a bound with a fraction keeps the
    second it falls in (``since`` rounds down, ``until`` up)."""
    return ts.seconds + (1 if up and ts.nanos > 0 else 0)


__all__ = ["AdminServicer"]
