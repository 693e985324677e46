"""Write seed inputs for the records fuzzer (tests/fuzz/records_fuzz.c) into a directory.

Usage: ``python tests/fuzz/make_seeds.py DIR`` (scripts/fuzz_records.sh does it). Each seed is
the harness's 4 parameter bytes (record limit, output capacity, hash or not, scheme) and 1-3
valid chunk records: our encoder's, or python-lz4 frames with every option (linked blocks,
checksums, stored content size), plain or byte-grouped. Deterministic (seeded).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import lz4.frame

from xet_pyodide.core.compression import Scheme
from xet_pyodide.core.xorb import encode_chunk, record_header

FRAME_OPTIONS = ("block_linked", "content_checksum", "block_checksum", "store_size")


def seed_input(rnd: random.Random) -> bytes:
    parts = []
    for _ in range(rnd.randrange(1, 4)):
        n = rnd.choice([0, 1, 100, 3000, 20000, 70000])
        if rnd.random() < 0.7:  # compressible: a 4-letter alphabet
            data = rnd.randbytes(n).translate(bytes(b"ab\0\1"[b % 4] for b in range(256)))
        else:
            data = rnd.randbytes(n)
        if rnd.random() < 0.5:
            parts.append(encode_chunk(data, rnd.choice(list(Scheme))))
        else:
            options = {k: rnd.random() < 0.5 for k in FRAME_OPTIONS}
            scheme = rnd.choice([Scheme.LZ4, Scheme.BG4_LZ4])
            source = data[0::4] + data[1::4] + data[2::4] + data[3::4] if scheme == 2 else data
            payload = lz4.frame.compress(source, **options)
            parts.append(record_header(scheme, len(payload), n) + payload)
    cap = rnd.choice([0, 100, 70000, 200000])
    head = bytes([rnd.randrange(8), (cap >> 10) & 0xFF, cap & 0xFF, rnd.randrange(4)])
    return head + b"".join(parts)


def main(out: Path, count: int = 40) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(3)
    for i in range(count):
        (out / f"seed{i}").write_bytes(seed_input(rnd))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
