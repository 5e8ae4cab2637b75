"""One servicer per idnode.v1 service: wire → core call → wire, nothing else.

Every decision (validation, rights, caching, signing, post-commit effects, audit) is in
:mod:`node.service`; a servicer reads the request, builds a :class:`Caller` from the
call's metadata, calls the core and encodes the answer. Errors are raised as the
core raised them; the handler wrapper in :mod:`node.rpc.server` maps them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from idnode.v1 import record_pb2, registry_pb2, resolver_pb2, sync_pb2
from node.errors import mapping_for
from node.observe.logs import event
from node.observe.metrics import Metrics
from node.rpc.template_wire import (
    MAX_ROW_VIOLATIONS,
    template_dict_from_wire,
    template_to_wire,
    violation_to_wire,
)
from node.rpc.wire import change_to_wire, keys_to_wire, values_from_wire
from node.security.certificates import ClientCertificate, client_certificate
from node.service.caller import Caller
from node.service.core import Core
from registry.errors import IdnodeError, InvalidArgument

_access = logging.getLogger("idnode.access")

_UPDATE_MODES = {registry_pb2.UpdateRequest.MODE_UNSPECIFIED: False,
                 registry_pb2.UpdateRequest.MODE_REPLACE: False,
                 registry_pb2.UpdateRequest.MODE_MERGE: True}


def caller_of(context: grpc.ServicerContext) -> Caller:
    """The caller as the core sees it: the authorization metadata, the peer and the
    client certificate the TLS handshake verified (mutual TLS), if any."""
    header: str | None = None
    for key, value in context.invocation_metadata():
        if key == "authorization":
            header = value if isinstance(value, str) else value.decode("latin-1")
            break
    return Caller(header, context.peer(), "grpc", peer_certificate(context))


def peer_certificate(context: grpc.ServicerContext) -> ClientCertificate | None:
    """The verified client certificate of the call's connection (None on plaintext or
    without mutual TLS: grpcio reports a peer certificate only when it required one)."""
    pems = context.auth_context().get("x509_pem_cert")
    return client_certificate(pems[0]) if pems else None


def _has_authorization(context: grpc.ServicerContext) -> bool:
    return any(key == "authorization" for key, _ in context.invocation_metadata())


def item_error(target: record_pb2.ItemError, exc: IdnodeError) -> None:
    """A per-item failure (BatchResolve, BulkRegister), coded by the one mapping table."""
    target.code = mapping_for(exc).code
    target.message = exc.message
    if isinstance(exc, InvalidArgument) and exc.violations:
        target.violations.extend(violation_to_wire(v)
                                 for v in exc.violations[:MAX_ROW_VIOLATIONS])


class Malformed:
    """Stands in for a request message that did not parse, so the handler can answer a
    clear INVALID_ARGUMENT (grpcio would turn a deserializer failure into INTERNAL)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def error(self, where: str = "") -> InvalidArgument:
        return InvalidArgument(f"{where}request is not a valid {self.name} "
                               "(malformed protobuf or a string that is not UTF-8)")


