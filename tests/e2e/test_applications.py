"""Enterprise onboarding through the real gRPC server: an enterprise applies for a prefix
(anonymously), a reviewer approves it (the prefix, its admin identity and its prefix
handle appear in one commit, the secret is shown once) or rejects it with a reason."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import grpc
import pytest

from idnode.v1 import admin_pb2, admin_pb2_grpc, record_pb2, registry_pb2, resolver_pb2
from node.app import Node
from tests.conftest import ADMIN, Client, basic
from tests.e2e.helpers import cli

PENDING = admin_pb2.Application.STATE_PENDING
APPROVED = admin_pb2.Application.STATE_APPROVED
REJECTED = admin_pb2.Application.STATE_REJECTED
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [pow(3, i, 31) for i in range(17)]


def credit_code(body: str) -> str:
    """A valid code: ``body`` (17 characters) and its GB 32100-2015 check character."""
    total = sum(ALPHABET.index(c) * w for c, w in zip(body, WEIGHTS, strict=True))
    return body + ALPHABET[(31 - total % 31) % 31]


def enterprise(code: str = "", **fields: str) -> admin_pb2.Enterprise:
    return admin_pb2.Enterprise(**{
        "name": "福州某某机械有限公司", "credit_code": code or credit_code("91350100M000100Y4"),
        "contact_name": "张三", "contact_phone": "13800138000",
        "contact_email": "zhang@example.com", "industry": "C34 通用设备制造业",
        "address": "福建省福州市", **fields})


class Onboarding(Client):
    """The node's stubs plus Admin, and the calls the tests repeat."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def apply(self, prefix: str, request_id: str = "",
              metadata: tuple[tuple[str, str], ...] = (),
              details: dict[str, str] | None = None) -> Any:
        return self.admin.ApplyPrefix(admin_pb2.ApplyPrefixRequest(
            prefix=prefix, enterprise=enterprise(**(details or {})), request_id=request_id),
            metadata=metadata, timeout=10).application

    def approve(self, application_id: str, metadata: tuple[tuple[str, str], ...] = ADMIN,
                note: str = "") -> Any:
        return self.admin.ApproveApplication(admin_pb2.ApproveApplicationRequest(
            application_id=application_id, note=note), metadata=metadata, timeout=30)

    def listed(self, state: int = 0, metadata: tuple[tuple[str, str], ...] = ADMIN,
               page_size: int = 0, page_token: str = "") -> Any:
        request = admin_pb2.ListApplicationsRequest(page_size=page_size,
                                                    page_token=page_token)
        request.state = state  # type: ignore[assignment]  # any number, as on the wire
        return self.admin.ListApplications(request, metadata=metadata, timeout=10)

    def resolve(self, handle: str) -> Any:
        return self.resolver.Resolve(resolver_pb2.ResolveRequest(handle=handle), timeout=10)


@pytest.fixture
def c(node: Node) -> Iterator[Onboarding]:
    client = Onboarding(f"127.0.0.1:{node.grpc_port}")
    yield client
    client.close()


class Refusal(NamedTuple):
    code: grpc.StatusCode
    details: str


def refused(call: Callable[[], object]) -> Refusal:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return Refusal(caught.value.code(), caught.value.details() or "")


def test_an_anonymous_enterprise_applies_and_its_application_is_pending(
        c: Onboarding) -> None:
    first = c.apply("88.118.9", request_id="acme-2026-01")
    assert first.state == PENDING and first.prefix == "88.118.9" and first.application_id
    assert first.enterprise.credit_code == credit_code("91350100M000100Y4")
    assert first.submitted_at.seconds > 0 and not first.HasField("decided_at")
    # A retry with the same request id is the same application, not a second one.
    assert c.apply("88.118.9", request_id="acme-2026-01") == first
    other = refused(lambda: c.apply("88.118.9", request_id="acme-2026-01",
                                    details={"name": "另一家公司"}))
    assert other.code == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in other.details
    # One pending application per prefix; none for an allocated prefix.
    again = refused(lambda: c.apply("88.118.9"))
    assert again.code == grpc.StatusCode.ALREADY_EXISTS
    assert "pending application" in again.details
    c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(prefix="88.118.7"),
                              metadata=ADMIN, timeout=30)
    taken = refused(lambda: c.apply("88.118.7"))
    assert taken.code == grpc.StatusCode.ALREADY_EXISTS
    assert "already allocated" in taken.details
    outside = refused(lambda: c.apply("88.119.1"))
    assert outside.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not under the node prefix 88.118" in outside.details


