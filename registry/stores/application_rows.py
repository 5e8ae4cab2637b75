"""How an application is laid out in a row of the SQL backends' ``applications`` table
(registry/migrations/*/NNNN_applications.sql): one column per field, the enterprise's
details flattened, the state as its lower-case name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from registry.applications import Application, ApplicationState, Enterprise
from registry.identifier import Prefix

# The columns every SELECT of an application reads, in the order of application_from_row.
COLUMNS = ("seq, id, prefix, state, name, credit_code, contact_name, contact_phone, "
           "contact_email, industry, address, submitted_at, decided_at, reviewer, reason, "
           "request_id, fingerprint")
# The columns an INSERT writes (seq is assigned by the database), in application_row order.
INSERT_COLUMNS = ("id, prefix, prefix_key, state, name, credit_code, contact_name, "
                  "contact_phone, contact_email, industry, address, submitted_at, "
                  "decided_at, reviewer, reason, request_id, fingerprint")


def application_from_row(row: Sequence[Any]) -> Application:
    (seq, app_id, prefix, state, name, code, contact, phone, email, industry, address,
     submitted, decided, reviewer, reason, request_id, digest) = row
    return Application(
        app_id, Prefix.parse(prefix),
        Enterprise(name, code, contact, phone, email, industry, address),
        ApplicationState(state), int(submitted), int(decided), reviewer, reason, request_id,
        digest, int(seq))


def application_row(a: Application) -> tuple[object, ...]:
    e = a.enterprise
    return (a.id, a.prefix.text, a.prefix.key, a.state.value, e.name, e.credit_code,
            e.contact_name, e.contact_phone, e.contact_email, e.industry, e.address,
            a.submitted_at, a.decided_at, a.reviewer, a.reason, a.request_id, a.fingerprint)
