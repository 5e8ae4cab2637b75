"""The idnode.v1.Admin servicer: tokens, prefix applications, the audit log.

Like every servicer it only translates wire ⇄ core; the decisions live in
:mod:`node.service` (tokens, applications, audit).
"""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from idnode.v1 import admin_pb2
from node.errors import Unimplemented
from node.rpc.servicers import caller_of
from node.service.core import Core
from registry.access.tokens import StoredToken


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
        raise Unimplemented("ApplyPrefix is not implemented by this node yet")

    def list_applications(self, request: admin_pb2.ListApplicationsRequest,
                          context: grpc.ServicerContext) -> admin_pb2.ListApplicationsResponse:
        raise Unimplemented("ListApplications is not implemented by this node yet")

    def approve_application(
            self, request: admin_pb2.ApproveApplicationRequest,
            context: grpc.ServicerContext) -> admin_pb2.ApproveApplicationResponse:
        raise Unimplemented("ApproveApplication is not implemented by this node yet")

    def reject_application(
            self, request: admin_pb2.RejectApplicationRequest,
            context: grpc.ServicerContext) -> admin_pb2.RejectApplicationResponse:
        raise Unimplemented("RejectApplication is not implemented by this node yet")

    # --- audit -------------------------------------------------------------------------

    def query_audit(self, request: admin_pb2.QueryAuditRequest,
                    context: grpc.ServicerContext) -> admin_pb2.QueryAuditResponse:
        raise Unimplemented("QueryAudit is not implemented by this node yet")


__all__ = ["AdminServicer"]
