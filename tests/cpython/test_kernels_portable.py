"""The wasm kernels inside every runtime (CPython/wasmtime, Pyodide in Node, Pyodide in Chromium),
checked against native references computed here in CPython. See tests/portable/kernel_checks.py.
Pyodide runs the checks through pytest-pyodide's ``run_in_pyodide`` (``in_pyodide`` below, the
``rt`` fixture: tests/plugins/pyodide.py).
"""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any

import blake3
import lz4.block
import pytest
import xxhash
from pytest_pyodide import run_in_pyodide

from tests.portable.kernel_checks import make_bytes
from xet_pyodide.kernels import ReferenceKernels

REF = ReferenceKernels()
KINDS = ["random", "text", "zeros", "runs", "periodic"]


@run_in_pyodide(packages=["xet-pyodide"])
async def in_pyodide(selenium, module, func, args):
    """``tests/portable/<module>.<func>(*args)`` inside Pyodide (the ``rt`` fixture calls it)."""
    import importlib
    import inspect

    result = getattr(importlib.import_module(f"tests.portable.{module}"), func)(*args)
    return (await result) if inspect.isawaitable(result) else result


def call(rt: Any, func: str, *args: Any) -> Any:
    """``rt.call("kernel_checks", func, *args)``."""
    return rt.call("kernel_checks", func, *args)


def test_backend_is_wasm(rt):
    name = call(rt, "backend_name")
    assert name == ("wasm/wasmtime" if rt.name == "cpython" else "wasm/js")


def test_blake3(rt):
    rnd = random.Random(20)
    key = rnd.randbytes(32)
    special = [
        0,
        1,
        63,
        64,
        65,
        1023,
        1024,
        1025,
        2048,
        3071,
        4095,
        4096,
        4097,
        8192,
        65535,
        65536,
        65537,
        131072,
        131073,
        1 << 20,
    ]
    cases = [[1, "random", special], [2, "text", [65536] * 16], [3, "zeros", [1 << 20, 0, 5]]]
    for i in range(40):
        lengths = [
            rnd.choice([0, rnd.randrange(1, 1100), rnd.randrange(1, 140_000)])
            for _ in range(rnd.randrange(1, 12))
        ]
        cases.append([100 + i, rnd.choice(KINDS), lengths])
    got = call(rt, "blake3_batches", cases, key.hex())
    assert len(got) == len(cases)
    for (seed, kind, lengths), result in zip(cases, got, strict=True):
        data = make_bytes(seed, sum(lengths), kind)
        pos, expect = 0, []
        for n in lengths:
            expect.append(blake3.blake3(data[pos : pos + n], key=key).hexdigest())
            pos += n
        assert result["many"] == expect, (seed, lengths)
        assert result["single"] == expect, (seed, lengths)


def test_gear(rt):
    rnd = random.Random(21)
    cases = [
        [1, "random", 0, 0, 0],
        [2, "random", 1, 5, 1],
        [3, "text", 1025, 7, 1000],
        [4, "random", 200_003, rnd.getrandbits(64), 65537],
        [5, "zeros", 140_000, 0, 64],
        [6, "periodic", 100_000, 1, 33_333],
        [7, "runs", 70_000, 2**64 - 1, 69_999],
    ]
    got = call(rt, "gear_scans", cases)
    found = 0
    for (seed, kind, n, state, _split), (cands, final) in zip(cases, got, strict=True):
        want_cands, want_state = REF.gear_scan(make_bytes(seed, n, kind), state)
        assert cands == want_cands, seed
        assert final == want_state, seed
        found += len(cands)
    assert found > 0


def test_lz4_our_blocks_decode_natively(rt):
    cases = [
        [i, kind, n]
        for i, (kind, n) in enumerate(
            (k, n) for k in KINDS for n in [0, 1, 12, 13, 100, 4096, 65536, 131072]
        )
    ]
    blocks = call(rt, "lz4_compress_blocks", cases)
    for (seed, kind, n), b64 in zip(cases, blocks, strict=True):
        data = make_bytes(seed, n, kind)
        block = base64.b64decode(b64)
        assert lz4.block.decompress(block, uncompressed_size=n) == data, (kind, n)
        if kind in ("zeros", "runs", "periodic") and n >= 4096:
            assert len(block) < n // 4


def test_lz4_native_blocks_decode_with_ours(rt):
    specs = [
        (i, kind, n)
        for i, (kind, n) in enumerate((k, n) for k in KINDS for n in [0, 1, 100, 65536, 131072])
    ]
    blocks, expect = [], []
    for seed, kind, n in specs:
        data = make_bytes(seed, n, kind)
        mode = "high_compression" if seed % 2 else "default"
        block = lz4.block.compress(data, mode=mode, store_size=False)
        blocks.append([base64.b64encode(block).decode(), n])
        expect.append(hashlib.sha256(data).hexdigest())
    assert call(rt, "lz4_decompress_blocks", blocks) == expect


