"""Kernel throughput measured from Python through the public kernel API (copies included).

Runs unchanged in CPython (wasmtime), Pyodide in Node and Pyodide in Chromium: only stdlib and
``xet_pyodide`` imports. ``bench/kernels.py`` drives it; :func:`run` returns GB/s per kernel
(best of ``repeat`` timed runs after one warm-up run), single-threaded.

``settle_s``: seconds to wait before the first timing. Right after Pyodide has loaded, the
engine is still busy in background threads (tiering up Pyodide's own module); on a 2-core
machine that took 10-20 % off the kernels timed in the first ~1.5-4 s (BLAKE3 through the API,
Chromium, best of 5 at 0.2 s / 1.4 s / 2.6 s / 3.8 s after load: 1.78 / 2.10 / 2.25 / 2.36 GB/s,
then flat). Users hash long after start-up, so the bench waits too.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import time
from collections.abc import Callable
from typing import Any

WORDS = [
    b"the ",
    b"xet ",
    b"chunk ",
    b"hash ",
    b"0123 ",
    b"\n",
    b"pyodide ",
    b"lz4 ",
    b"data ",
    b"storage ",
    b'{"id": ',
    b"42, ",
    b"\x00\x01\x02\x03",
]


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def text_bytes(n: int, seed: int) -> bytes:
    """Compressible, text-like input (LZ4 ratio about 0.4)."""
    rnd = random.Random(seed)
    parts = rnd.choices(WORDS, k=n // 4 + 16)
    noise = rnd.randbytes(n // 16)
    out = bytearray(b"".join(parts)[:n])
    for i in range(0, n - 16, 256):  # sprinkle some incompressible bytes
        j = (i // 16) % max(1, len(noise) - 16)
        out[i : i + 16] = noise[j : j + 16]
    return bytes(out)


def _best(fn: Callable[[], Any], nbytes: int, repeat: int) -> float:
    fn()  # warm-up (also lets a tiering engine optimize)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e9


def _packers(n: int) -> tuple[Callable[[], None], Callable[[], None], int]:
    """The upload's packing of ``n`` bytes of chunks (8-128 KiB; half random, half float-like:
    every fourth byte the same, BG4 wins) two ways, for :func:`run`."""
    from xet_pyodide.core.crc import crc64_nvme
    from xet_pyodide.session.packing import Packer

    rnd = random.Random(3)
    half = n // 2
    data = bytearray(rnd.randbytes(n))
    data[half + 3 :: 4] = bytes([0x3F]) * len(range(half + 3, n, 4))
    view = memoryview(data)
    chunks, pos = [], 0
    while pos < n:
        size = min(rnd.randrange(8 << 10, (128 << 10) + 1), n - pos)
        chunks.append(view[pos : pos + size])
        pos += size
    hashes = [rnd.randbytes(32) for _ in chunks]

    def per_chunk() -> None:
        sealed: list = []
        packer = Packer(sealed.append)
        for c, h in zip(chunks, hashes, strict=True):
            packer.add(0, c, h)
        packer.seal_all()
        for x in sealed:
            crc64_nvme(x.body)

    def staged() -> None:
        sealed: list = []
        packer = Packer(sealed.append, checksum=True)
        run = 0
        for c, h in zip(chunks, hashes, strict=True):
            packer.stage(0, c, h)
            run += len(c)
            if run >= 8 << 20:  # the upload flushes once per 8 MiB committed
                packer.flush_file(0)
                run = 0
        packer.flush_file(0)
        packer.seal_all()

    return per_chunk, staged, n


async def run(
    size_mib: int = 64, chunk_kib: int = 64, repeat: int = 5, settle_s: float = 0.0
) -> dict[str, Any]:
    from xet_pyodide import kernels
    from xet_pyodide.kernels.reference import ReferenceKernels
    from xet_pyodide.kernels.sha256 import KernelSha256

    k = await kernels.load_kernels()
    n = size_mib << 20
    chunk = chunk_kib << 10
    data = random_bytes(n, 1)
    key = bytes(range(32))
    lengths = [chunk] * (n // chunk)
    small = text_bytes(min(n, 16 << 20), 2)
    chunks = [small[i : i + chunk] for i in range(0, len(small), chunk)]
    packed = [k.lz4_compress_block(c) for c in chunks]
    ratio = sum(map(len, packed)) / len(small)

    def lz4_c() -> None:
        for c in chunks:
            k.lz4_compress_block(c)

    def lz4_d() -> None:
        for p, c in zip(packed, chunks, strict=True):
            k.lz4_decompress_block(p, len(c))

    def bg4() -> None:
        for c in chunks:
            k.bg4_split(c)

    pack_add, pack_staged, pack_bytes = _packers(n)
    hist, py_hist = k.popcount_histograms, ReferenceKernels().popcount_histograms

    await asyncio.sleep(settle_s)
    results = {
        "gear_scan": _best(lambda: k.gear_scan(data), n, repeat),
        "blake3_64k": _best(lambda: k.blake3_keyed_many(data, lengths, key), n, repeat),
        "lz4_compress": _best(lz4_c, len(small), repeat),
        "lz4_decompress": _best(lz4_d, len(small), repeat),
        "bg4_split": _best(bg4, len(small), repeat),
        "crc64": _best(lambda: k.crc64_nvme(data), n, repeat),
        "sha256": _best(lambda: KernelSha256(k, data).digest(), n, repeat),
        # the BG4 predictor's statistic: kernel, and Python's translate/count (before)
        "popcount_hist": _best(lambda: list(map(hist, chunks)), len(small), repeat),
        "popcount_hist_python": _best(lambda: list(map(py_hist, chunks)), len(small), repeat),
        # xorb packing of half random, half float-like data: one record per call and a CRC
        # pass over each sealed body (before), or staged and packed per run with the CRC kept
        "pack_per_chunk": _best(pack_add, pack_bytes, repeat),
        "pack_staged": _best(pack_staged, pack_bytes, repeat),
    }
    return {
        "backend": k.name,
        # this runtime's hashlib on the same bytes: what the SHA-256 kernel has to beat
        "hashlib_sha256_gbps": _best(lambda: hashlib.sha256(data).digest(), n, repeat),
        "platform": sys.platform,
        "gbps": results,
        "lz4_ratio": ratio,
        "size_mib": size_mib,
        "chunk_kib": chunk_kib,
        "repeat": repeat,
        "settle_s": settle_s,
    }
