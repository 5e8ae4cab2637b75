"""The served OpenAPI document: valid OpenAPI 3.1, complete (every route the app serves
is in it), and true (schemathesis fuzzes a real node from it: no 5xx, only documented
statuses and content types, bodies that match their schemas).

The fuzzing is bounded and reproducible: a fixed number of examples per operation,
derandomized, no example database."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from prometheus_client import CollectorRegistry
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from node.app import Node
from node.service.caller import Caller
from node.web.app import Endpoints, Routes
from node.web.handles import HandleApi
from node.web.openapi import DOCS_PATH, OPENAPI_PATH, OpenApi, build_document, operations
from node.web.scan import ScanProxy
from node.web.snms import SnmsApi
from registry.values import Value
from tests.conftest import ADMIN, NodeFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ADMIN_HEADERS = dict(ADMIN)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
SEEDED = ("88.118.8/PN-0001", "88.118/ADMIN", "88.118.8/EQ/CNC-7")


def _http_port(node: Node) -> int:
    assert node.http is not None
    return node.http.port


def _get(node: Node, path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{_http_port(node)}{path}",
                                timeout=10) as r:
        return r.status, r.headers["content-type"], r.read()


def _seed(node: Node) -> None:
    caller = Caller(ADMIN_HEADERS["authorization"], "test", "http")
    writes = node.core.writes
    writes.put(caller, "88.118.8/PN-0001", [
        Value(1, "URL", "https://example.com/p/1"), Value(2, "productName", "主轴")],
        overwrite=True, indexes=[])
    writes.put(caller, "88.118.8/EQ/CNC-7", [Value(1, "desc", "lathe")], overwrite=True,
               indexes=[])


OPERATIONS = [(method, path) for method, path, _ in operations(build_document())]


@pytest.mark.parametrize(("method", "path"), OPERATIONS,
                         ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_the_served_document(node_factory: NodeFactory, method: str, path: str) -> None:
    """schemathesis' own pytest plugin (from_fixture/parametrize) fails on pytest 9
    (``Function._nodeid``), so each operation is driven through its Hypothesis strategy."""
    node = node_factory()
    _seed(node)
    base = f"http://127.0.0.1:{_http_port(node)}"
    operation = schemathesis.openapi.from_url(base + OPENAPI_PATH)[path][method]
    writes = method in {"PUT", "POST", "DELETE"} or path in {"/api/handles", "/api/handles/"}
    headers = ADMIN_HEADERS if writes else None

    @given(case=operation.as_strategy())
    @settings(max_examples=40, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit,
                                                               Phase.generate])
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base, headers=headers, checks=CHECKS, timeout=10)

    run()


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_document()
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # the 3.1 meta-schema
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert schemes["bearerAuth"]["scheme"] == "bearer"


def _served_routes(node: Node) -> Routes:
    """The routes table the node builds (node.app.build), rebuilt here from its parts."""
    routes = Routes()
    HandleApi(node.core).add_to(routes)
    OpenApi().add_to(routes)
    SnmsApi(node.core).add_to(routes)
    ScanProxy(node.core).add_to(routes)
    Endpoints(CollectorRegistry(), node.keys, node.ready).add_to(routes)
    return routes


def test_every_served_route_is_documented(node_factory: NodeFactory) -> None:
    node = node_factory()
    routes = _served_routes(node)
    paths = set(build_document()["paths"])
    for exact in routes.exact:
        assert exact in paths, f"{exact} is served but not documented"
    for prefix, _route in routes.prefixes:
        assert any(p.startswith(prefix) and "{" in p for p in paths), \
            f"{prefix}* is served but not documented"
    assert routes.fallback is not None and "/{handle}" in paths and "/" in paths
    # ...and every documented path is answered by a route of the running node (not 404
    # "no such path"): the templated ones with a sample value.
    for path, item in build_document()["paths"].items():
        concrete = path.replace("{handle}", "88.118.8/PN-0001").replace("{name}", "scan.css")
        found = routes.find(concrete)
        assert found is not None, path
        for method in item:
            if method in {"get", "put", "post", "delete"}:
                assert method.upper() in found[1].methods, (method, path)


def test_the_node_serves_the_document_and_the_docs_page(node_factory: NodeFactory) -> None:
    node = node_factory()
    status, kind, body = _get(node, OPENAPI_PATH)
    assert status == 200 and kind.startswith("application/json")
    assert json.loads(body) == build_document()
    status, kind, body = _get(node, DOCS_PATH)
    assert status == 200 and kind.startswith("text/html")
    page = body.decode()
    assert "/api/handles/{handle}" in page and "<script" not in page
    assert "http://" not in page.replace(f"http://127.0.0.1:{_http_port(node)}", "")