@pytest.mark.parametrize(("fields", "rule"), [
    ({"code": "91350100M000100Y44"}, "credit_code check character (position 18)"),
    ({"code": "91350100I000100Y43"}, "credit_code character 9 ('I') is not allowed"),
    ({"code": "9135010"}, "credit_code must be 18 characters long"),
    ({"contact_email": "nobody"}, "contact_email must be an e-mail address"),
    ({"name": ""}, "name is required"),
    ({"industry": "x" * 101}, "industry is at most 100 characters"),
])
def test_bad_details_are_invalid_argument_naming_the_field_and_rule(
        c: Onboarding, fields: dict[str, str], rule: str) -> None:
    error = refused(lambda: c.apply("88.118.9", details=fields))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in error.details


def test_listing_applications_needs_a_reviewer(c: Onboarding) -> None:
    applied = c.apply("88.118.9")
    anonymous = refused(lambda: c.listed(metadata=()))
    assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED
    owner = c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(prefix="88.118.7"),
                                      metadata=ADMIN, timeout=30)
    as_owner = basic("300:88.118.7/ADMIN", owner.owner_secret)
    denied = refused(lambda: c.listed(metadata=as_owner))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    for call in (lambda: c.approve(applied.application_id, metadata=as_owner),
                 lambda: c.admin.RejectApplication(admin_pb2.RejectApplicationRequest(
                     application_id=applied.application_id, reason="no"),
                     metadata=as_owner, timeout=10)):
        assert refused(call).code == grpc.StatusCode.PERMISSION_DENIED
    wrong = refused(lambda: c.listed(metadata=basic("300:88.118/ADMIN", "not-the-secret-1")))
    assert wrong.code == grpc.StatusCode.UNAUTHENTICATED
    assert [a.application_id for a in c.listed().applications] == [applied.application_id]


def test_applications_are_listed_newest_first_by_state_in_pages(c: Onboarding) -> None:
    ids = [c.apply(f"88.118.{n}").application_id for n in range(10, 15)]
    c.admin.RejectApplication(admin_pb2.RejectApplicationRequest(
        application_id=ids[0], reason="duplicate"), metadata=ADMIN, timeout=10)
    seen: list[str] = []
    token = ""
    while True:
        page = c.listed(page_size=2, page_token=token)
        seen += [a.application_id for a in page.applications]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]
    assert [a.application_id for a in c.listed(PENDING).applications] == ids[:0:-1]
    assert [a.application_id for a in c.listed(REJECTED).applications] == [ids[0]]
    mixed = refused(lambda: c.listed(REJECTED, page_token=c.listed(
        page_size=1).next_page_token))
    assert mixed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused(lambda: c.listed(7)).code == grpc.StatusCode.INVALID_ARGUMENT


def test_an_approved_application_gives_the_enterprise_its_prefix_and_admin_identity(
        c: Onboarding) -> None:
    applied = c.apply("88.118.9")
    approval = c.approve(applied.application_id, note="licence checked")
    assert approval.owner == "300:88.118.9/ADMIN" and len(approval.owner_secret) >= 12
    got = approval.application
    assert (got.state, got.reviewer, got.reason) == (APPROVED, "300:88.118/ADMIN",
                                                     "licence checked")
    assert got.decided_at.seconds >= got.submitted_at.seconds
    # The enterprise's admin logs in with the secret shown once and registers its parts.
    owner = basic(approval.owner, approval.owner_secret)
    made = c.register("88.118.9/PN-0001", ("URL", "https://example.com/p/1"),
                      metadata=owner)
    assert made.version == 1
    assert refused(lambda: c.register("88.118.8/PN-0001", ("URL", "https://x"),
                                      metadata=owner)).code == \
        grpc.StatusCode.PERMISSION_DENIED  # only its own prefix
    # The prefix handle resolves, naming the admin; the secret is never answered.
    prefix_handle = record_pb2.Record.FromString(c.resolve("0.NA/88.118.9").record.payload)
    assert [(v.index, v.type) for v in prefix_handle.values] == [(100, "HS_ADMIN"),
                                                                (200, "HS_VLIST")]
    admin_record = c.resolve("88.118.9/ADMIN").record.payload
    assert approval.owner_secret.encode() not in admin_record
    assert [a.state for a in c.listed(APPROVED).applications] == [APPROVED]


