"""The ``idnode`` command's own behaviour, without a running node: the keys commands and
where ``idnode health`` probes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.cli.main import app, health_target
from node.security.signing import rotate
from node.settings import load

ISO_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1",
                                                      **(env or {})})
    return result.exit_code, result.output


def test_keys_list_without_keys_names_the_path_and_the_flags_not_rotate(
        tmp_path: Path) -> None:
    code, out = run("keys", "list", "--data-dir", str(tmp_path / "elsewhere"))
    assert code == 2
    assert f"no key directory found at {tmp_path / 'elsewhere' / 'keys'}" in out
    assert "--data-dir" in out and "--key-dir" in out
    assert "rotate" not in out
    assert not (tmp_path / "elsewhere").exists()  # nothing was created


def test_keys_list_prints_times_in_iso_8601_utc_and_never(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    old = rotate(key_dir, retire_after_seconds=0)
    new = rotate(key_dir, retire_after_seconds=3600)
    meta = json.loads((key_dir / "keys.json").read_text())
    for entry in meta["keys"]:  # fixed times, so the expected text is exact
        entry["not_before"] = 1795914904 if entry["key_id"] == old else 1795918504
        if entry["key_id"] == old:
            entry["not_after"] = 4102444800
    (key_dir / "keys.json").write_text(json.dumps(meta))
    code, out = run("keys", "list", "--key-dir", str(key_dir))
    assert code == 0, out
    lines = dict(line.split("  ", 1) for line in out.splitlines())
    assert re.search(r"since 2026-11-29T01:15:04Z\s+until 2100-01-01T00:00:00Z\s+retired$",
                     lines[old]), lines[old]
    assert re.search(rf"since {ISO_UTC}\s+until never\s+active$", lines[new]), lines[new]
    assert not re.search(r"\b1[0-9]{9}\b", out), "raw epoch seconds in the output"


def test_keys_rotate_help_says_running_nodes_pick_the_key_up_without_a_restart() -> None:
    code, out = run("keys", "rotate", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "store_check_interval_seconds" in text and "when restarted" not in text


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ("http", "http://127.0.0.1:8080/readyz")),
    ({"IDNODE_HTTP_LISTEN": "0.0.0.0:8080"}, ("http", "http://127.0.0.1:8080/readyz")),
    ({"IDNODE_HTTP_LISTEN": "0.0.0.0:9999"}, ("http", "http://127.0.0.1:9999/readyz")),
    ({"IDNODE_HTTP_LISTEN": "10.1.2.3:81"}, ("http", "http://10.1.2.3:81/readyz")),
    ({"IDNODE_HTTP_LISTEN": "[::]:8080"}, ("http", "http://[::1]:8080/readyz")),
    ({"IDNODE_HTTP_LISTEN": "", "IDNODE_GRPC_LISTEN": "0.0.0.0:50052"},
     ("grpc", "127.0.0.1:50052")),
    ({"IDNODE_TLS_CERT_FILE": "c.pem", "IDNODE_TLS_KEY_FILE": "k.pem"},
     ("http", "https://127.0.0.1:8080/readyz")),
])
def test_health_probes_what_the_settings_say(env: dict[str, str],
                                             expected: tuple[str, str]) -> None:
    assert health_target(load(env=env)) == expected


def test_health_reads_the_config_file_like_serve(tmp_path: Path) -> None:
    config = tmp_path / "idnode.toml"
    config.write_text('http_listen = "127.0.0.1:8181"\n')
    assert health_target(load(config_file=str(config), env={})) == (
        "http", "http://127.0.0.1:8181/readyz")


def test_health_with_bad_settings_fails_like_serve() -> None:
    code, out = run("health", env={"IDNODE_HTTP_LISTEN": "nonsense"})
    assert code == 2 and "http_listen" in out


def test_shell_completion_script_and_completions_of_commands_and_options() -> None:
    runner = CliRunner()
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="idnode",
                           env={"SHELL": "/bin/bash"})
    assert script.exit_code == 0 and "complete -o default -F _idnode_completion idnode" \
        in script.output

    def complete(words: str) -> list[str]:
        result = runner.invoke(app, [], prog_name="idnode", env={
            "_IDNODE_COMPLETE": "complete_bash", "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1)})
        return result.output.split()

    assert complete("idnode imp") == ["import"]
    assert set(complete("idnode ex")) == {"export"}
    assert complete("idnode import --pre") == ["--prefix"]
    assert "--config" in complete("idnode list --co")
