"""What can be checked about the image without a Docker daemon.

The Dockerfile is parsed and held to the deployment contract (non-root, ``idnode``
entrypoint, a health check that is ``idnode health``, settings the node really reads), the
runtime lock is held to the development lock, and the entry command is run for real
from the venv. Building and running the image itself needs a daemon and is not done here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from node.settings import ENV_PREFIX, Settings, load

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
DEV_LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}
# The flags every deployment script relies on (ARCHITECTURE.md, "Running it").
SERVE_FLAGS = ("--data-dir", "--grpc-listen", "--http-listen", "--metrics-listen",
               "--redis-url", "--database-url", "--node-prefix", "--workers")
PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out: list[tuple[str, str]] = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first."""
    result: list[list[tuple[str, str]]] = []
    for item in instructions():
        if item[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(item)
    return result


def final_env() -> dict[str, str]:
    """ENV of the final stage (``KEY=value`` pairs, several per instruction)."""
    env: dict[str, str] = {}
    for word, args in stages()[-1]:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def pins(path: Path) -> dict[str, str]:
    return {_normalise(name): version for name, version in PIN_RE.findall(path.read_text())}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normalise(match.group(0))


def _pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as fh:
        return tomllib.load(fh)


# --- the Dockerfile ---------------------------------------------------------------------


def test_dockerfile_is_two_stages_on_python_311_slim() -> None:
    builder, final = stages()
    assert builder[0][1] == "python:3.11-slim AS builder"
    assert final[0][1] == "python:3.11-slim"


def test_builder_installs_the_hashed_runtime_lock_then_the_project_without_deps() -> None:
    runs = [args for word, args in stages()[0] if word == "RUN"]
    locked = [i for i, r in enumerate(runs) if "--require-hashes" in r
              and "-r requirements-runtime.lock" in r]
    project = [i for i, r in enumerate(runs) if "pip install --no-deps ." in r]
    assert locked and project and locked[0] < project[0]
    assert any("python -m venv /opt/venv" in r for r in runs)


def test_final_stage_copies_only_the_venv_from_the_builder() -> None:
    copies = [args for word, args in stages()[-1] if word == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_the_node_runs_as_a_non_root_user_that_owns_the_data_dir() -> None:
    final = stages()[-1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] == "idnode"
    setup = " ".join(args for word, args in final if word == "RUN")
    assert "--uid 10001" in setup
    assert "chown idnode:idnode /var/lib/idnode" in setup
    assert [args for word, args in final if word == "VOLUME"] == ["/var/lib/idnode"]
    assert final_env()["IDNODE_DATA_DIR"] == "/var/lib/idnode"


def test_entrypoint_is_idnode_and_the_default_command_serves() -> None:
    final = dict(stages()[-1][1:])
    assert exec_form(final["ENTRYPOINT"]) == ["idnode"]
    assert exec_form(final["CMD"]) == ["serve"]


def test_every_idnode_variable_in_the_dockerfile_is_a_setting_the_node_accepts() -> None:
    env = {k: v for k, v in final_env().items() if k.startswith(ENV_PREFIX)}
    assert env
    for key in env:
        assert key[len(ENV_PREFIX):].lower() in SETTINGS_FIELDS, key
    settings = load(env=env)  # validates the values too (host:port, log format, ...)
    assert settings.log_format == "json"
    assert settings.grpc_listen.startswith("0.0.0.0:")
    assert settings.http_listen.startswith("0.0.0.0:")


def test_exposed_ports_cover_the_listen_settings_and_the_metrics_port() -> None:
    exposed = {p for word, args in stages()[-1] if word == "EXPOSE" for p in args.split()}
    env = final_env()
    for key in ("IDNODE_GRPC_LISTEN", "IDNODE_HTTP_LISTEN"):
        assert env[key].rpartition(":")[2] in exposed, key
    handle_port = env["IDNODE_HANDLE_LISTEN"].rpartition(":")[2]
    assert {handle_port, f"{handle_port}/udp"} <= exposed  # the Handle door: TCP and UDP
    assert "9100" in exposed  # IDNODE_METRICS_LISTEN in deploy/docker-compose.yml


def healthcheck_command() -> list[str]:
    args = dict(stages()[-1][1:])["HEALTHCHECK"]
    return exec_form(args[args.index("CMD") + len("CMD"):].strip())


def test_healthcheck_is_idnode_health_without_curl() -> None:
    # The slim image has no curl, and a fixed URL would miss a moved or disabled HTTP
    # listener: the check is the node's own command, which reads the settings as serve.
    command = healthcheck_command()
    assert command[:2] == ["idnode", "health"]
    args = dict(stages()[-1][1:])["HEALTHCHECK"]
    docker_timeout = re.search(r"--timeout=(\d+)s", args)
    assert docker_timeout
    if "--timeout-seconds" in command:  # the probe gives up before Docker kills it
        probe = float(command[command.index("--timeout-seconds") + 1])
        assert probe < int(docker_timeout.group(1))


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ("http", "http://127.0.0.1:8080/readyz")),
    ({"IDNODE_HTTP_LISTEN": "0.0.0.0:9999"}, ("http", "http://127.0.0.1:9999/readyz")),
    ({"IDNODE_HTTP_LISTEN": ""}, ("grpc", "127.0.0.1:50051")),
    ({"IDNODE_HTTP_LISTEN": "", "IDNODE_GRPC_LISTEN": "0.0.0.0:6000"},
     ("grpc", "127.0.0.1:6000")),
])
def test_healthcheck_target_follows_the_image_environment_and_overrides(
        env: dict[str, str], expected: tuple[str, str]) -> None:
    from node.cli.main import health_target

    image = {k: v for k, v in final_env().items() if k.startswith(ENV_PREFIX)}
    assert health_target(load(env={**image, **env})) == expected


