"""The operators' view stays wired to the node: deploy/ is checked against the code.

A dashboard query naming a metric the node does not expose draws an empty panel, with
no error anywhere; a compose variable the node does not read is silently ignored; a
scrape target on the wrong port shows the node as down. None of that fails a build
unless it is checked here, against ``node.observe.metrics.Metrics`` and ``node.settings.Settings``
themselves.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from node.observe.metrics import Metrics
from node.settings import ENV_PREFIX, Settings, load
from tests.metrics_helpers import exercise, exposed_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "idnode.yml"
DASHBOARDS = sorted(DEPLOY.glob("**/*.json"))

METRIC_RE = re.compile(r"idnode_[a-zA-Z0-9_:]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
INTERPOLATION_RE = re.compile(r"\$\{[^}]*\}")
SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}


# --- helpers ----------------------------------------------------------------------------


def _yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def queries(dashboard: Any) -> list[str]:
    """PromQL of every panel target and of every templating variable."""
    found = [value for key, value in _walk(dashboard) if key == "expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        found.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return [q for q in found if isinstance(q, str) and q]


def exposed() -> tuple[set[str], set[str]]:
    """(every series name Metrics() can expose, the histogram/summary family names)."""
    metrics = Metrics(CollectorRegistry())
    exercise(metrics)
    names: set[str] = set()
    histograms: set[str] = set()
    for family in metrics.registry.collect():
        names.add(exposed_name(family))
        names.update(sample.name for sample in family.samples)
        if family.type in {"histogram", "summary"}:
            histograms.add(family.name)
    return names, histograms


def unknown_metrics(dashboard: Any) -> set[str]:
    """Metric names the dashboard queries that the node does not expose. ``_bucket``,
    ``_sum`` and ``_count`` are accepted only on a histogram or summary."""
    names, histograms = exposed()
    unknown: set[str] = set()
    for query in queries(dashboard):
        for name in METRIC_RE.findall(query):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name[: -len(suffix)] in histograms:
                    base = name[: -len(suffix)]
            if base not in names:
                unknown.add(name)
    return unknown


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for item in service.get("ports") or []:
        target = item["target"] if isinstance(item, dict) else str(item).rsplit(":", 1)[-1]
        ports.add(int(str(target).split("/")[0]))
    return ports


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source for the service's short-syntax volumes."""
    out: dict[str, str] = {}
    for item in service.get("volumes") or []:
        source, target = str(item).split(":")[:2]
        out[target] = source
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def provisioned_uid() -> str:
    sources = _yaml(DATASOURCES)["datasources"]
    assert len(sources) == 1
    uid = sources[0]["uid"]
    assert isinstance(uid, str)
    return uid


# --- dashboards -------------------------------------------------------------------------


def test_deploy_has_a_dashboard() -> None:
    assert DEPLOY / "grafana" / "dashboards" / "idnode.json" in DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_dashboard_query_names_a_metric_the_node_exposes(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert queries(dashboard), "a dashboard without queries shows nothing"
    assert unknown_metrics(dashboard) == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_dashboard_uses_the_provisioned_datasource_by_uid(path: Path,
                                                                provisioned_uid: str) -> None:
    # A name or an unset datasource breaks as soon as Grafana has a second one.
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] >= 36
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert panels
    for panel in panels:
        for holder in [panel, *panel.get("targets", [])]:
            assert holder.get("datasource", {}).get("uid") == provisioned_uid, panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_the_overview_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "idnode.json").read_text())
    used = {name for q in queries(dashboard) for name in METRIC_RE.findall(q)}
    for needed in ("idnode_grpc_requests_total", "idnode_resolve_duration_seconds_bucket",
                   "idnode_cache_hits_total", "idnode_cache_misses_total",
                   "idnode_cache_redis_up", "idnode_cache_redis_errors_total",
                   "idnode_store_query_duration_seconds_bucket",
                   "idnode_registry_writes_total", "idnode_sync_follower_lag_changes",
                   "idnode_changelog_sequence", "idnode_registry_identifiers",
                   "idnode_signing_operations_total", "idnode_http_requests_total",
                   "idnode_handle_requests_total", "idnode_store_reads_total",
                   "idnode_mirror_lag_sequences"):
        assert needed in used, needed
    assert any("histogram_quantile(0.99" in q for q in queries(dashboard))


