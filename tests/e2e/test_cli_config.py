"""The client config file through a real node: every client command takes its target and
credentials from flags, then the environment, then the file (``--config``,
``IDNODE_CLI_CONFIG`` or ``~/.config/idnode/cli.toml``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.app import Node
from node.cli.main import app
from tests.conftest import ADMIN_SECRET, NODE_PREFIX
from tests.e2e.helpers import PARTS, PREFIX, resolve, write_csv

ADMIN_ID = f"300:{NODE_PREFIX}/ADMIN"
NOTHING = {"IDNODE_TARGET": "", "IDNODE_IDENTITY": "", "IDNODE_SECRET": "",
           "IDNODE_TOKEN": "", "IDNODE_CLI_CONFIG": ""}


def run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """The CLI with no IDNODE_* variables but those given, and a home of its own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    result = CliRunner().invoke(app, list(args), env={
        **NOTHING, "COLUMNS": "200", "XDG_CONFIG_HOME": str(home), **env})
    return result.exit_code, result.output


def config(path: Path, mode: int = 0o600, **keys: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in keys.items()), encoding="utf-8")
    path.chmod(mode)
    return path


def test_every_kind_of_client_command_takes_target_and_credentials_from_the_file(
        node: Node, tmp_path: Path) -> None:
    cfg = config(tmp_path / "cli.toml", target=f"127.0.0.1:{node.grpc_port}",
                 identity=ADMIN_ID, secret=ADMIN_SECRET)
    src = write_csv(tmp_path / "parts.csv", PARTS)
    code, out = run(tmp_path, "import", str(src), "--prefix", PREFIX, "--config", str(cfg))
    assert code == 0 and "accepted 3" in out, out
    assert "warning" not in out
    code, out = run(tmp_path, "list", "--prefix", PREFIX, "--config", str(cfg))
    assert code == 0 and len(out.split()) == 3, out
    code, out = run(tmp_path, "update", f"{PREFIX}/PN-0001", "batchNo=B9", "--config",
                    str(cfg))
    assert code == 0 and "version 2" in out, out
    code, out = run(tmp_path, "resolve", f"{PREFIX}/PN-0001", "--json", "--config", str(cfg))
    assert code == 0 and '"B9"' in out, out
    code, out = run(tmp_path, "token", "list", "--config", str(cfg))
    assert code == 0, out
    code, out = run(tmp_path, "export", "--prefix", PREFIX, "--config", str(cfg))
    assert code == 0 and "exported 3 identifiers" in out, out
    code, out = run(tmp_path, "delete", f"{PREFIX}/PN-0003", "--config", str(cfg))
    assert code == 0, out


def test_the_default_file_and_the_environment_variable_name_the_file(
        node: Node, tmp_path: Path) -> None:
    target = f"127.0.0.1:{node.grpc_port}"
    config(tmp_path / "home" / "idnode" / "cli.toml", target=target, identity=ADMIN_ID,
           secret=ADMIN_SECRET)
    assert run(tmp_path, "import", str(write_csv(tmp_path / "p.csv", PARTS)), "--prefix",
               PREFIX)[0] == 0
    assert resolve(node, f"{PREFIX}/PN-0002").version == 1
    elsewhere = config(tmp_path / "other.toml", target="127.0.0.1:1")
    code, out = run(tmp_path, "list", "--prefix", PREFIX, IDNODE_CLI_CONFIG=str(elsewhere))
    assert code == 3 and "127.0.0.1:1" in out, out


def test_flags_then_the_environment_win_over_the_file(node: Node, tmp_path: Path) -> None:
    target = f"127.0.0.1:{node.grpc_port}"
    cfg = config(tmp_path / "cli.toml", target="127.0.0.1:1", identity=ADMIN_ID,
                 secret="wrong-secret-0000")
    args = ("list", "--prefix", PREFIX, "--config", str(cfg))
    code, out = run(tmp_path, *args)
    assert code == 3 and "127.0.0.1:1" in out, out  # the file's target
    code, out = run(tmp_path, *args, IDNODE_TARGET=target)
    assert code == 1 and "UNAUTHENTICATED" in out, out  # env target, the file's secret
    code, out = run(tmp_path, *args, "--target", target, "--secret", ADMIN_SECRET,
                    "--identity", ADMIN_ID)
    assert code == 0, out  # flags
    code, out = run(tmp_path, *args, IDNODE_TARGET=target, IDNODE_IDENTITY=ADMIN_ID,
                    IDNODE_SECRET=ADMIN_SECRET)
    assert code == 0, out  # environment
    # Credentials are one set: a secret given in the environment is never paired with
    # the file's identity (nor would a token be with its secret).
    code, out = run(tmp_path, *args, IDNODE_TARGET=target, IDNODE_SECRET=ADMIN_SECRET)
    assert code == 1 and "requires credentials" in out, out  # sent no identity at all


def test_a_file_holding_a_secret_that_others_may_read_is_warned_about(
        node: Node, tmp_path: Path) -> None:
    cfg = config(tmp_path / "cli.toml", 0o644, target=f"127.0.0.1:{node.grpc_port}",
                 identity=ADMIN_ID, secret=ADMIN_SECRET)
    code, out = run(tmp_path, "list", "--prefix", PREFIX, "--config", str(cfg))
    assert code == 0 and "other users may read it" in out and f"chmod 600 {cfg}" in out
    cfg.chmod(0o600)
    code, out = run(tmp_path, "list", "--prefix", PREFIX, "--config", str(cfg))
    assert code == 0 and "warning" not in out
    only_target = config(tmp_path / "t.toml", 0o644, target=f"127.0.0.1:{node.grpc_port}")
    code, out = run(tmp_path, "resolve", f"{PREFIX}/none", "--config", str(only_target))
    assert "warning" not in out and "NOT_FOUND" in out, out


@pytest.mark.parametrize(("text", "message"), [
    ('target = "x"\npassword = "y"\n', "unknown keys: password"),
    ("target = \n", "is not valid TOML"),
    ("target = 50051\n", "target must be a string"),
    (None, "does not exist"),
])
def test_a_bad_config_file_stops_the_command_naming_it(
        tmp_path: Path, text: str | None, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    if text is not None:
        cfg.write_text(text, encoding="utf-8")
    code, out = run(tmp_path, "list", "--prefix", PREFIX, "--config", str(cfg))
    assert code == 2 and message in out and str(cfg) in out, out