def test_the_healthcheck_command_runs_and_fails_when_nothing_listens() -> None:
    # Run for real from the venv: a port nobody listens on is "not ready", exit 1.
    idnode = Path(sys.executable).with_name("idnode")
    executable = str(idnode) if idnode.exists() else shutil.which("idnode")
    assert executable, "the idnode console script is not installed in this environment"
    with socket.socket() as s:  # bound, not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
               **{k: v for k, v in final_env().items() if k.startswith(ENV_PREFIX)},
               "IDNODE_HTTP_LISTEN": f"0.0.0.0:{port}", "IDNODE_DATA_DIR": "/nonexistent"}
        done = subprocess.run([executable, *healthcheck_command()[1:]], capture_output=True,
                              text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"http://127.0.0.1:{port}/readyz" in done.stderr


def test_the_entry_command_serve_exists_and_takes_the_deployment_flags() -> None:
    idnode = Path(sys.executable).with_name("idnode")
    executable = str(idnode) if idnode.exists() else shutil.which("idnode")
    assert executable, "the idnode console script is not installed in this environment"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run([executable, "serve", "--help"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for flag in SERVE_FLAGS:
        assert flag in done.stdout, flag
        assert flag[2:].replace("-", "_") in SETTINGS_FIELDS, flag


# --- locks and build context ------------------------------------------------------------


def test_runtime_lock_pins_the_same_versions_as_the_development_lock() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert runtime
    assert set(runtime) <= set(dev), set(runtime) - set(dev)
    mismatched = {name: (v, dev[name]) for name, v in runtime.items() if dev[name] != v}
    assert mismatched == {}


def test_runtime_lock_has_every_dependency_and_no_development_tool() -> None:
    project = _pyproject()["project"]
    runtime = pins(RUNTIME_LOCK)
    for requirement in project["dependencies"]:
        assert _requirement_name(requirement) in runtime, requirement
    for requirement in project["optional-dependencies"]["dev"]:
        assert _requirement_name(requirement) not in runtime, requirement


def test_every_runtime_pin_carries_a_hash() -> None:
    # pip --require-hashes rejects the whole install if a single pin has none.
    blocks = re.split(r"\n(?=[A-Za-z0-9])", RUNTIME_LOCK.read_text())
    for block in blocks:
        if PIN_RE.match(block):
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_dockerignore_keeps_secrets_and_caches_out_but_the_build_inputs_in() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.partition("/")[0], p)
                   for p in patterns)

    for path in (".git", ".venv", "idnode-data", ".env", "node/__pycache__"):
        assert ignored(path), path
    for path in ("pyproject.toml", "README.md", "requirements-runtime.lock",
                 "node/app.py", "registry/migrations/sqlite/0001_initial.sql",
                 "proto/idnode/v1/resolver.proto", "loadtest/__init__.py"):
        assert not ignored(path), path


def test_package_data_ships_every_sql_migration() -> None:
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["registry"]
    package = ROOT / "registry"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    migrations = set((package / "migrations").rglob("*.sql"))
    assert migrations
    assert migrations <= shipped, sorted(str(p.relative_to(ROOT)) for p in migrations - shipped)
