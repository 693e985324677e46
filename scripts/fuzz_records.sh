#!/usr/bin/env bash
# Fuzz the record kernels natively (libFuzzer + AddressSanitizer + UBSan) for SECONDS (default
# 120): tests/fuzz/records_fuzz.c against csrc/records.c, lz4.c, xxh32.c, bg4.c, blake3.c.
# Seeds are valid records (our encoder, python-lz4 frames with every option) made by the
# project's .venv. Exits non-zero on any finding; crash inputs are left in .cache/fuzz/.
# Needs clang with libFuzzer (Debian's clang package has it). Not run by the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-120}
SRC=xet_pyodide/kernels/csrc
WORK=.cache/fuzz
mkdir -p "$WORK/corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$SRC" \
    tests/fuzz/records_fuzz.c "$SRC"/records.c "$SRC"/lz4.c "$SRC"/xxh32.c "$SRC"/bg4.c \
    "$SRC"/blake3.c -o "$WORK/records_fuzz"
.venv/bin/python - "$WORK/corpus" <<'PY'
import random, struct, sys
import lz4.frame
from xet_pyodide.core.compression import Scheme
from xet_pyodide.core.xorb import encode_chunk, record_header

rnd = random.Random(3)
for i in range(40):
    parts = []
    for _ in range(rnd.randrange(1, 4)):
        n = rnd.choice([0, 1, 100, 3000, 20000, 70000])
        data = bytes(rnd.choice(b"ab\0\1") for _ in range(n)) if rnd.random() < 0.7 else rnd.randbytes(n)
        if rnd.random() < 0.5:
            parts.append(encode_chunk(data, rnd.choice(list(Scheme))))
        else:
            options = {k: rnd.random() < 0.5 for k in ("block_linked", "content_checksum", "block_checksum", "store_size")}
            scheme = rnd.choice([1, 2])
            source = data[0::4] + data[1::4] + data[2::4] + data[3::4] if scheme == 2 else data
            payload = lz4.frame.compress(source, **options)
            parts.append(record_header(scheme, len(payload), n) + payload)
    cap = rnd.choice([0, 100, 70000, 200000])
    head = bytes([rnd.randrange(8), (cap >> 10) & 0xFF, cap & 0xFF, rnd.randrange(4)])
    open(f"{sys.argv[1]}/seed{i}", "wb").write(head + b"".join(parts))
PY
cd "$WORK"
./records_fuzz corpus -max_len=300000 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1
