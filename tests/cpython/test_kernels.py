"""The wasm kernels (on wasmtime) against native references and the reference backend.

LZ4 has its own file (test_kernels_lz4.py); the in-Pyodide versions of these checks are in
test_kernels_portable.py.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
from pathlib import Path

import blake3
import pytest
import xxhash

from tests.cpython._core_helpers import vector_file
from xet_pyodide.errors import XetKernelError
from xet_pyodide.kernels import ReferenceKernels, get_kernels, reset_kernels
from xet_pyodide.kernels._load_wasmtime import load
from xet_pyodide.kernels._wasm import WasmKernels
from xet_pyodide.kernels.gear_table import GEAR_TABLE
from xet_pyodide.kernels.sha256 import SHA256_IV, KernelSha256

KERNELS_DIR = Path(__file__).resolve().parents[2] / "xet_pyodide" / "kernels"
EDGE_SIZES = [
    0,
    1,
    2,
    3,
    4,
    5,
    15,
    16,
    17,
    63,
    64,
    65,
    127,
    128,
    1023,
    1024,
    1025,
    2047,
    2048,
    2049,
    3072,
    4095,
    4096,
    4097,
    8191,
    8192,
    65535,
    65536,
    65537,
    131071,
    131072,
    131073,
    200_000,
]


@pytest.fixture(scope="module")
def wasm() -> WasmKernels:
    return load()


@pytest.fixture(scope="module")
def ref() -> ReferenceKernels:
    return ReferenceKernels()


def many_hits_input(n: int, seed: int) -> bytes:
    """Bytes chosen so that the gear hash hits the mask as often as possible (~1 in 256 bytes):
    at each position pick, when one exists, a byte whose table entry makes h < 2**48."""
    rnd = random.Random(seed)
    order = sorted(range(256), key=lambda b: GEAR_TABLE[b])
    values = [GEAR_TABLE[b] for b in order]
    h, out = 0, bytearray()
    for _ in range(n):
        lo = (-(h << 1)) % 2**64  # GEAR[b] in [lo, lo + 2**48) gives a hit
        j = bisect.bisect_left(values, lo)
        b = order[j] if j < 256 and values[j] < lo + 2**48 else rnd.randrange(256)
        h = ((h << 1) + GEAR_TABLE[b]) % 2**64
        out.append(b)
    return bytes(out)


# ----------------------------------------------------------------------------------- loading


def test_default_backend_is_wasm(monkeypatch):
    monkeypatch.delenv("XET_PYODIDE_KERNELS", raising=False)
    reset_kernels()
    try:
        assert get_kernels().name == "wasm/wasmtime"
        monkeypatch.setenv("XET_PYODIDE_KERNELS", "reference")
        reset_kernels()
        assert get_kernels().name == "reference"
        monkeypatch.setenv("XET_PYODIDE_KERNELS", "bogus")
        reset_kernels()
        with pytest.raises(XetKernelError, match="XET_PYODIDE_KERNELS"):
            get_kernels()
    finally:
        reset_kernels()


def test_missing_wasm_says_how_to_build(monkeypatch):
    from xet_pyodide.kernels import _instance

    monkeypatch.setattr(_instance, "WASM_FILE", "no_such_kernels.wasm")
    with pytest.raises(XetKernelError, match=r"bash scripts/build_kernels\.sh"):
        load()


def test_wasmtime_fast_calls_match_public_calls():
    """The unchecked i32 caller is really used and agrees with wasmtime's public call; a trap
    and a wrong argument count still raise."""
    import wasmtime

    from xet_pyodide.kernels._instance import read_wasm_bytes
    from xet_pyodide.kernels._load_wasmtime import WasmtimeInstance, _unchecked_caller

    inst = WasmtimeInstance(read_wasm_bytes())
    export = inst._exports["xk_xxh32"]
    fast = _unchecked_caller(inst._store, export)
    assert fast is not None
    base = inst.func("xk_reserve")(4096)
    assert base > 0
    inst.refresh()
    inst.write(base, b"xet" * 100)
    public = export(inst._store, base, 300, 7) & 0xFFFFFFFF
    assert fast(base, 300, 7) & 0xFFFFFFFF == public == xxhash.xxh32(b"xet" * 100, 7).intdigest()
    with pytest.raises(wasmtime.Trap):
        fast(0x7FFFFFF0, 1 << 20, 0)  # reads past the end of linear memory
    with pytest.raises(TypeError, match="3 arguments"):
        fast(base, 300)


def test_gear_table_header_matches_python_table():
    text = (KERNELS_DIR / "csrc" / "gear_table.h").read_text()
    values = [int(v, 16) for v in re.findall(r"0x([0-9a-f]{16})ull", text)]
    assert tuple(values) == GEAR_TABLE
    assert len(values) == 256


def test_gear_table_matches_the_conformance_copy():
    """tests/vectors/gear_table.txt (one value a line) is where both tables came from."""
    lines = vector_file("gear_table.txt").read_text().split()
    assert tuple(int(v, 16) for v in lines) == GEAR_TABLE
    assert (GEAR_TABLE[0], GEAR_TABLE[255]) == (0xB088D3A9E840F559, 0x63C7A906C1DD187B)


# ----------------------------------------------------------------------------------- gear


@pytest.mark.parametrize(
    "n", [0, 1, 7, 8, 9, 63, 64, 1023, 1024, 1025, 4097, 65536, 65537, 131072 + 13, 300_001]
)
def test_gear_matches_reference(wasm, ref, n):
    rnd = random.Random(n)
    data = rnd.randbytes(n)
    state = rnd.getrandbits(64)
    assert wasm.gear_scan(data, state) == ref.gear_scan(data, state)
    assert wasm.gear_scan(data) == ref.gear_scan(data)


def test_gear_finds_candidates_on_random_data(wasm, ref):
    data = random.Random(99).randbytes(1 << 20)
    cands, state = wasm.gear_scan(data)
    assert 4 <= len(cands) <= 40  # ~16 expected for 1 MiB
    assert (cands, state) == ref.gear_scan(data)


@pytest.mark.parametrize("seed", range(3))
def test_gear_many_candidates(wasm, ref, seed):
    # ~1 candidate every 256 bytes: overflows the kernel's per-half buffer and its first
    # output capacity guess, exercising both fallback paths.
    data = many_hits_input(150_000, seed)
    cands, state = wasm.gear_scan(data, 0)
    assert len(cands) > 300
    assert (cands, state) == ref.gear_scan(data, 0)


def test_gear_split_invariance(wasm):
    rnd = random.Random(5)
    data = rnd.randbytes(400_000)
    whole = wasm.gear_scan(data, 77)
    for split in [0, 1, 63, 64, 65, 4096, 65536, 200_001, 400_000]:
        a, mid = wasm.gear_scan(data[:split], 77)
        b, end = wasm.gear_scan(data[split:], mid)
        assert (a + [split + i for i in b], end) == whole


def test_gear_prev63_trick(wasm):
    data = random.Random(6).randbytes(300_000)
    cands, _ = wasm.gear_scan(data)
    for start in [63, 1000, 65536, 131072, 250_000]:
        part, _ = wasm.gear_scan(data[start - 63 : start + 40_000])
        expect = [c for c in cands if start <= c < start + 40_000]
        assert [c + start - 63 for c in part if c >= 63] == expect


def test_gear_across_pieces(wasm, ref, monkeypatch):
    from xet_pyodide.kernels import _wasm

    monkeypatch.setattr(_wasm, "PIECE", 10_000)  # force many pieces
    data = many_hits_input(60_000, 7)
    assert wasm.gear_scan(data, 3) == ref.gear_scan(data, 3)


# ----------------------------------------------------------------------------------- BLAKE3


def native_b3(data: bytes, key: bytes) -> bytes:
    return blake3.blake3(data, key=key).digest()


def native_b3_many(data: bytes, lengths: list[int], key: bytes) -> bytes:
    """What blake3_keyed_many must return: native digests of the messages, back to back."""
    out, pos = b"", 0
    for n in lengths:
        out += native_b3(data[pos : pos + n], key)
        pos += n
    return out


@pytest.mark.parametrize(
    "n",
    [
        *EDGE_SIZES,
        5 * 1024,
        63 * 1024,
        64 * 1024 + 1,
        65 * 1024,
        128 * 1024,
        129 * 1024 + 1,
        1 << 20,
        (1 << 20) + 1,
        64 * 1024 * 65,
        64 * 1024 * 129 + 7,
    ],
)
def test_blake3_sizes(wasm, n):
    rnd = random.Random(n)
    data, key = rnd.randbytes(n), rnd.randbytes(32)
    assert wasm.blake3_keyed(data, key) == native_b3(data, key)


def test_blake3_random_sizes(wasm):
    rnd = random.Random(1)
    key = rnd.randbytes(32)
    for _ in range(300):
        n = rnd.choice([rnd.randrange(0, 2100), rnd.randrange(0, 140_000)])
        data = rnd.randbytes(n)
        assert wasm.blake3_keyed(data, key) == native_b3(data, key), n


def test_blake3_large_tree(wasm):
    # 4 MiB + 3 KiB: 64 subtrees of 64 chunks merged on the CV stack, then a partial batch.
    rnd = random.Random(2)
    data, key = rnd.randbytes((4 << 20) + 3 * 1024 + 5), rnd.randbytes(32)
    assert wasm.blake3_keyed(data, key) == native_b3(data, key)


@pytest.mark.parametrize("seed", range(8))
def test_blake3_many_mixed_lengths(wasm, seed):
    rnd = random.Random(seed)
    key = rnd.randbytes(32)
    lengths = [
        rnd.choice(
            [0, 0, 1, 32, 1023, 1024, 1025, 4096, 8192, 65536, 65537, rnd.randrange(0, 131073)]
        )
        for _ in range(rnd.randrange(1, 60))
    ]
    data = rnd.randbytes(sum(lengths))
    assert wasm.blake3_keyed_many(data, lengths, key) == native_b3_many(data, lengths, key)


def test_blake3_many_split_into_batches(wasm, monkeypatch):
    from xet_pyodide.kernels import _wasm

    monkeypatch.setattr(_wasm, "COPY_BATCH_BYTES", 100_000)
    rnd = random.Random(3)
    key = rnd.randbytes(32)
    lengths = [65536, 70_000, 0, 150_000, 10, 65536, 65536, 65536, 1]
    data = rnd.randbytes(sum(lengths))
    assert wasm.blake3_keyed_many(data, lengths, key) == native_b3_many(data, lengths, key)


def test_blake3_many_sub_pieces(wasm, monkeypatch):
    """Batches go in as sub-pieces of whole messages: boundaries right at, before and after
    SUB_PIECE, empty messages on a boundary, one message bigger than a sub-piece."""
    from xet_pyodide.kernels import _wasm

    monkeypatch.setattr(_wasm, "SUB_PIECE", 10_000)
    monkeypatch.setattr(_wasm, "B3_BATCH_MESSAGES", 5)
    rnd = random.Random(5)
    key = rnd.randbytes(32)
    lengths = [10_000, 0, 9_999, 1, 0, 0, 10_001, 3, 25_000, 5_000, 5_000, 0]
    data = rnd.randbytes(sum(lengths))
    assert wasm.blake3_keyed_many(data, lengths, key) == native_b3_many(data, lengths, key)


def test_blake3_many_edge_cases(wasm):
    key = bytes(range(32))
    assert wasm.blake3_keyed_many(b"", [], key) == b""
    assert wasm.blake3_keyed_many(b"", [0, 0], key) == native_b3(b"", key) * 2
    with pytest.raises(ValueError):
        wasm.blake3_keyed_many(b"abc", [2], key)
    with pytest.raises(ValueError):
        wasm.blake3_keyed_many(b"abc", [4, -1], key)
    with pytest.raises(ValueError):
        wasm.blake3_keyed(b"abc", b"short")
    # memoryview / bytearray inputs, non-byte formats
    data = bytearray(random.Random(4).randbytes(5000))
    assert wasm.blake3_keyed(memoryview(data)[100:4100], key) == native_b3(data[100:4100], key)
    words = memoryview(bytes(data[:4096])).cast("I")
    assert wasm.blake3_keyed(words, key) == native_b3(bytes(data[:4096]), key)


def test_blake3_known_chunk_hash(wasm):
    data_key = bytes.fromhex("6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229")
    assert wasm.blake3_keyed(b"abc", data_key).hex() == (
        "14f0aff7063580a845c69db7e9a99af15661f9702567495c4e28d08d69291307"
    )


# ----------------------------------------------------------------------------------- BG4


@pytest.mark.parametrize("n", [*EDGE_SIZES, 1 << 20])
def test_bg4_matches_definition(wasm, ref, n):
    data = random.Random(n).randbytes(n)
    split = wasm.bg4_split(data)
    assert split == data[0::4] + data[1::4] + data[2::4] + data[3::4]
    assert split == ref.bg4_split(data)
    assert wasm.bg4_regroup(split) == data
    assert wasm.bg4_regroup(data) == ref.bg4_regroup(data)


# ----------------------------------------------------------------------------------- checksums


def test_crc64_check_value(wasm, ref):
    assert wasm.crc64_nvme(b"123456789") == 0xAE8B14860A799888
    assert ref.crc64_nvme(b"123456789") == 0xAE8B14860A799888
    assert wasm.crc64_nvme(b"") == 0


@pytest.mark.parametrize("n", EDGE_SIZES)
def test_crc64_matches_reference(wasm, ref, n):
    rnd = random.Random(n)
    data = rnd.randbytes(n)
    assert wasm.crc64_nvme(data) == ref.crc64_nvme(data)
    start = rnd.getrandbits(64)
    assert wasm.crc64_nvme(data, start) == ref.crc64_nvme(data, start)


def test_crc64_streaming_and_pieces(wasm, ref, monkeypatch):
    from xet_pyodide.kernels import _wasm

    data = random.Random(8).randbytes(300_000)
    whole = ref.crc64_nvme(data)
    assert wasm.crc64_nvme(data) == whole
    for cut in [0, 1, 15, 16, 17, 150_001, 300_000]:
        assert wasm.crc64_nvme(data[cut:], wasm.crc64_nvme(data[:cut])) == whole
    monkeypatch.setattr(_wasm, "SUB_PIECE", 7_777)
    assert wasm.crc64_nvme(data) == whole
    monkeypatch.setattr(_wasm, "COPY_BATCH_BYTES", 50_000)
    assert wasm.crc64_nvme(data) == whole
    assert wasm.crc64_nvme(data[:49_999], 12345) == ref.crc64_nvme(data[:49_999], 12345)


@pytest.mark.parametrize("n", EDGE_SIZES)
def test_xxh32_matches_xxhash(wasm, ref, n):
    rnd = random.Random(n)
    data = rnd.randbytes(n)
    for seed in [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, rnd.getrandbits(32)]:
        assert wasm.xxh32(data, seed) == xxhash.xxh32_intdigest(data, seed)
    if n <= 4097:
        assert ref.xxh32(data, 5) == xxhash.xxh32_intdigest(data, 5)


# ----------------------------------------------------------------------------------- SHA-256


@pytest.mark.parametrize("n", [0, 1, 55, 56, 63, 64, 65, 128, 1000, 4097])
def test_sha256_blocks_matches_reference_and_hashlib(wasm, ref, n):
    data = random.Random(n).randbytes(n)
    padded = KernelSha256(ref)
    padded.update(data)
    assert KernelSha256(wasm, data).digest() == padded.digest() == hashlib.sha256(data).digest()
    blocks = data[: n - n % 64]
    state = random.Random(-n).randbytes(32)  # any chaining value, not only the IV
    assert wasm.sha256_blocks(state, blocks) == ref.sha256_blocks(state, blocks)


def test_sha256_streaming_pieces_and_copy(wasm, monkeypatch):
    from xet_pyodide.kernels import _wasm

    data = random.Random(12).randbytes(300_001)
    want = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(_wasm, "PIECE", 64 * 101)  # several kernel calls per update
    for cut in [0, 1, 63, 64, 65, 150_000, 300_001]:
        h = KernelSha256(wasm)
        h.update(data[:cut])
        fork = h.copy()
        h.update(memoryview(data)[cut:])
        assert h.hexdigest() == want
        assert fork.hexdigest() == hashlib.sha256(data[:cut]).hexdigest()
        assert h.hexdigest() == want  # digest() does not change the state


def test_sha256_blocks_rejects_partial_blocks(wasm, ref):
    for k in (wasm, ref):
        with pytest.raises(ValueError, match="whole 64-byte blocks"):
            k.sha256_blocks(SHA256_IV, bytes(65))
        with pytest.raises(ValueError, match="32-byte state"):
            k.sha256_blocks(bytes(31), bytes(64))


# ----------------------------------------------------------------------------------- memory


def test_memory_does_not_grow_across_calls(wasm):
    rnd = random.Random(11)
    big = rnd.randbytes(3 << 20)
    wasm.blake3_keyed_many(big, [len(big)], bytes(32))
    wasm.lz4_decompress_block(wasm.lz4_compress_block(big), len(big))
    high = wasm.memory_size()
    for i in range(300):
        data = rnd.randbytes(rnd.randrange(0, 1 << 20))
        wasm.gear_scan(data)
        wasm.blake3_keyed_many(data, [len(data)], bytes(32))
        wasm.lz4_decompress_block(wasm.lz4_compress_block(data), len(data))
        wasm.bg4_regroup(wasm.bg4_split(data))
        wasm.crc64_nvme(data)
        wasm.xxh32(data, i)
    assert wasm.memory_size() == high
    assert high < 32 << 20


def test_streaming_kernels_keep_memory_small(wasm):
    data = bytes(40 << 20)
    fresh = load()
    fresh.crc64_nvme(data)
    fresh.gear_scan(data)
    fresh.blake3_keyed_many(data, [65536] * 640, bytes(32))
    # 8 MiB pieces: a 40 MiB input never needs a 40 MiB arena.
    assert fresh.memory_size() < 20 << 20
