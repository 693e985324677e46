#!/usr/bin/env bash
# Build the py3-none-any wheel of xet_pyodide into dist/ and refresh the offline Pyodide
# distribution in web/pyodide/.
#
#   1. compile the C kernels to freestanding wasm32 with Debian clang (scripts/build_kernels.sh);
#      the .wasm becomes package data of xet_pyodide.kernels;
#   2. `python -m build --wheel` (no isolation: setuptools/wheel are pinned in .venv, so the
#      build needs no network);
#   3. scripts/build_pyodide_dist.py copies the wheel next to the Pyodide runtime and
#      regenerates pyodide-lock.json with real sha256 values.
#
# `pyodide build` (pyodide-build) cannot run on these machines (it needs to download a
# cross-build environment); it is not needed either: the package is pure Python plus a .wasm.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# One build at a time per checkout: concurrent pytest runs (or a developer rebuilding while
# the harness auto-rebuilds) would otherwise race on build/, dist/ and web/pyodide/.
mkdir -p .cache
exec 9>.cache/build_wheel.lock
flock 9

bash scripts/build_kernels.sh
rm -rf build xet_pyodide.egg-info
# (The log stays in this checkout: a shared /tmp name would mix other checkouts' builds in.)
"$PY" -m build --wheel --no-isolation --outdir dist . >.cache/build_wheel.log 2>&1 || {
    cat .cache/build_wheel.log >&2; exit 1; }
wheel=$(ls -t dist/xet_pyodide-*-py3-none-any.whl | head -n 1)
# Keep dist/ to the wheel we just built.
find dist -name 'xet_pyodide-*.whl' ! -name "$(basename "$wheel")" -delete
rm -rf build xet_pyodide.egg-info
"$PY" - "$wheel" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
missing = [n for n in ("xet_pyodide/kernels/xet_kernels.wasm",) if n not in names]
if missing:
    sys.exit(f"wheel is missing {missing}")
PYEOF
"$PY" scripts/build_pyodide_dist.py --wheel "$wheel" >/dev/null
echo "built $wheel"
