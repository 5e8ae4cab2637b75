"""Dependencies point one way: read from the imports of every module (no I/O but reading
the project's own source files)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(folder: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{module} imports {name}" for module, names in _imports(folder).items()
            for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize(("folder", "forbidden"), [
    # The domain: no transport, cache, metrics, or anything of node/.
    ("registry", ("grpc", "grpc_health", "grpc_reflection", "uvicorn", "http", "redis",
                  "prometheus_client", "node", "idnode")),
    # The core: never a door, never a transport library.
    ("node/service", ("grpc", "uvicorn", "node.rpc", "node.web", "node.cli")),
    ("node/cache", ("grpc", "uvicorn", "node.rpc", "node.web", "node.service")),
    ("node/security", ("grpc", "uvicorn", "node.rpc", "node.web", "node.service")),
    ("node/errors.py", ("grpc", "uvicorn")),
    # The load harness stands on its own (users run it without the test suite).
    ("loadtest", ("tests",)),
])
def test_dependencies_point_one_way(folder: str, forbidden: tuple[str, ...]) -> None:
    if folder.endswith(".py"):
        path = ROOT / folder
        names = _imports(str(path.parent.relative_to(ROOT)))[folder]
        assert not [n for n in names if any(n == f or n.startswith(f + ".")
                                            for f in forbidden)]
        return
    assert _offenders(folder, forbidden) == []


def test_the_layout_check_sees_imports() -> None:
    # Guard against a check that cannot fail: the door does import the core.
    assert any("node.service.core" in names
               for names in _imports("node/rpc").values())


def test_every_package_is_installed_by_a_non_editable_install() -> None:
    # The Dockerfile runs `pip install .`: a package missing from pyproject's explicit
    # list would be absent from the image although every editable-install test passes.
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("registry", "node", "loadtest")
             for init in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set()
