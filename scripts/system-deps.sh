#!/usr/bin/env bash
# Installs the servers the integration tests start on free ports (they never use a
# server someone else started). Debian: redis-server (and redis-cli, which makes the test
# Cluster) and the PostgreSQL server binaries
# (initdb, postgres under /usr/lib/postgresql/N/bin; tests/pg_server.py runs them) from
# apt. The scan-page tests
# need chromium (headless screenshots at phone width) with a CJK font (Chinese records
# must not render as boxes) and zbar-tools (zbarimg decodes the QR labels).
# h2load (nghttp2-client) is the load harness's C client; the HTTP load smoke test uses it.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# redis-cli --cluster create builds the test Cluster (redis-tools; redis-server pulls it).
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -n "$(fc-list :lang=zh 2>/dev/null)" ] || need+=(fonts-wqy-zenhei)
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages may start system instances; the tests start their own.
$SUDO service redis-server stop >/dev/null 2>&1 || true
$SUDO service postgresql stop >/dev/null 2>&1 || true
