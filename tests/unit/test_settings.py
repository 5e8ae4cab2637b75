"""Settings: precedence (defaults < file < env < flags), validation that names the setting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.settings import SettingsError, load, read_urls


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
    ({"IDNODE_REDIS_URL": "redis+sentinel://h1:26379"}, "redis_url"),
    ({"IDNODE_REDIS_URL": "redis+cluster://h1:7000/2"}, "redis_url"),
])
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(env=env)


@pytest.mark.parametrize(("env", "name"), [
    ({"IDNODE_TLS_CERT_FILE": "c.pem"}, "tls_key_file"),
    ({"IDNODE_TLS_KEY_FILE": "k.pem"}, "tls_cert_file"),
    ({"IDNODE_TLS_CLIENT_CA_FILE": "ca.pem"}, "tls_client_ca_file"),
    ({"IDNODE_TLS_CERT_FILE": "c.pem", "IDNODE_TLS_KEY_FILE": "k.pem",
      "IDNODE_TLS_CLIENT_CA_FILE": "ca.pem"}, "tls_client_ca_file"),
    ({"IDNODE_TLS_CERT_FILE": "c.pem", "IDNODE_TLS_KEY_FILE": "k.pem",
      "IDNODE_GRPC_TLS_CLIENT_AUTH": "require"}, "grpc_tls_client_auth"),
    ({"IDNODE_GRPC_TLS_CLIENT_AUTH": "optional"}, "grpc_tls_client_auth"),
    ({"IDNODE_HTTP_TLS_CLIENT_AUTH": "maybe"}, "http_tls_client_auth"),
    ({"IDNODE_TLS_RELOAD_INTERVAL_SECONDS": "0"}, "tls_reload_interval_seconds"),
])
def test_tls_settings_must_agree(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=f"setting {name}"):
        load(env=env)


def test_tls_is_off_by_default_and_mtls_takes_three_settings() -> None:
    assert load(env={}).tls_cert_file == ""
    s = load(env={"IDNODE_TLS_CERT_FILE": "c.pem", "IDNODE_TLS_KEY_FILE": "k.pem",
                  "IDNODE_TLS_CLIENT_CA_FILE": "ca.pem",
                  "IDNODE_GRPC_TLS_CLIENT_AUTH": "require",
                  "IDNODE_HTTP_TLS_CLIENT_AUTH": "optional"})
    assert (s.grpc_tls_client_auth, s.http_tls_client_auth) == ("require", "optional")


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


class Captured(logging.Handler):
    """Records of the settings logger, whatever another test did to the "idnode" logger's
    propagation (caplog only sees what reaches the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def settings_log() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("idnode.settings")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_a_misspelt_variable_warns_and_names_the_likely_one(settings_log: Captured) -> None:
    s = load(env={"IDNODE_WORKER": "3", "IDNODE_GRCP_LISTEN": "0.0.0.0:1",
                  "IDNODE_COLOUR": "blue", "IDNODE_WORKERS": "2"})
    assert s.workers == 2
    messages = sorted(r.getMessage() for r in settings_log.records)
    assert len(messages) == 3, messages
    assert "IDNODE_COLOUR" in messages[0] and "did you mean" not in messages[0]
    assert "IDNODE_GRCP_LISTEN" in messages[1]
    assert "did you mean IDNODE_GRPC_LISTEN?" in messages[1]
    assert "IDNODE_WORKER " in messages[2] and "did you mean IDNODE_WORKERS?" in messages[2]
    assert all(r.levelno == logging.WARNING for r in settings_log.records)


def test_known_variables_and_those_of_the_cli_and_tests_do_not_warn(
        settings_log: Captured) -> None:
    env = {name: "x" for name in ("IDNODE_TARGET", "IDNODE_IDENTITY", "IDNODE_SECRET",
                                  "IDNODE_TOKEN", "IDNODE_TEST_REDIS_URL",
                                  "IDNODE_TEST_DATABASE_URL", "IDNODE_WORKER_INDEX")}
    env.update(IDNODE_WORKERS="2", IDNODE_LOG_FORMAT="json", OTHER_THING="y",
               IDNODE_ADMIN_SECRET="a-long-enough-secret")
    load(env=env)
    assert [r.getMessage() for r in settings_log.records] == []


def test_logins_waiting_for_secret_checks_cannot_take_every_request_thread() -> None:
    with pytest.raises(SettingsError, match="setting auth_queue"):
        load(env={"IDNODE_GRPC_THREADS": "4", "IDNODE_AUTH_QUEUE": "3"})
    assert load(env={"IDNODE_GRPC_THREADS": "4", "IDNODE_AUTH_QUEUE": "2"}).auth_queue == 2


PG = "postgresql://u:pw-Secret-1@db.example:5432/idnode"


@pytest.mark.parametrize(("env", "words"), [
    ({"IDNODE_DATABASE_READ_URL": PG}, "need a PostgreSQL database_url"),
    ({"IDNODE_DATABASE_URL": PG,
      "IDNODE_DATABASE_READ_URL": f"{PG}, redis://u:pw-Secret-1@db.example"}, "URL 2 is not"),
    ({"IDNODE_DATABASE_URL": PG, "IDNODE_DATABASE_READ_URL": PG,
      "IDNODE_DATABASE_READ_TIMEOUT_MS": "0"}, "database_read_timeout_ms"),
])
def test_read_replicas_are_postgresql_copies_of_a_postgresql_primary(
        env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match="database_read") as caught:
        load(env=env)
    assert words in str(caught.value)
    assert "pw-Secret-1" not in str(caught.value) and "db.example" not in str(caught.value)


def test_several_read_replicas_are_comma_separated_and_not_in_the_repr() -> None:
    settings = load(env={"IDNODE_DATABASE_URL": PG,
                         "IDNODE_DATABASE_READ_URL": f" {PG}/a ,{PG}/b,"})
    assert read_urls(settings) == [f"{PG}/a", f"{PG}/b"]
    assert "pw-Secret-1" not in repr(settings).replace(PG, "", 1)