def test_the_check_reports_a_metric_the_node_does_not_expose() -> None:
    # The check above must be able to fail: a typo and a _bucket on a counter both count.
    dashboard = {"panels": [{"targets": [
        {"expr": 'sum(rate(idnode_grpc_requests_total{method="Resolve"}[1m]))'},
        {"expr": "rate(idnode_grpc_request_total[1m])"},
        {"expr": "rate(idnode_cache_hits_total_bucket[1m])"},
        {"expr": "histogram_quantile(0.9, rate(idnode_resolve_duration_seconds_bucket[1m]))"},
    ]}]}
    assert unknown_metrics(dashboard) == {"idnode_grpc_request_total",
                                          "idnode_cache_hits_total_bucket"}


# --- compose ----------------------------------------------------------------------------


def test_compose_has_the_node_and_its_dependencies(services: dict[str, Any]) -> None:
    assert {"idnode", "redis", "postgres", "prometheus", "grafana"} <= set(services)
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_every_depends_on_names_a_service(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_every_named_volume_is_declared(compose: dict[str, Any],
                                        services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for service in services.values():
        for source in _mounts(service).values():
            if not source.startswith((".", "/")):
                assert source in declared, source
            else:
                assert (DEPLOY / source).exists(), f"bind mount {source} does not exist"


def test_every_idnode_variable_in_compose_is_a_setting(services: dict[str, Any]) -> None:
    # The node ignores IDNODE_* names it does not know, so a typo would go unnoticed.
    for name, service in services.items():
        for key in _env(service):
            if key.startswith(ENV_PREFIX):
                field = key[len(ENV_PREFIX):].lower()
                assert field in SETTINGS_FIELDS, f"{name}: {key} is not a Settings field"


def test_the_node_accepts_the_compose_environment(services: dict[str, Any]) -> None:
    env = _env(services["idnode"])
    assert env["IDNODE_ADMIN_SECRET"] == "${IDNODE_ADMIN_SECRET:?set it}"
    settings = load(env={k: INTERPOLATION_RE.sub("placeholder-secret-value", v)
                         for k, v in env.items()})
    assert settings.data_dir == "/var/lib/idnode"
    assert _mounts(services["idnode"])[settings.data_dir] == "idnode-data"
    assert settings.redis_url.split("//", 1)[1].split(":", 1)[0] == "redis"
    # The store is the compose file's PostgreSQL service, with its password variable.
    assert settings.database_url.startswith("postgresql://idnode:")
    assert settings.database_url.endswith("@postgres:5432/idnode")
    assert services["idnode"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for listen in (settings.grpc_listen, settings.http_listen, settings.metrics_listen,
                   settings.handle_listen):
        assert listen.startswith("0.0.0.0:"), "inside a container, listen on all interfaces"
        assert _port(listen) in _container_ports(services["idnode"]), listen


def test_the_node_is_built_from_the_repository_dockerfile(services: dict[str, Any]) -> None:
    build = services["idnode"]["build"]
    dockerfile = (DEPLOY / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
    assert dockerfile == ROOT / "Dockerfile"
    assert dockerfile.is_file()


def test_prometheus_scrapes_the_node_metrics_port(services: dict[str, Any]) -> None:
    config = _yaml(PROMETHEUS)
    metrics_port = _port(_env(services["idnode"])["IDNODE_METRICS_LISTEN"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for group in jobs["idnode"]["static_configs"] for t in group["targets"]]
    assert targets == [f"idnode:{metrics_port}"]
    assert jobs["idnode"]["scrape_interval"] == "5s"
    mounted = _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"]
    assert (DEPLOY / mounted).resolve() == PROMETHEUS


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboards(
        services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    env = _env(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = _mounts(grafana)
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() \
        == DEPLOY / "grafana" / "provisioning"

    source = _yaml(DATASOURCES)["datasources"][0]
    host_port = source["url"].split("//", 1)[1]
    assert host_port.split(":")[0] in services
    assert _port(host_port) in _container_ports(services["prometheus"])

    provider = _yaml(DASHBOARD_PROVIDERS)["providers"][0]
    container_dir = provider["options"]["path"]
    host_dir = (DEPLOY / mounts[container_dir]).resolve()
    assert (host_dir / "idnode.json").is_file()
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(container_dir + "/")
    assert (host_dir / home[len(container_dir) + 1:]).is_file()
