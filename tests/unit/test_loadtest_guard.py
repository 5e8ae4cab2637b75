"""The harness refuses to point load at anything but this machine's loopback."""

from __future__ import annotations

import pytest

from loadtest.guard import NotLoopbackError, join_target, require_loopback, split_target
from loadtest.runner import parse_args


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost",
                                  "LOCALHOST"])
def test_loopback_is_accepted(host: str) -> None:
    assert require_loopback(host) == host


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.10", "0.0.0.0", "::", "8.8.8.8",
                                  "example.com", "localhost.example.com", "node.internal",
                                  "", "2001:db8::1", "::ffff:10.0.0.1"])
def test_anything_else_is_refused(host: str) -> None:
    with pytest.raises(NotLoopbackError):
        require_loopback(host)


def test_targets_are_checked_both_ways() -> None:
    assert split_target("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert split_target("[::1]:50051") == ("[::1]", 50051)
    assert join_target("::1", 9) == "[::1]:9"
    assert join_target("localhost", 9) == "localhost:9"
    with pytest.raises(NotLoopbackError):
        split_target("10.1.2.3:50051")
    with pytest.raises(NotLoopbackError):
        join_target("203.0.113.5", 50051)
    with pytest.raises(ValueError):
        split_target("127.0.0.1")


def test_the_command_line_refuses_a_remote_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--host", "192.0.2.1"])
    assert "loopback" in capsys.readouterr().err
    assert parse_args(["--host", "::1"]).host == "::1"


def test_the_command_line_rejects_unknown_scenarios() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "hot,warp"])
    assert parse_args(["--scenarios", "hot,bulk"]).selected == {"hot", "bulk"}
