"""Settings: precedence (defaults < file < env < flags), validation that names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.settings import SettingsError, load


def test_defaults_are_the_embedded_node() -> None:
    s = load(env={})
    assert (s.grpc_listen, s.http_listen, s.redis_url, s.workers) == (
        "127.0.0.1:50051", "127.0.0.1:8080", "", 1)
    assert s.sqlite_path.endswith("idnode-data/idnode.sqlite3")
    assert s.node_id == "idnode-88.118"


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "idnode.toml"
    cfg.write_text('grpc_listen = "0.0.0.0:1"\nworkers = 2\nnode-prefix = "86.100"\n')
    s = load(config_file=str(cfg), env={"IDNODE_WORKERS": "3"},
             overrides={"grpc_listen": "127.0.0.1:2", "http_listen": None})
    assert (s.grpc_listen, s.workers, s.node_prefix, s.http_listen) == (
        "127.0.0.1:2", 3, "86.100", "127.0.0.1:8080")


@pytest.mark.parametrize(("env", "name"), [
    ({"IDNODE_GRPC_LISTEN": "nope"}, "grpc_listen"),
    ({"IDNODE_WORKERS": "many"}, "workers"),
    ({"IDNODE_WORKERS": "0"}, "workers"),
    ({"IDNODE_NODE_PREFIX": "88..1"}, "node_prefix"),
    ({"IDNODE_NEGATIVE_TTL_SECONDS": "600"}, "negative_ttl_seconds"),
    ({"IDNODE_SIGNING_ALGORITHM": "RSA"}, "signing_algorithm"),
    ({"IDNODE_DATABASE_URL": "mysql://x"}, "database_url"),
    ({"IDNODE_REDIS_URL": "http://x"}, "redis_url"),
])
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(env=env)


def test_unknown_or_secret_keys_in_a_file_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('colour = "blue"\n')
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load(config_file=str(cfg), env={})
    cfg.write_text('admin_secret = "in a file"\n')
    with pytest.raises(SettingsError, match="admin_secret"):
        load(config_file=str(cfg), env={})
    cfg.write_text("not toml = = =\n")
    with pytest.raises(SettingsError, match="config file"):
        load(config_file=str(cfg), env={})


def test_the_admin_secret_is_not_in_the_repr() -> None:
    s = load(env={"IDNODE_ADMIN_SECRET": "very-secret-value"})
    assert "very-secret-value" not in repr(s)


def test_a_short_admin_secret_is_a_settings_error_not_a_crash() -> None:
    with pytest.raises(SettingsError, match="admin_secret: a secret needs at least 12"):
        load(env={"IDNODE_ADMIN_SECRET": "short"})
