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
from node.rpc.wire import audit_entry_to_wire
from node.service.audit import AuditFilter
from node.service.core import Core


class AdminServicer:
    """One method per Admin RPC (see proto/idnode/v1/admin.proto)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # --- tokens ------------------------------------------------------------------------

    def create_token(self, request: admin_pb2.CreateTokenRequest,
                     context: grpc.ServicerContext) -> admin_pb2.CreateTokenResponse:
        raise Unimplemented("CreateToken is not implemented by this node yet")

    def list_tokens(self, request: admin_pb2.ListTokensRequest,
                    context: grpc.ServicerContext) -> admin_pb2.ListTokensResponse:
        raise Unimplemented("ListTokens is not implemented by this node yet")

    def revoke_token(self, request: admin_pb2.RevokeTokenRequest,
                     context: grpc.ServicerContext) -> admin_pb2.RevokeTokenResponse:
        raise Unimplemented("RevokeToken is not implemented by this node yet")

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