def test_an_application_is_approved_once_even_by_concurrent_reviewers(
        c: Onboarding) -> None:
    applied = c.apply("88.118.9")
    outcomes: list[grpc.StatusCode] = []
    secrets: list[str] = []
    barrier = threading.Barrier(4)

    def approve() -> None:
        barrier.wait(10)
        try:
            secrets.append(c.approve(applied.application_id).owner_secret)
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            outcomes.append(exc.code())

    threads = [threading.Thread(target=approve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o.name for o in outcomes) == ["ABORTED"] * 3 + ["OK"]
    # The winner's secret is the one that works.
    c.register("88.118.9/PN-1", ("URL", "https://x"),
               metadata=basic("300:88.118.9/ADMIN", secrets[0]))
    late = refused(lambda: c.approve(applied.application_id))
    assert late.code == grpc.StatusCode.ABORTED and "already approved" in late.details


def test_a_rejected_application_keeps_its_reason_and_allocates_nothing(
        c: Onboarding) -> None:
    applied = c.apply("88.118.9")
    no_reason = refused(lambda: c.admin.RejectApplication(admin_pb2.RejectApplicationRequest(
        application_id=applied.application_id, reason=" "), metadata=ADMIN, timeout=10))
    assert no_reason.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason is required" in no_reason.details
    rejected = c.admin.RejectApplication(admin_pb2.RejectApplicationRequest(
        application_id=applied.application_id, reason="营业执照与名称不符"), metadata=ADMIN,
        timeout=10).application
    assert (rejected.state, rejected.reason) == (REJECTED, "营业执照与名称不符")
    listed = c.listed(REJECTED).applications
    assert [(a.application_id, a.reason) for a in listed] == [
        (applied.application_id, "营业执照与名称不符")]
    assert refused(lambda: c.approve(applied.application_id)).code == \
        grpc.StatusCode.ABORTED
    assert refused(lambda: c.resolve("0.NA/88.118.9")).code == grpc.StatusCode.NOT_FOUND
    assert c.apply("88.118.9").state == PENDING  # the enterprise may apply again
    unknown = refused(lambda: c.approve("0123456789abcdef"))
    assert unknown.code == grpc.StatusCode.NOT_FOUND


def test_a_reviewer_granted_on_the_node_prefix_handle_can_approve(c: Onboarding) -> None:
    reviewer = basic("300:88.118/REVIEWER", "reviewer-secret-0001")
    # An identity: an identifier holding an HS_SECKEY at index 300.
    c.registry.Register(registry_pb2.RegisterRequest(handle="88.118/REVIEWER", values=[
        record_pb2.Value(index=300, type="HS_SECKEY", text="reviewer-secret-0001")]),
        metadata=ADMIN, timeout=10)
    applied = c.apply("88.118.9")
    assert refused(lambda: c.listed(metadata=reviewer)).code == \
        grpc.StatusCode.PERMISSION_DENIED
    # The node admin grants add_derived_prefix (bit 2 only) on 0.NA/88.118.
    etag = c.resolve("0.NA/88.118").etag
    c.registry.Update(registry_pb2.UpdateRequest(
        handle="0.NA/88.118", etag=etag, mode=registry_pb2.UpdateRequest.MODE_MERGE,
        values=[record_pb2.Value(index=101, type="HS_ADMIN", admin=record_pb2.AdminRef(
            handle="88.118/REVIEWER", index=300, permissions="000000000100"))]),
        metadata=ADMIN, timeout=10)
    assert [a.application_id for a in c.listed(metadata=reviewer).applications] == [
        applied.application_id]
    approval = c.approve(applied.application_id, metadata=reviewer)
    assert approval.application.reviewer == "300:88.118/REVIEWER"
    c.register("88.118.9/PN-1", ("URL", "https://x"),
               metadata=basic(approval.owner, approval.owner_secret))
    # Reviewing is all the grant gives: no registering under the node prefix.
    assert refused(lambda: c.register("88.118/PN-1", ("URL", "https://x"),
                                      metadata=reviewer)).code == \
        grpc.StatusCode.PERMISSION_DENIED


def test_every_step_of_onboarding_is_audited_without_the_contact_details(
        c: Onboarding, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="idnode.audit")
    applied = c.apply("88.118.9", request_id="acme-1")
    refused(lambda: c.apply("88.118.9", details={"code": "91350100M000100Y44"}))
    approval = c.approve(applied.application_id)
    refused(lambda: c.approve(applied.application_id))
    second = c.apply("88.118.10")
    c.admin.RejectApplication(admin_pb2.RejectApplicationRequest(
        application_id=second.application_id, reason="incomplete"), metadata=ADMIN,
        timeout=10)
    lines = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records
             if r.name == "idnode.audit"]
    steps = [(m, f.get("method", "")) for m, f in lines]
    assert steps == [("apply-prefix", ""), ("write refused", "apply-prefix"),
                     ("approve-application", ""), ("write refused", "approve-application"),
                     ("apply-prefix", ""), ("reject-application", "")]
    first = lines[0][1]
    assert (first["application"], first["prefix"], first["request_id"]) == (
        applied.application_id, "88.118.9", "acme-1")
    approved = lines[2][1]
    assert (approved["owner"], approved["principal"]) == (approval.owner, "300:88.118/ADMIN")
    assert lines[5][1]["application"] == second.application_id
    text = repr(lines)
    assert "13800138000" not in text and "zhang@example.com" not in text
    assert approval.owner_secret not in text


