"""Enterprise onboarding (企业前缀申请与实名审核) for any door: apply, list, approve, reject.

- **Apply** — anyone, anonymous callers included (an enterprise has no identity yet;
  credentials that are sent must be right). The details are checked
  (:func:`registry.applications.check_enterprise`, the credit code's GB 32100-2015 check
  character among them); a prefix that is allocated or already has a pending application
  is ALREADY_EXISTS; ``request_id`` makes a retry return the first application.
- **List, approve, reject** — reviewers only: principals with add_derived_prefix on the
  node prefix's handle ``0.NA/<node prefix>`` (the node admin; anyone it grants that bit
  with an HS_ADMIN value there).
- **Approve** allocates the prefix through :meth:`Registrar.allocate` and records the
  decision *inside the allocation's unit of work*: both commit or neither, so an approved
  application always has its prefix, and of two concurrent approvals exactly one
  allocates (the other is ABORTED: the application was decided already). The generated
  owner secret is returned once and stored only as its scrypt hash (HS_SECKEY of
  ``<prefix>/ADMIN``). After the commit, :meth:`Writes.allocated` invalidates caches and
  moves the metrics, as for AllocatePrefix.
- **Reject** needs a reason; it too is decided once.

Every accepted call writes one audit line, every refused one a ``write refused`` line
(the contact details never reach a log: they are personal data).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from node.observe.logs import AUDIT, event
from node.service.caller import Authenticate, Caller
from node.service.writes import Writes
from registry.access.principals import Principal
from registry.applications import (
    Application,
    ApplicationState,
    Enterprise,
    check_application_id,
    check_enterprise,
    check_reason,
    check_request_id,
    decode_page_token,
    encode_page_token,
    new_application,
    page_size,
)
from registry.errors import AlreadyExists, IdnodeError, InvalidArgument, NotFound, StaleEtag
from registry.identifier import Prefix
from registry.registrar import Allocation, Registrar
from registry.store import ApplicationStore, UnitOfWork, check_pending

audit = logging.getLogger(AUDIT)


@dataclass(frozen=True, slots=True)
class Approval:
    """An approved application and the allocation it made; ``allocation.owner`` is the
    new prefix's admin identity and ``allocation.generated_secret`` its secret, which
    exists nowhere else (show it once)."""

    application: Application
    allocation: Allocation


class Applications:
    """The onboarding use cases (see the module docstring)."""

    def __init__(self, registrar: Registrar, writes: Writes, auth: Authenticate,
                 store: ApplicationStore, clock: Callable[[], float] = time.time) -> None:
        self.registrar = registrar
        self.writes = writes
        self.auth = auth
        self.store = store
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def _reviewer(self, caller: Caller, doing: str) -> Principal:
        """The caller, if it may review (rights changed by other processes count)."""
        self.writes.coherence.refresh()
        principal = self.writes.admission.authenticate(caller)
        return self.registrar.policy.require_reviewer(principal, doing=doing)

    # --- apply -------------------------------------------------------------------------

    def apply(self, caller: Caller, prefix_text: str, enterprise: Enterprise,
              request_id: str = "") -> Application:
        """Submit an application (pending); a repeated ``request_id`` with the same
        content returns the first one, in whatever state it is now."""
        principal: Principal | None = None
        try:
            # May be anonymous; limited like a write per client address.
            principal = self.writes.admission.writer(caller)
            prefix = Prefix.parse(prefix_text)
            node_prefix = self.registrar.node_prefix
            if prefix.key == node_prefix.key or not node_prefix.contains(prefix.key):
                raise InvalidArgument(f"prefix {prefix.text} is not under the node prefix "
                                      f"{node_prefix.text}: apply for e.g. "
                                      f"{node_prefix.text}.8")
            details = check_enterprise(enterprise)
            rid = check_request_id(request_id)
            fresh = new_application(prefix, details, self._now(), rid)
            stored = self.store.add_application(fresh)
        except IdnodeError as exc:
            self.writes.refused(caller, "apply-prefix", exc, handle=prefix_text,
                                request_id=request_id, principal=principal)
            raise
        event(audit, "apply-prefix", application=stored.id, prefix=stored.prefix.text,
              enterprise=stored.enterprise.name, credit_code=stored.enterprise.credit_code,
              principal=principal.id if principal else "", request_id=request_id,
              replayed=stored.id != fresh.id, door=caller.door)
        return stored

    # --- review ------------------------------------------------------------------------

    def list(self, caller: Caller, state: ApplicationState | None = None,
             size: int = 0, page_token: str = "") -> tuple[list[Application], str]:
        """One page of applications in ``state`` (None: all), newest first, and the token
        of the next page ('' after the last)."""
        self._reviewer(caller, "list prefix applications")
        limit = page_size(size)
        before = decode_page_token(page_token, state)
        found = self.store.list_applications(state, before, limit + 1)
        page = found[:limit]
        token = encode_page_token(state, page[-1].sequence) if len(found) > limit else ""
        return page, token

    def approve(self, caller: Caller, application_id: str, note: str = "") -> Approval:
        """Allocate the applied-for prefix and mark the application approved, in one
        commit; ABORTED (StaleEtag) when it was decided already, also by a concurrent
        approval."""
        principal: Principal | None = None
        try:
            self.writes.admission.writable()
            principal = self._reviewer(caller, "approve prefix applications")
            reviewer = principal
            app_id = check_application_id(application_id)
            text = check_reason("note", note, required=False)
            application = check_pending(self.store.get_application(app_id), app_id)
            decided: list[Application] = []

            def record(unit: UnitOfWork, now: int) -> None:
                decided.append(unit.decide_application(
                    app_id, ApplicationState.APPROVED, reviewer.id, text, now))

            try:
                allocation = self.registrar.allocate(
                    reviewer, application.prefix.text,
                    audit=self.writes.context(caller, "approve_application"), also=record)
            except AlreadyExists as exc:
                raise self._allocation_refused(application, exc) from None
        except IdnodeError as exc:
            self.writes.refused(caller, "approve-application", exc, handle=application_id,
                                principal=principal)
            raise
        self.writes.allocated(allocation)
        approved = decided[0]
        event(audit, "approve-application", application=approved.id, prefix=allocation.prefix,
              owner=allocation.owner, principal=approved.reviewer, door=caller.door)
        return Approval(approved, allocation)

    def _allocation_refused(self, application: Application,
                            exc: AlreadyExists) -> IdnodeError:
        """Why an approval's allocation found its prefix (or its admin identifier) taken:
        a concurrent approval of the same application won (ABORTED), or it was created
        some other way, e.g. by AllocatePrefix (ALREADY_EXISTS: reject the application)."""
        current = self.store.get_application(application.id)
        if current is None:
            return NotFound(f"application {application.id} not found")
        try:
            check_pending(current, application.id)
        except StaleEtag as decided:
            return decided
        return AlreadyExists(f"{exc.message} (not through this application, which stays "
                             "pending: reject it)")

    def reject(self, caller: Caller, application_id: str, reason: str) -> Application:
        """Mark a pending application rejected, with the reason the enterprise is given."""
        principal: Principal | None = None
        try:
            self.writes.admission.writable()
            principal = self._reviewer(caller, "reject prefix applications")
            app_id = check_application_id(application_id)
            why = check_reason("reason", reason, required=True)
            rejected = self.store.decide_application(
                app_id, ApplicationState.REJECTED, principal.id, why, self._now())
        except IdnodeError as exc:
            self.writes.refused(caller, "reject-application", exc, handle=application_id,
                                principal=principal)
            raise
        event(audit, "reject-application", application=rejected.id,
              prefix=rejected.prefix.text, principal=rejected.reviewer, door=caller.door)
        return rejected


__all__ = ["Applications", "Approval"]