def test_lz4_malformed_agrees_with_reference(rt):
    assert call(rt, "lz4_malformed", 7, 12) == []


def test_decode_records_agrees_with_reference(rt):
    assert call(rt, "records_vs_reference", 11, 12) == []


def test_encode_record_agrees_with_python(rt):
    assert call(rt, "records_encode_vs_python", 12, 16) == []


def test_encode_records_equals_one_record_per_chunk(rt):
    # mixed chunks (random, text, runs, zeros, float-like), sizes 1 .. 128 KiB, a run
    # of many 512 KiB pieces (one kernel call each), with and without the fused CRC
    assert call(rt, "records_batch_vs_single", 21, 40) == []


def test_popcount_histograms_agree_with_reference(rt):
    assert call(rt, "popcount_vs_reference", 23) == []


@pytest.mark.parametrize("max_xorb_bytes", [1 << 20, 64 << 20])
def test_batched_packing_gives_identical_xorbs(rt, max_xorb_bytes):
    # Packer.stage + flush_file (the upload path) against Packer.add, drafts sealed
    # mid-run (1 MiB xorbs) or not, files interleaved, one file's tail merged
    assert call(rt, "packer_batched_vs_per_chunk", 22, 60, max_xorb_bytes) == []


def test_checksums(rt):
    cases = [
        [i, kind, n, seed32]
        for i, (kind, n, seed32) in enumerate(
            [
                ("random", 0, 0),
                ("random", 1, 1),
                ("text", 15, 2**31),
                ("random", 16, 2**32 - 1),
                ("random", 17, 12345),
                ("runs", 4097, 0),
                ("random", 1 << 20, 99),
                ("zeros", 65536, 0),
            ]
        )
    ]
    got = call(rt, "checksums", cases)
    for (seed, kind, n, seed32), (crc, streamed, xxh) in zip(cases, got, strict=True):
        data = make_bytes(seed, n, kind)
        want = REF.crc64_nvme(data) if n <= 65536 else None
        if want is not None:
            assert crc == want
        assert streamed == crc
        assert xxh == xxhash.xxh32_intdigest(data, seed32)
    # The 1 MiB case against the reference too (slow in pure Python, so only once).
    assert got[6][0] == REF.crc64_nvme(make_bytes(6, 1 << 20, "random"))


def test_sha256(rt):
    """The SHA-256 compression kernel, padded by KernelSha256, against OpenSSL: padding edges
    (55/56/63/64/65 bytes), multi-block, odd write sizes, and one input over a kernel piece."""
    sizes = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 65536, 65537]
    cases = [[i, "random", n, [1, 7, 64, 100][i % 4]] for i, n in enumerate(sizes)]
    cases += [[90, "text", 100_003, 4097], [91, "zeros", 8 << 20 | 13, 3 << 20]]
    got = call(rt, "sha256_digests", cases)
    for (seed, kind, n, _), digests in zip(cases, got, strict=True):
        want = hashlib.sha256(make_bytes(seed, n, kind)).hexdigest()
        assert digests == [want, want, want], (seed, n)


def test_bg4(rt):
    sizes = [0, 1, 2, 3, 4, 5, 63, 64, 65, 127, 128, 129, 1023, 4097, 65536, 131071]
    assert call(rt, "bg4_roundtrips", sizes) == []


def test_memory_is_reused(rt):
    first, after = call(rt, "memory_after", 40)
    assert first == after
    assert 4 << 20 < first < 32 << 20


@run_in_pyodide(packages=["xet-pyodide"])
def load_sync_in_pyodide(selenium):
    """``load_sync()`` on Pyodide's main thread: the backend and a hash, or the refusal."""
    from xet_pyodide.errors import XetKernelError
    from xet_pyodide.kernels._load_pyodide import load_sync

    try:
        k = load_sync()
        return k.name + " " + k.blake3_keyed(b"abc", bytes(32)).hex()
    except XetKernelError as e:
        return "refused " + str(e)


def test_sync_loading_in_pyodide_main_thread(selenium):
    """get_kernels() on the main thread (Chromium's page, Node) either works or says to await
    load_kernels()."""
    result = load_sync_in_pyodide(selenium)
    want = blake3.blake3(b"abc", key=bytes(32)).hexdigest()
    assert result == f"wasm/js {want}" or (
        result.startswith("refused") and "await xet_pyodide.kernels.load_kernels()" in result
    ), result