def test_approving_a_prefix_allocated_meanwhile_is_already_exists_and_stays_pending(
        c: Onboarding) -> None:
    applied = c.apply("88.118.9")
    c.registry.AllocatePrefix(registry_pb2.AllocatePrefixRequest(prefix="88.118.9"),
                              metadata=ADMIN, timeout=30)
    taken = refused(lambda: c.approve(applied.application_id))
    assert taken.code == grpc.StatusCode.ALREADY_EXISTS
    assert "already allocated" in taken.details and "reject it" in taken.details
    assert [a.state for a in c.listed().applications] == [PENDING]
    c.admin.RejectApplication(admin_pb2.RejectApplicationRequest(
        application_id=applied.application_id, reason="allocated directly"),
        metadata=ADMIN, timeout=10)
    assert [a.state for a in c.listed().applications] == [REJECTED]


# --- the idnode prefix commands ------------------------------------------------------------


def test_cli_round_trip_apply_list_approve(node: Node) -> None:
    code = credit_code("91350100M000100Y4")
    anonymous = {"IDNODE_IDENTITY": "", "IDNODE_SECRET": ""}
    status, out = cli(node, "prefix", "apply", "88.118.9", "--name", "福州某某机械有限公司",
                      "--credit-code", code, "--contact-name", "张三", "--contact-phone",
                      "13800138000", "--contact-email", "zhang@example.com", "--industry",
                      "C34 通用设备制造业", env=anonymous)
    assert status == 0, out
    assert "for prefix 88.118.9: pending" in out
    application_id = out.split()[1]
    status, out = cli(node, "prefix", "list", "--state", "pending")
    assert status == 0 and application_id in out and code in out, out
    status, out = cli(node, "prefix", "list", "--json")
    assert status == 0, out
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(a["application_id"], a["state"], a["enterprise"]["credit_code"],
             a["decided_at"]) for a in listed] == [(application_id, "pending", code, None)]
    status, out = cli(node, "prefix", "list", env=anonymous)
    assert status == 1 and "UNAUTHENTICATED" in out, out
    status, out = cli(node, "prefix", "approve", application_id, "--note", "licence seen")
    assert status == 0, out
    assert "owner identity: 300:88.118.9/ADMIN" in out
    assert "shown only this once" in out
    secret = next(line.split()[-1] for line in out.splitlines()
                  if line.startswith("owner secret:"))
    status, out = cli(node, "register", "88.118.9/PN-0001", "URL=https://example.com/p/1",
                      env={"IDNODE_IDENTITY": "300:88.118.9/ADMIN", "IDNODE_SECRET": secret})
    assert status == 0 and "registered 88.118.9/PN-0001" in out, out
    status, out = cli(node, "prefix", "list", "--state", "approved")
    assert status == 0 and "approved by 300:88.118/ADMIN: licence seen" in out, out
    status, out = cli(node, "prefix", "approve", application_id)
    assert status == 1 and "ABORTED" in out, out


def test_cli_reject_needs_a_reason_and_a_bad_code_names_the_rule(node: Node) -> None:
    status, out = cli(node, "prefix", "apply", "88.118.9", "--name", "某某", "--credit-code",
                      "91350100M000100Y44", "--contact-name", "张三", "--contact-phone",
                      "13800138000", "--contact-email", "z@example.com", "--industry", "C34")
    assert status == 1 and "INVALID_ARGUMENT" in out and "check character" in out, out
    status, out = cli(node, "prefix", "apply", "88.118.9", "--name", "某某", "--credit-code",
                      credit_code("91350100M000100Y4"), "--contact-name", "张三",
                      "--contact-phone", "13800138000", "--contact-email", "z@example.com",
                      "--industry", "C34")
    assert status == 0, out
    application_id = out.split()[1]
    status, out = cli(node, "prefix", "reject", application_id)
    assert status == 2 and "--reason" in out, out
    status, out = cli(node, "prefix", "reject", application_id, "--reason", "名称不符")
    assert status == 0 and "rejected application" in out and "名称不符" in out, out
    status, out = cli(node, "prefix", "list", "--state", "nonsense")
    assert status == 2 and "--state must be one of" in out, out
