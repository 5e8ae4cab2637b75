"""The gRPC server: the handler table of idnode.v1, health and reflection.

Handlers are registered (not generic) so that ``Resolve`` can take and return raw bytes:
its hot path parses the small request and returns the cached serialised answer without
re-encoding. Every handler is wrapped once here: count, time, and translate whatever the
core raised through the one table in :mod:`node.errors`. The servicers
(:mod:`node.rpc.servicers`) only translate wire ⇄ core.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from idnode.v1 import admin_pb2, record_pb2, registry_pb2, resolver_pb2, sync_pb2
from node.errors import mapping_for, public_message, retry_after
from node.observe.metrics import Metrics
from node.rpc.admin import AdminServicer
from node.rpc.servicers import (
    Malformed,
    RegistryServicer,
    ResolverServicer,
    SyncServicer,
    caller_of,
)
from node.rpc.template_wire import violations_to_wire
from node.security.tls import KeyPair, TlsFiles
from node.service.core import Core
from registry.errors import IdnodeError, InvalidArgument, NotFound

log = logging.getLogger("idnode.grpc")

SERVICES = ("idnode.v1.Resolver", "idnode.v1.Registry", "idnode.v1.Sync", "idnode.v1.Admin")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
REFERRAL_METADATA = "idnode-referral-bin"
# Seconds (a whole number, rounded up) after which a RESOURCE_EXHAUSTED call may succeed.
RETRY_AFTER_METADATA = "retry-after"
# idnode.v1.Violations of an INVALID_ARGUMENT that had several rules to report (a record
# against its metadata template, a template being put).
VIOLATIONS_METADATA = "idnode-violations-bin"
# Unary write methods: a request refused before it reached the core (it did not parse)
# is audited here, since the core never saw it.
_WRITES = {"Register": "register", "Update": "update", "Delete": "delete",
           "AllocatePrefix": "allocate-prefix", "ApplyPrefix": "apply-prefix",
           "PutTemplate": "put-template", "PublishTemplate": "publish-template",
           "WithdrawTemplate": "withdraw-template",
           "ApproveApplication": "approve-application",
           "RejectApplication": "reject-application"}


class Services:
    """The three servicers over one core, and the metrics their wrappers feed."""

    def __init__(self, core: Core, metrics: Metrics, *,
                 access_log_sample_ratio: float = 0.0,
                 client_certificates: bool = False) -> None:
        self.core = core
        self.metrics = metrics
        self.resolver = ResolverServicer(core, metrics,
                                         access_log_sample_ratio=access_log_sample_ratio,
                                         client_certificates=client_certificates)
        self.registry = RegistryServicer(core)
        self.sync = SyncServicer(core)
        self.admin = AdminServicer(core)

    def stop_followers(self) -> None:
        self.core.follow.stop()

    def duration(self, method: str, started: float) -> None:
        self.metrics.duration(method).observe(time.perf_counter() - started)

    def failed(self, method: str, exc: BaseException,
               context: grpc.ServicerContext) -> NoReturn:
        """Count, log internal errors, attach a referral or a retry hint, answer with the
        mapped status."""
        mapping = mapping_for(exc)
        self.metrics.request(method, mapping.status).inc()
        if not isinstance(exc, IdnodeError):
            log.error("unexpected error in %s", method, exc_info=exc)
        elif isinstance(exc, NotFound) and exc.referral_prefix:
            referral = record_pb2.Referral(prefix=exc.referral_prefix)
            context.set_trailing_metadata(((REFERRAL_METADATA,
                                            referral.SerializeToString()),))
        elif isinstance(exc, InvalidArgument) and exc.violations:
            context.set_trailing_metadata(((VIOLATIONS_METADATA, violations_to_wire(
                exc.violations).SerializeToString()),))
        else:
            seconds = retry_after(exc)
            if seconds is not None:
                context.set_trailing_metadata(((RETRY_AFTER_METADATA, str(seconds)),))
        context.abort(grpc.StatusCode[mapping.status], public_message(exc))
        raise AssertionError("unreachable")  # pragma: no cover


Handler = Callable[[Any, grpc.ServicerContext], Any]


def _timed(services: Services, method: str, fn: Handler) -> Handler:
    """Count and time a call, and translate its error through the one mapping table."""
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            response = fn(request, context)
        except Exception as exc:
            services.duration(method, started)
            services.failed(method, exc, context)
        services.metrics.request(method, "OK").inc()
        services.duration(method, started)
        return response
    return handler


def _resolve(services: Services) -> Handler:
    """The hot path's own wrapper: the servicer counts and times successes itself (with
    pre-bound metric children); only failures pass through here."""
    resolve_raw = services.resolver.resolve_raw

    def handler(raw: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            return resolve_raw(raw, context)
        except Exception as exc:
            services.failed("Resolve", exc, context)
    return handler


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _deserializer(request_type: type[Message]) -> Callable[[bytes], Any]:
    """Parse a request; a message that does not parse becomes :class:`Malformed`, which
    the handler answers with INVALID_ARGUMENT (grpcio would answer INTERNAL)."""
    name = request_type.DESCRIPTOR.full_name

    def parse(raw: bytes) -> Any:
        try:
            return request_type.FromString(raw)
        except DecodeError:
            return Malformed(name)
    return parse


def _guard(services: Services, method: str, fn: Handler) -> Handler:
    """Refuse a request that did not parse before the servicer sees it (audited for
    writes, which the core never saw)."""
    operation = _WRITES.get(method)

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            exc = request.error()
            if operation is not None:
                services.core.writes.refused(caller_of(context), operation, exc)
            raise exc
        return fn(request, context)
    return guarded


def _stream_out(services: Services, method: str, fn: Handler) -> Handler:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Message]:
        try:
            if isinstance(request, Malformed):
                raise request.error()
            yield from fn(request, context)
        except Exception as exc:
            services.failed(method, exc, context)
        services.metrics.request(method, "OK").inc()
    return handler


def handlers(services: Services) -> dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]:
    """Every idnode.v1 method's handler, by service."""
    def unary(method: str, fn: Handler,
              request_type: type[Message]) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            _timed(services, method, _guard(services, method, fn)),
            request_deserializer=_deserializer(request_type), response_serializer=_serialize)

    r, g, s = services.resolver, services.registry, services.sync
    resolver = {
        "Resolve": grpc.unary_unary_rpc_method_handler(_resolve(services)),
        "BatchResolve": unary("BatchResolve", r.batch_resolve,
                              resolver_pb2.BatchResolveRequest),
        "GetSigningKeys": unary("GetSigningKeys", r.get_signing_keys,
                                resolver_pb2.GetSigningKeysRequest),
    }
    registry = {
        "Register": unary("Register", g.register, registry_pb2.RegisterRequest),
        "Update": unary("Update", g.update, registry_pb2.UpdateRequest),
        "Delete": unary("Delete", g.delete, registry_pb2.DeleteRequest),
        "List": unary("List", g.list, registry_pb2.ListRequest),
        "BulkRegister": grpc.stream_unary_rpc_method_handler(
            _timed(services, "BulkRegister", g.bulk_register),
            request_deserializer=_deserializer(registry_pb2.BulkRegisterRequest),
            response_serializer=_serialize),
        "AllocatePrefix": unary("AllocatePrefix", g.allocate_prefix,
                                registry_pb2.AllocatePrefixRequest),
        "PutTemplate": unary("PutTemplate", g.put_template, registry_pb2.PutTemplateRequest),
        "GetTemplate": unary("GetTemplate", g.get_template, registry_pb2.GetTemplateRequest),
        "ListTemplates": unary("ListTemplates", g.list_templates,
                               registry_pb2.ListTemplatesRequest),
        "PublishTemplate": unary("PublishTemplate", g.publish_template,
                                 registry_pb2.PublishTemplateRequest),
        "WithdrawTemplate": unary("WithdrawTemplate", g.withdraw_template,
                                  registry_pb2.WithdrawTemplateRequest),
    }
    sync = {
        "WatchChanges": grpc.unary_stream_rpc_method_handler(
            _stream_out(services, "WatchChanges", s.watch_changes),
            request_deserializer=_deserializer(sync_pb2.WatchChangesRequest),
            response_serializer=_serialize),
        "GetStats": unary("GetStats", s.get_stats, sync_pb2.GetStatsRequest),
    }
    a = services.admin
    admin = {
        "CreateToken": unary("CreateToken", a.create_token, admin_pb2.CreateTokenRequest),
        "ListTokens": unary("ListTokens", a.list_tokens, admin_pb2.ListTokensRequest),
        "RevokeToken": unary("RevokeToken", a.revoke_token, admin_pb2.RevokeTokenRequest),
        "ApplyPrefix": unary("ApplyPrefix", a.apply_prefix, admin_pb2.ApplyPrefixRequest),
        "ListApplications": unary("ListApplications", a.list_applications,
                                  admin_pb2.ListApplicationsRequest),
        "ApproveApplication": unary("ApproveApplication", a.approve_application,
                                    admin_pb2.ApproveApplicationRequest),
        "RejectApplication": unary("RejectApplication", a.reject_application,
                                   admin_pb2.RejectApplicationRequest),
        "QueryAudit": unary("QueryAudit", a.query_audit, admin_pb2.QueryAuditRequest),
    }
    return {"idnode.v1.Resolver": resolver, "idnode.v1.Registry": registry,
            "idnode.v1.Sync": sync, "idnode.v1.Admin": admin}


