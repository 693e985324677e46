#!/usr/bin/env bash
# Set up this machine (idempotent) and run the whole test suite: lint, then pytest over the
# three runtimes (CPython, Pyodide in Node, Pyodide in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check .
echo "[test] pytest"
exec .venv/bin/python -m pytest -ra "$@"
