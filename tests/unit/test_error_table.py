"""The one error table names gRPC statuses without importing grpc; pin that its names
and numbers are grpc's."""

from __future__ import annotations

import grpc

from node.errors import INTERNAL, TABLE, mapping_for
from registry.errors import NotFound


def test_every_status_name_and_number_is_grpcs() -> None:
    for mapping in (INTERNAL, *(m for _, m in TABLE)):
        assert grpc.StatusCode[mapping.status].value[0] == mapping.code


def test_a_referral_keeps_the_status_and_changes_only_the_handle_code() -> None:
    plain, referred = mapping_for(NotFound("x")), mapping_for(NotFound("x", referral_prefix="86.1"))
    assert (referred.status, referred.http_status, referred.handle_code) == ("NOT_FOUND", 404, 301)
    assert plain.handle_code == 100