def build_server(services: Services, *, threads: int, max_concurrent_rpcs: int | None = None,
                 reuse_port: bool = False) -> tuple[grpc.Server, health.HealthServicer]:
    """A thread-pool gRPC server with idnode.v1, health and reflection."""
    options = [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads,
                                                    thread_name_prefix="grpc"),
                         options=options, maximum_concurrent_rpcs=max_concurrent_rpcs)
    # Registered (not generic) handlers: the core matches the method, no per-call
    # lookup through a handler list. Measured equal to generic within noise.
    for service, methods in handlers(services).items():
        server.add_registered_method_handlers(service, methods)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    return server, health_servicer


def add_port(server: grpc.Server, listen: str, tls: TlsFiles | None = None, *,
             require_client_certificate: bool = False) -> int:
    """Bind ``listen`` (the port, 0 when it cannot be bound): plaintext, or TLS with the
    pair in ``tls``, which grpcio asks for on every new connection — a reloaded pair is
    handed over once, so new connections get it and open ones keep theirs. With
    ``require_client_certificate`` a client must present a certificate chaining to
    tls_client_ca_file (grpcio offers no "optional": it asks and requires, or never asks).
    """
    if tls is None:
        return server.add_insecure_port(listen)
    roots = tls.client_ca_pem if require_client_certificate else None
    handed = [tls.current.generation]

    def configuration(pair: KeyPair) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(pair.key_pem, pair.cert_chain_pem)], root_certificates=roots)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        pair = tls.current
        if pair.generation == handed[0]:
            return None  # unchanged: keep serving the current one
        handed[0] = pair.generation
        return configuration(pair)

    credentials = grpc.dynamic_ssl_server_credentials(
        # grpcio documents None as "no change"; the stubs do not say so.
        configuration(tls.current), fetch,  # type: ignore[arg-type]
        require_client_authentication=require_client_certificate)
    return server.add_secure_port(listen, credentials)


__all__ = ["Services", "add_port", "build_server", "handlers"]
