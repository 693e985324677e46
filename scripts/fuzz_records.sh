#!/usr/bin/env bash
# Fuzz the record kernels natively: libFuzzer + AddressSanitizer + UBSan, tests/fuzz/records_fuzz.c
# over csrc/records.c, lz4.c, xxh32.c, bg4.c and blake3.c built for this machine (so the
# wasm-only SIMD paths are not exercised here; test_kernels_records.py drives the shipped .wasm
# with mutated corpus inputs against the reference decoder).
#
#   bash scripts/fuzz_records.sh [SECONDS] [--merge]
#
# Loads (runs) every input of the regression corpus tests/fuzz/corpus/ and fresh seeds
# (tests/fuzz/make_seeds.py), then fuzzes until SECONDS (default 120) have passed in all; 0 =
# only run the corpus. New inputs go to .cache/fuzz/found/; --merge then copies those that
# reach new coverage into tests/fuzz/corpus/ (commit them). Exits non-zero on any finding and
# leaves the input as .cache/fuzz/crash-* (or leak-*, timeout-*): once fixed, add it to the
# corpus. XET_FUZZ_SEED is libFuzzer's seed (default 1, so every run tries the same inputs in
# the same order; 0 = random). The test suite runs 20 s of it (tests/cpython/test_fuzz_records.py).
# Needs clang with libFuzzer (Debian: clang + libclang-rt-dev; scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=120
MERGE=0
for arg in "$@"; do
    case "$arg" in
        --merge) MERGE=1 ;;
        *) SECONDS_TO_RUN=$arg ;;
    esac
done
SRC=xet_pyodide/kernels/csrc
WORK=.cache/fuzz
CORPUS=tests/fuzz/corpus
BIN=$WORK/records_fuzz
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$WORK/found"
exec 9>"$WORK/lock"  # one run per checkout at a time (shared binary and work directories)
flock 9

sources=(tests/fuzz/records_fuzz.c "$SRC"/records.c "$SRC"/lz4.c "$SRC"/xxh32.c "$SRC"/bg4.c "$SRC"/blake3.c
    "$SRC"/crc64.c)
if [ ! -x "$BIN" ] || [ -n "$(find "${sources[@]}" "$SRC"/*.h "$0" -newer "$BIN" 2>/dev/null)" ]; then
    clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$SRC" \
        "${sources[@]}" -o "$BIN.tmp"
    mv -f "$BIN.tmp" "$BIN"
fi
if [ ! -d "$WORK/seeds" ]; then
    "$PY" tests/fuzz/make_seeds.py "$WORK/seeds.tmp"
    mv "$WORK/seeds.tmp" "$WORK/seeds"
fi

# (No leak detection: the kernels never allocate, and LeakSanitizer needs ptrace, which some
# CI containers refuse.)
common=(-max_len=300000 -seed="${XET_FUZZ_SEED:-1}" -artifact_prefix="$WORK/" -print_final_stats=1
    -detect_leaks=0)
if [ "$SECONDS_TO_RUN" = 0 ]; then
    "$BIN" "${common[@]}" -runs=0 "$CORPUS" "$WORK/seeds"
else
    "$BIN" "${common[@]}" -max_total_time="$SECONDS_TO_RUN" "$WORK/found" "$CORPUS" "$WORK/seeds"
fi
if [ "$MERGE" = 1 ]; then
    "$BIN" -merge=1 -max_len=300000 "$CORPUS" "$WORK/found" "$WORK/seeds"
    echo "fuzz_records: $CORPUS now holds $(find "$CORPUS" -type f | wc -l) inputs"
fi