class ResolverServicer:
    """``client_certificates``: the door requires client certificates (mutual TLS), so
    every resolve goes through the credential step (a certificate may be a principal
    who sees private values) instead of the anonymous hot path."""

    def __init__(self, core: Core, metrics: Metrics, *,
                 access_log_sample_ratio: float = 0.0,
                 client_certificates: bool = False) -> None:
        self.core = core
        self.client_certificates = client_certificates
        self.metrics = metrics
        self._public = core.public
        self._admit = core.admit_public  # None unless the per-address resolve limit is on
        self._resolve_ok = metrics.resolve_ok
        self._resolve_duration = metrics.resolve_grpc_duration
        self._resolve_latency = metrics.resolve_latency
        self.access_log_ratio = access_log_sample_ratio

    def resolve_raw(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        """The hot path: bytes in, cached bytes out (returns None-free bytes or raises)."""
        started = time.perf_counter()
        try:
            request = resolver_pb2.ResolveRequest.FromString(raw)
        except DecodeError:
            raise Malformed("idnode.v1.ResolveRequest").error() from None
        if not request.nonce and not request.types and not request.indexes \
                and not self.client_certificates and not _has_authorization(context):
            if self._admit is not None:
                self._admit(context.peer())
            out = self._public(request.handle).response
        else:
            entry = self.core.resolve(caller_of(context), request.handle,
                                      types=request.types, indexes=request.indexes)
            out = (self.core.with_nonce(entry, request.nonce) if request.nonce
                   else entry.response)
        elapsed = time.perf_counter() - started
        self._resolve_ok.inc()
        self._resolve_duration.observe(elapsed)
        self._resolve_latency.observe(elapsed)
        if self.access_log_ratio and random.random() < self.access_log_ratio:
            event(_access, "resolve", handle=request.handle, code="OK",
                  duration_us=round(elapsed * 1e6), peer=context.peer())
        return out or b""

    def batch_resolve(self, request: resolver_pb2.BatchResolveRequest,
                      context: grpc.ServicerContext) -> resolver_pb2.BatchResolveResponse:
        response = resolver_pb2.BatchResolveResponse()
        answers = self.core.batch_resolve(caller_of(context), list(request.handles))
        for text, answer in zip(request.handles, answers, strict=True):
            result = response.results.add(handle=text)
            if isinstance(answer, IdnodeError):
                item_error(result.error, answer)
                continue
            result.record.payload = answer.payload
            result.record.signature = answer.signature
            result.record.key_id = answer.key_id
            result.record.algorithm = answer.algorithm
        return response

    def get_signing_keys(self, request: resolver_pb2.GetSigningKeysRequest,
                         context: grpc.ServicerContext) -> resolver_pb2.GetSigningKeysResponse:
        return resolver_pb2.GetSigningKeysResponse(keys=keys_to_wire(self.core.signing_keys()))


class RegistryServicer:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.writes = core.writes

    def register(self, request: registry_pb2.RegisterRequest,
                 context: grpc.ServicerContext) -> registry_pb2.RegisterResponse:
        result = self.writes.register(caller_of(context), request.handle,
                                      values_from_wire(request.values), request.request_id)
        return registry_pb2.RegisterResponse(handle=result.handle, version=result.version,
                                             etag=result.etag)

    def update(self, request: registry_pb2.UpdateRequest,
               context: grpc.ServicerContext) -> registry_pb2.UpdateResponse:
        if request.mode not in _UPDATE_MODES:
            exc = InvalidArgument(f"mode {request.mode} is not one of MODE_REPLACE (1) "
                                  "or MODE_MERGE (2)")
            self.writes.refused(caller_of(context), "update", exc, handle=request.handle,
                                request_id=request.request_id)
            raise exc
        result = self.writes.update(caller_of(context), request.handle,
                                    values_from_wire(request.values), request.etag,
                                    merge=_UPDATE_MODES[request.mode],
                                    request_id=request.request_id)
        return registry_pb2.UpdateResponse(handle=result.handle, version=result.version,
                                           etag=result.etag)

    def delete(self, request: registry_pb2.DeleteRequest,
               context: grpc.ServicerContext) -> registry_pb2.DeleteResponse:
        result = self.writes.delete(caller_of(context), request.handle, request.etag,
                                    request.indexes, request.request_id)
        return registry_pb2.DeleteResponse(handle=result.handle, version=result.version,
                                           etag=result.etag)

    def list(self, request: registry_pb2.ListRequest,
             context: grpc.ServicerContext) -> registry_pb2.ListResponse:
        handles, token = self.core.list_handles(caller_of(context), request.prefix,
                                        request.page_size, request.page_token)
        return registry_pb2.ListResponse(handles=handles, next_page_token=token)

    def bulk_register(self, requests: Iterator[Any],
                      context: grpc.ServicerContext) -> registry_pb2.BulkRegisterResponse:
        """Rows commit in chunks as they arrive; a bad row fails alone and is reported by
        its 0-based position. A message that does not parse ends the call with
        INVALID_ARGUMENT naming it and saying how many rows were stored before it."""
        session = self.writes.bulk(caller_of(context))
        for number, request in enumerate(requests):
            if isinstance(request, Malformed):
                session.flush()
                outcome = session.finish(request.error())
                raise InvalidArgument(
                    f"message {number} of the stream is not a valid "
                    f"{request.name}; every row before it was processed: "
                    f"{outcome.accepted} stored, {len(outcome.failures)} refused; "
                    "nothing after it was read")
            if request.report_unchanged and not session.report_unchanged:
                session.flush()  # rows before this message are judged as they were sent
                session.report_unchanged = True
            if request.handle or request.values:
                session.add(request.handle, _values_or_error(request.values))
            for item in request.rows:
                session.add(item.handle, _values_or_error(item.values))
        outcome = session.finish()
        response = registry_pb2.BulkRegisterResponse(accepted=outcome.accepted,
                                                     unchanged=outcome.unchanged)
        for failure in outcome.failures:
            item_error(response.failures.add(row=failure.row, handle=failure.handle).error,
                       failure.error)
        return response

    def allocate_prefix(self, request: registry_pb2.AllocatePrefixRequest,
                        context: grpc.ServicerContext) -> registry_pb2.AllocatePrefixResponse:
        allocation = self.writes.allocate_prefix(caller_of(context), request.prefix,
                                                 request.owner_secret)
        return registry_pb2.AllocatePrefixResponse(prefix=allocation.prefix,
                                                   owner=allocation.owner,
                                                   owner_secret=allocation.generated_secret)

    # --- metadata templates ------------------------------------------------------------

    def put_template(self, request: registry_pb2.PutTemplateRequest,
                     context: grpc.ServicerContext) -> registry_pb2.PutTemplateResponse:
        stored = self.core.templates.put(caller_of(context), request.prefix,
                                         template_dict_from_wire(request.template))
        return registry_pb2.PutTemplateResponse(prefix=stored.prefix.text,
                                                template=template_to_wire(stored))

    def get_template(self, request: registry_pb2.GetTemplateRequest,
                     context: grpc.ServicerContext) -> registry_pb2.GetTemplateResponse:
        found = self.core.templates.get(caller_of(context), request.prefix, request.version)
        return registry_pb2.GetTemplateResponse(prefix=found.prefix.text,
                                                template=template_to_wire(found))

    def list_templates(self, request: registry_pb2.ListTemplatesRequest,
                       context: grpc.ServicerContext) -> registry_pb2.ListTemplatesResponse:
        found = self.core.templates.list(caller_of(context), request.prefix)
        return registry_pb2.ListTemplatesResponse(templates=[template_to_wire(t)
                                                             for t in found])

    def publish_template(self, request: registry_pb2.PublishTemplateRequest,
                         context: grpc.ServicerContext) -> registry_pb2.PublishTemplateResponse:
        done = self.core.templates.publish(caller_of(context), request.prefix, request.version)
        return registry_pb2.PublishTemplateResponse(template=template_to_wire(done))

    def withdraw_template(
            self, request: registry_pb2.WithdrawTemplateRequest,
            context: grpc.ServicerContext) -> registry_pb2.WithdrawTemplateResponse:
        done = self.core.templates.withdraw(caller_of(context), request.prefix,
                                            request.version)
        return registry_pb2.WithdrawTemplateResponse(template=template_to_wire(done))


def _values_or_error(values: Any) -> Any:
    try:
        return values_from_wire(values)
    except IdnodeError as exc:
        return exc


class SyncServicer:
    def __init__(self, core: Core) -> None:
        self.core = core

    def watch_changes(self, request: sync_pb2.WatchChangesRequest,
                      context: grpc.ServicerContext) -> Iterator[sync_pb2.WatchChangesResponse]:
        changes = self.core.follow.changes(caller_of(context), request.sequence,
                                           request.prefix, context.is_active)
        for change in changes:
            yield sync_pb2.WatchChangesResponse(
                change=change_to_wire(change, self.core.sign_change(change)))

    def get_stats(self, request: sync_pb2.GetStatsRequest,
                  context: grpc.ServicerContext) -> sync_pb2.GetStatsResponse:
        stats = self.core.stats()
        return sync_pb2.GetStatsResponse(prefixes=stats.prefixes,
                                         identifiers=stats.identifiers,
                                         sequence=stats.sequence)


__all__ = ["Malformed", "RegistryServicer", "ResolverServicer", "SyncServicer", "caller_of",
           "item_error"]
