"""Metadata templates (元数据模板) for any door: put, publish, withdraw, get, list.

- **Writing** (put a draft, publish, withdraw) a template of prefix ``P`` needs
  ``add_value`` and ``modify_value`` on its prefix handle ``0.NA/P``
  (:data:`TEMPLATE_BITS`, asked through ``policy.require_prefix``): the prefix admin
  and the node admin have them, and a write token bound to ``P`` keeps them. Rights are
  checked before the body is looked at, so a stranger learns nothing about it.
- **Reading** needs nothing: a published or withdrawn template is schema, public like
  the ``TEMPLATE`` value at 1001 that names it — except its items' ``grants`` (who may
  read which field), shown only to callers who may write the prefix's templates.
  Drafts are shown only to callers who may write them (an unfinished draft is nobody
  else's business); to anyone else a draft version is NOT_FOUND. Reads are limited
  like resolves (per address and principal).
- The rules themselves (parse, lifecycle, stable indexes) are
  :mod:`registry.templates`; the store runs the lifecycle step under its write lock
  (``change_templates``), so two concurrent puts cannot both break the index rule.
- After a write the registrar's template cache forgets that version (other processes
  see a withdrawal within ``TemplateBook.recheck_seconds``), and one audit line is
  written; a refused write gets a ``write refused`` line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from node.observe.logs import AUDIT, event
from node.service.caller import Caller
from node.service.writes import Writes
from registry.access.policy import Permission
from registry.access.principals import Principal
from registry.access.rights import prefix_handle
from registry.errors import AlreadyExists, IdnodeError, NotFound, Unauthenticated
from registry.identifier import Prefix
from registry.registrar import Registrar
from registry.store import TemplateStore
from registry.templates import (
    Template,
    TemplateState,
    check_version,
    increment,
    latest_published,
    parse_template,
    publish,
    put_draft,
    with_indexes,
    withdraw,
)

audit = logging.getLogger(AUDIT)

# What writing a prefix's templates needs on its prefix handle 0.NA/<prefix>.
TEMPLATE_BITS = int(Permission.ADD_VALUE | Permission.MODIFY_VALUE)

_Step = Callable[[Sequence[Template], int, str], Template]


class Templates:
    """The template use cases (see the module docstring)."""

    def __init__(self, registrar: Registrar, writes: Writes, store: TemplateStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.registrar = registrar
        self.writes = writes
        self.store = store
        self._clock = clock

    def _prefix(self, prefix_text: str) -> Prefix:
        prefix = Prefix.parse(prefix_text)
        if not self.registrar.serves(prefix.key):
            raise NotFound(f"prefix {prefix.text} is not served by this node (it serves "
                           f"{self.registrar.node_prefix.text})", referral_prefix=prefix.text)
        return prefix

    def may_write(self, principal: Principal | None, prefix: Prefix) -> bool:
        return principal is not None and self.registrar.policy.permits(
            principal, TEMPLATE_BITS, prefix_handle(prefix))

    # --- writes ------------------------------------------------------------------------

    def put(self, caller: Caller, prefix_text: str, body: Mapping[str, Any]) -> Template:
        """Create a draft version, or replace a draft; ``body`` is the template in the
        SNMS shape (every problem reported at once)."""
        def prepare() -> _Step:
            draft = parse_template(body, prefix=prefix_text)
            return lambda existing, now, by: put_draft(existing, draft, now, by)
        version = body.get("version", "") if isinstance(body, Mapping) else ""
        return self._write(caller, "put-template", prefix_text, str(version), prepare)

    def publish(self, caller: Caller, prefix_text: str, version: str) -> Template:
        """Draft → published; records may be based on it from now on."""
        def prepare() -> _Step:
            wanted = check_version(version)
            return lambda existing, now, by: publish(existing, wanted, now, by)
        return self._write(caller, "publish-template", prefix_text, version, prepare)

    def withdraw(self, caller: Caller, prefix_text: str, version: str) -> Template:
        """Published → withdrawn: no new record may be based on it."""
        def prepare() -> _Step:
            wanted = check_version(version)
            return lambda existing, now, by: withdraw(existing, wanted, now, by)
        return self._write(caller, "withdraw-template", prefix_text, version, prepare)

    # --- the SNMS door's shapes (node.web.snms) ---------------------------------------

    def create_published(self, caller: Caller, prefix_text: str,
                         body: Mapping[str, Any]) -> Template:
        """SNMS ``POST /snms/api/v3|v5/template``: a new version, published at once (SNMS
        templates take records as soon as they exist). Items without ``idIndex`` get one
        (:func:`registry.templates.with_indexes`); an existing version is refused."""
        def prepare() -> _Step:
            def step(existing: Sequence[Template], now: int, by: str) -> Template:
                draft = parse_template(with_indexes(body, existing), prefix=prefix_text)
                there = [t for t in existing if t.version == draft.version]
                if there:
                    raise AlreadyExists(f"{there[0].name} already exists "
                                        f"({there[0].state.value}): put a new version")
                stored = put_draft(existing, draft, now, by)
                return publish([*existing, stored], stored.version, now, by)
            return step
        version = body.get("version", "") if isinstance(body, Mapping) else ""
        return self._write(caller, "put-template", prefix_text, str(version), prepare)

    def amend_draft(self, caller: Caller, prefix_text: str,
                    body: Mapping[str, Any]) -> Template:
        """SNMS ``PUT /snms/api/v5/template``: the incremental update
        (:func:`registry.templates.increment`) of a draft; a published or withdrawn
        version never changes (put a new version)."""
        def prepare() -> _Step:
            version = check_version(str(body.get("version", "")))

            def step(existing: Sequence[Template], now: int, by: str) -> Template:
                current = next((t for t in existing if t.version == version), None)
                if current is None:
                    raise NotFound(f"template {prefix_text} version {version} not found")
                if current.state is not TemplateState.DRAFT:
                    raise AlreadyExists(f"{current.name} is {current.state.value} and "
                                        "cannot change: put a new version")
                merged = with_indexes(increment(current, body), existing)
                return put_draft(existing, parse_template(merged, prefix=prefix_text),
                                 now, by)
            return step
        version = body.get("version", "") if isinstance(body, Mapping) else ""
        return self._write(caller, "put-template", prefix_text, str(version), prepare)

    def _write(self, caller: Caller, operation: str, prefix_text: str, version: str,
               prepare: Callable[[], _Step]) -> Template:
        """Credentials, the prefix, the rights, then the request (so a stranger learns
        nothing about it), then the lifecycle step under the store's write lock."""
        principal: Principal | None = None
        try:
            self.writes.coherence.refresh()  # rights other processes changed count now
            principal = self.writes.admission.writer(caller)
            doing = f"write the templates of {prefix_text}"
            if principal is None:
                raise Unauthenticated(f"{doing} requires credentials (authorization "
                                      "metadata)")
            prefix = self._prefix(prefix_text)
            who = self.registrar.policy.require_prefix(principal, TEMPLATE_BITS, prefix,
                                                       doing=doing)
            step = prepare()
            now = int(self._clock())
            stored = self.store.change_templates(
                prefix.key, lambda existing: step(existing, now, who.id))
        except IdnodeError as exc:
            self.writes.refused(caller, operation, exc, handle=f"{prefix_text} {version}",
                                principal=principal)
            raise
        self.registrar.templates.forget(stored.prefix.key, stored.version)
        event(audit, operation, prefix=stored.prefix.text, version=stored.version,
              state=stored.state.value, items=len(stored.items), principal=who.id,
              door=caller.door)
        return stored

    # --- reads -------------------------------------------------------------------------

    def get(self, caller: Caller, prefix_text: str, version: str = "") -> Template:
        """One version, or (``version`` empty) the latest published one."""
        principal = self.writes.admission.reader(caller)
        prefix = self._prefix(prefix_text)
        writer = self.may_write(principal, prefix)
        if not version:
            latest = latest_published(self.store.list_templates(prefix.key))
            if latest is None:
                raise NotFound(f"prefix {prefix.text} has no published template")
            return latest if writer else _without_grants(latest)
        wanted = check_version(version)
        found = self.store.get_template(prefix.key, wanted)
        if found is None or (found.state is TemplateState.DRAFT and not writer):
            raise NotFound(f"template {prefix.text} version {wanted} not found")
        return found if writer else _without_grants(found)

    def list(self, caller: Caller, prefix_text: str) -> list[Template]:
        """Every version in creation order; drafts only for those who may write them."""
        principal = self.writes.admission.reader(caller)
        prefix = self._prefix(prefix_text)
        found = self.store.list_templates(prefix.key)
        if self.may_write(principal, prefix):
            return found
        return [_without_grants(t) for t in found if t.state is not TemplateState.DRAFT]


def _without_grants(template: Template) -> Template:
    """What readers who may not write the template see: its items without their
    ``grants`` — who a prefix shares which field with is the prefix's business (the
    values stay hidden either way)."""
    if not any(i.grants for i in template.items):
        return template
    return replace(template, items=tuple(replace(i, grants=()) for i in template.items))


__all__ = ["TEMPLATE_BITS", "Templates"]
