#!/usr/bin/env bash
# Build xet_pyodide/kernels/xet_kernels.wasm from xet_pyodide/kernels/csrc/*.c.
#
# Freestanding wasm32 (no libc, no emscripten): clang + wasm-ld, SIMD128 and bulk memory.
# Idempotent and fast: does nothing when the .wasm is newer than every source (and this
# script); --force rebuilds anyway. Fails loudly (non-zero exit, compiler output) on any error.
# Environment: CLANG (default clang), XK_CFLAGS (extra flags, e.g. -DXK_DEBUG).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=xet_pyodide/kernels/csrc
OUT=xet_pyodide/kernels/xet_kernels.wasm
CLANG=${CLANG:-clang}

force=0
[ "${1:-}" = "--force" ] && force=1

if [ "$force" = 0 ] && [ -f "$OUT" ] \
    && [ -z "$(find "$SRC" "$0" -newer "$OUT" -type f 2>/dev/null)" ]; then
    echo "build_kernels: $OUT is up to date" >&2
    exit 0
fi

command -v "$CLANG" >/dev/null || { echo "build_kernels: $CLANG not found (apt-get install clang lld)" >&2; exit 1; }
command -v wasm-ld >/dev/null || { echo "build_kernels: wasm-ld not found (apt-get install lld)" >&2; exit 1; }

tmp=$(mktemp "$OUT.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# 64 KiB pages: initial 2 MiB (stack 256 KiB + tables + arena start), maximum 2 GiB.
# shellcheck disable=SC2086
"$CLANG" --target=wasm32 -O3 -std=c11 -Wall -Wextra -Werror -nostdlib -ffreestanding \
    -fno-builtin-memcpy -fno-builtin-memset -fno-builtin-memmove \
    -mbulk-memory -msimd128 -msign-ext -mnontrapping-fptoint \
    ${XK_CFLAGS:-} \
    -Wl,--no-entry -Wl,--stack-first -Wl,-z,stack-size=262144 \
    -Wl,--initial-memory=2097152 -Wl,--max-memory=2147483648 \
    -Wl,--strip-all \
    -o "$tmp" "$SRC"/*.c
chmod 644 "$tmp"
mv -f "$tmp" "$OUT"
trap - EXIT
echo "build_kernels: built $OUT ($(wc -c < "$OUT") bytes)" >&2
