"""The HTTP scenario's pieces without I/O: h2load --h1 command, Zipf URL lists, the
empty handler's body and ASGI answer, and the HTTP targets in the report."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from loadtest import http_bench, http_echo
from loadtest.report import Run, build_report, http_targets, summarize, table
from loadtest.runner import SCENARIOS, parse_args


def test_h1_command_is_keep_alive_one_in_flight_from_a_uri_file(tmp_path: Path) -> None:
    urls = tmp_path / "u.txt"
    cmd = http_bench.command("/usr/bin/h2load", urls, duration=5, warmup=1, connections=32)
    assert cmd[:2] == ["/usr/bin/h2load", "--h1"]
    assert ["-c", "32", "-m", "1", "-t", "1", "-i", str(urls)] == cmd[-8:]
    assert "-D" in cmd and "5000ms" in cmd and "--warm-up-time=1000ms" in cmd


def test_zipf_urls_are_loopback_resolve_urls_of_seeded_ids(tmp_path: Path) -> None:
    urls = http_bench.zipf_urls("127.0.0.1", 8080, ids=100, zipf_s=0.99, count=500)
    assert len(urls) == 500
    assert all(u.startswith("http://127.0.0.1:8080/api/handles/88.118.8/LT-") for u in urls)
    assert len(set(urls)) < 100  # skewed: some ids repeat, many never drawn
    assert urls == http_bench.zipf_urls("127.0.0.1", 8080, ids=100, zipf_s=0.99, count=500)
    path = http_bench.write_urls(tmp_path / "u.txt", urls)
    assert path.read_text().splitlines() == urls


def test_urls_refuse_non_loopback_hosts() -> None:
    with pytest.raises(ValueError):
        http_bench.resolve_url("10.0.0.1", 80, "88.118.8/X")


@pytest.mark.parametrize("size", [120, 300, 378, 1000])
def test_echo_body_is_json_of_the_asked_size(size: int) -> None:
    body = http_echo.body_of(size)
    assert len(body) == size
    assert json.loads(body)["responseCode"] == 1


def test_echo_app_ignores_the_path_and_answers_the_fixed_body() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    app = http_echo.make_app(b'{"x":1}')

    async def call() -> None:
        await app({"type": "http", "path": "/anything/at/all", "method": "GET"}, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 200
    assert (b"content-length", b"7") in sent[0]["headers"]
    assert sent[1]["body"] == b'{"x":1}'


def test_http_is_a_scenario_with_a_connections_knob() -> None:
    assert "http" in SCENARIOS
    args = parse_args(["--scenarios", "http", "--http-connections", "8"])
    assert args.selected == {"http"} and args.http_connections == 8
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "http", "--http-connections", "0"])


def _h1(server: str, rps: float, cpu: float, rep: int = 0) -> Run:
    return Run(scenario="http", server=server, mode="h1load", client="h2load --h1 c32 m1",
               repeat=rep, duration_s=5, requests=int(rps * 5), rps=rps, cpu_us_per_req=cpu)


def _grpc(rps: float, cpu: float) -> Run:
    return Run(scenario="http-grpc", server="node", mode="h2load", client="h2load c4 m32",
               duration_s=5, requests=int(rps * 5), rps=rps, cpu_us_per_req=cpu)


def test_http_rows_compare_with_the_http_empty_handler_and_grpc() -> None:
    runs = [_h1("http-echo", 20000, 40, 0), _h1("http-echo", 22000, 38, 1),
            _h1("node", 17000, 48, 0), _h1("node", 18000, 47, 1), _grpc(5000, 180)]
    rows = summarize(runs)
    node = next(r for r in rows if (r.server, r.scenario) == ("node", "http"))
    assert node.baseline.startswith("http-echo")
    assert node.throughput_ratio == pytest.approx(17500 / 21000)
    assert node.efficiency == pytest.approx(39 / 47.5)
    grpc = next(r for r in rows if r.scenario == "http-grpc")
    assert math.isnan(grpc.throughput_ratio)  # no gRPC echo in this run
    first, second = http_targets(rows)
    assert first.status == "pass" and "83% req/s" in first.measured
    assert second.status == "pass" and "3.50× req/s" in second.measured
    report = build_report({}, runs, [], {}, {}, {})
    text = table(report)
    assert "[pass] HTTP resolve vs HTTP empty handler" in text
    assert "[pass] HTTP resolve vs gRPC resolve, per core" in text


def test_http_targets_fail_on_the_worse_view_and_are_absent_without_http() -> None:
    rows = summarize([_h1("http-echo", 20000, 40), _h1("node", 19000, 60),
                      _grpc(5000, 150)])
    first, second = http_targets(rows)
    assert first.status == "FAIL"  # 95% by req/s, 67% by CPU/request
    assert second.status == "FAIL"  # 3.8× by req/s, 2.5× by CPU/request
    assert http_targets(summarize([_grpc(5000, 150)])) == []


def test_the_asgi_empty_handler_is_reported_beside_the_direct_one_not_as_the_baseline() -> None:
    runs = [_h1("http-echo", 40000, 20), _h1("http-echo-asgi", 20000, 45),
            _h1("node", 34000, 24), _grpc(5000, 150)]
    rows = summarize(runs)
    node = next(r for r in rows if (r.server, r.scenario) == ("node", "http"))
    assert node.baseline.startswith("http-echo ")  # the direct empty handler
    first, reference, grpc = http_targets(rows)
    assert first.status == "pass" and "83% by CPU/request" in first.measured
    assert reference.status == "info" and "188% by CPU/request" in reference.measured
    assert grpc.status == "pass" and "6.25× by CPU/request" in grpc.measured


def test_the_direct_echo_answers_what_its_asgi_app_sends() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    echo = http_echo.DirectEcho(b'{"x":1}')
    asyncio.run(echo({"type": "http", "path": "/a", "method": "GET"}, receive, send))
    answer = echo.direct("GET", "/any", b"/any", b"", [], None, None)
    assert answer == (sent[0]["status"], sent[0]["headers"], sent[1]["body"])
