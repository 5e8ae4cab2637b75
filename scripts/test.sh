#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: system servers, venv, generated-code
# drift check, ruff, mypy --strict, pytest (unit, contract, e2e, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
scripts/system-deps.sh
scripts/bootstrap.sh
echo "== generated code matches proto/"
.venv/bin/python scripts/check_generated.py
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest -q "$@"
echo "== suite wall time: $(( $(date +%s) - started )) s"
