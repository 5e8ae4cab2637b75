"""``idnode audit`` through a real node: lines and JSON, filters, credentials, bad input."""

from __future__ import annotations

import json
import time

from node.app import Node
from tests.e2e.helpers import cli

ADMIN_ID = "300:88.118/ADMIN"
ANONYMOUS = {"IDNODE_IDENTITY": "", "IDNODE_SECRET": ""}


def refused_lines(node: Node, count: int) -> list[str]:
    """Refused attempts are stored just after the refusal: wait for them."""
    deadline = time.monotonic() + 10
    while True:
        code, out = cli(node, "audit", "--outcome", "refused")
        lines = out.splitlines()
        if code != 0 or len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_audit_lists_writes_and_refusals_newest_first(node: Node) -> None:
    assert cli(node, "register", "88.118.8/CLI-1", "URL=https://one")[0] == 0
    assert cli(node, "register", "88.118.8/CLI-2", "URL=https://two")[0] == 0
    code, out = cli(node, "register", "88.118.8/CLI-3", "URL=https://x", env=ANONYMOUS)
    assert code == 1 and "UNAUTHENTICATED" in out
    code, out = cli(node, "audit", "--prefix", "88.118.8", "--outcome", "ok")
    assert code == 0, out
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("ok", "register", "88.118.8/CLI-2", ADMIN_ID, "grpc", "127.0.0.1"),
        ("ok", "register", "88.118.8/CLI-1", ADMIN_ID, "grpc", "127.0.0.1")]
    assert rows[0][0].endswith("Z") and int(rows[0][7]) > int(rows[1][7])
    (refused,) = refused_lines(node, 1)
    fields = refused.split("\t")
    assert (fields[1], fields[3], fields[4], fields[7]) == (
        "UNAUTHENTICATED", "88.118.8/CLI-3", "-", "-")
    assert "requires credentials" in fields[9]


def test_audit_json_filters_and_limit(node: Node) -> None:
    for i in range(3):
        assert cli(node, "register", f"88.118.8/J-{i}", "URL=https://j")[0] == 0
    code, out = cli(node, "audit", "--principal", ADMIN_ID, "--prefix", "88.118.8",
                    "--since", "2000-01-01", "--until", "2999-01-01T00:00:00Z", "--json",
                    "--limit", "2")
    assert code == 0, out
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["target"] for d in docs] == ["88.118.8/J-2", "88.118.8/J-1"]
    assert set(docs[0]) == {"id", "time", "outcome", "action", "target", "principal", "door",
                            "client_address", "sequence", "request_id", "message"}
    assert docs[0]["request_id"] and docs[0]["sequence"] > docs[1]["sequence"]
    code, out = cli(node, "audit", "--since", "2999-01-01T08:00+08:00")
    assert (code, out) == (0, "")


def test_audit_needs_the_node_admin_and_good_options(node: Node) -> None:
    code, out = cli(node, "audit", env=ANONYMOUS)
    assert code == 1 and "UNAUTHENTICATED" in out
    code, out = cli(node, "audit", "--outcome", "maybe")
    assert code == 2 and "--outcome" in out
    code, out = cli(node, "audit", "--since", "yesterday")
    assert code == 2 and "ISO 8601" in out



def test_audit_shows_data_grants_and_revokes_as_their_own_actions(node: Node) -> None:
    assert cli(node, "register", "88.118.8/G-1", "URL=https://g")[0] == 0
    code, out = cli(node, "update", "88.118.8/G-1", "1100:DATA_GRANT=300:88.118.9/ADMIN r 2001")
    assert code == 0, out
    code, out = cli(node, "update", "--replace", "88.118.8/G-1", "1:URL=https://g")
    assert code == 0, out
    code, out = cli(node, "audit", "--prefix", "88.118.8", "--outcome", "ok", "--limit", "2")
    assert code == 0, out
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[2], r[3], r[9]) for r in rows] == [
        ("revoke", "88.118.8/G-1", "-300:88.118.9/ADMIN"),
        ("grant", "88.118.8/G-1", "+300:88.118.9/ADMIN r 2001")]
