#!/usr/bin/env bash
# Set up this machine (idempotent) and run the main job: the local CAS server serving the demo
# page, and one real upload + download driven through that page in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
