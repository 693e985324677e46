#!/usr/bin/env bash
# Take a fresh Debian machine to "ready": system packages, npm packages, the .venv with pinned
# development dependencies and both of our packages, the wasm kernels, the wheel and the offline
# Pyodide distribution. Idempotent; a second run only rebuilds the wheel (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
log() { printf '[setup] %s\n' "$*" >&2; }
# pip is quiet on success and shows everything on failure (its exit status is kept).
run_pip() {
    local out
    if ! out=$(.venv/bin/python -m pip --disable-pip-version-check "$@" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

# --- system packages: Chromium (+ its WebDriver, for pytest-pyodide) for browser tests, ------
# --- clang + lld for wasm32 kernels ----------------------------------------------------------
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v wasm-ld >/dev/null 2>&1 || need_apt+=(lld)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "apt-get install ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# libFuzzer and the sanitizer runtimes, for the records fuzzer the test suite runs
# (scripts/fuzz_records.sh); Debian ships them in libclang-rt-dev, which clang only recommends.
fuzz_probe='int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }'
if ! echo "$fuzz_probe" | clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1; then
    log "apt-get install libclang-rt-dev"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-rt-dev >/dev/null
fi

# --- npm: the Pyodide runtime (and the JS peer chunker used by benchmarks) ------------------
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json .cache/package-lock.stamp 2>/dev/null; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    mkdir -p .cache && cp package-lock.json .cache/package-lock.stamp
fi

# --- Python virtual environment -------------------------------------------------------------
PYTHON_BIN=${PYTHON_BIN:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($PYTHON_BIN --version)"
    "$PYTHON_BIN" -m venv .venv
fi
stamp=.venv/.xet-requirements.sha256
want=$(cat requirements-dev.txt pyproject.toml cas_server/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing pinned development dependencies"
    run_pip install pip==26.3
    run_pip install -r requirements-dev.txt
    run_pip install --no-deps --no-build-isolation -e .
    if [ -f cas_server/pyproject.toml ]; then
        run_pip install --no-deps --no-build-isolation -e cas_server
    fi
    run_pip check
    echo "$want" > "$stamp"
fi

# --- kernels, wheel, Pyodide distribution ---------------------------------------------------
log "building kernels, wheel and web/pyodide"
PYTHON="$REPO/.venv/bin/python" bash build_wheel.sh >&2
log "ready"
