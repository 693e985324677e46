"""LZ4 block kernels (wasm on wasmtime) against python-lz4 and the reference decoder."""

from __future__ import annotations

import random
import struct

import lz4.block
import lz4.frame
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.portable.kernel_checks import make_bytes
from xet_pyodide.errors import XetFormatError
from xet_pyodide.kernels._load_wasmtime import load
from xet_pyodide.kernels._wasm import WasmKernels
from xet_pyodide.kernels.reference import _lz4_decompress

KINDS = ["random", "text", "zeros", "runs", "periodic"]
SIZES = [
    0,
    1,
    4,
    5,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    31,
    64,
    255,
    256,
    270,
    1000,
    4096,
    65535,
    65536,
    65537,
    131072,
    1 << 20,
]


@pytest.fixture(scope="module")
def wasm() -> WasmKernels:
    return load()


def decode_native(block: bytes, n: int) -> bytes:
    return lz4.block.decompress(block, uncompressed_size=n)


def frame(blocks: list[tuple[bytes, int]]) -> bytes:
    """An LZ4 frame (independent blocks, 4 MiB max block size, content checksum) around our
    compressed blocks, so that python-lz4's frame decoder can check them too."""
    flg, bd = 0x60 | 0x04, 0x70
    header = bytes([flg, bd])
    out = bytearray(
        b"\x04\x22\x4d\x18" + header + bytes([(xxhash.xxh32_intdigest(header) >> 8) & 0xFF])
    )
    content = b""
    for block, raw in blocks:
        out += struct.pack("<I", len(block)) + block
        content += raw
    out += struct.pack("<I", 0) + struct.pack("<I", xxhash.xxh32_intdigest(content))
    return bytes(out)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", SIZES)
def test_our_blocks_decode_natively(wasm, kind, n):
    data = make_bytes(n * 7 + len(kind), n, kind)
    block = wasm.lz4_compress_block(data)
    assert decode_native(block, n) == data
    assert wasm.lz4_decompress_block(block, n) == data
    assert len(block) <= n + n // 255 + 16
    # The greedy matcher compresses about as well as liblz4's default mode.
    native = lz4.block.compress(data, store_size=False)
    assert len(block) <= len(native) * 1.05 + 8
    if kind != "random" and n >= 4096:
        assert len(block) < n // 2


def test_our_blocks_in_a_frame_decode_natively(wasm):
    parts = [
        make_bytes(i, n, kind)
        for i, (n, kind) in enumerate(
            [(65536, "text"), (1000, "random"), (131072, "runs"), (7, "text")]
        )
    ]
    blocks = [(wasm.lz4_compress_block(p), p) for p in parts]
    assert lz4.frame.decompress(frame(blocks)) == b"".join(parts)


@pytest.mark.parametrize("mode", ["default", "fast", "high_compression"])
@pytest.mark.parametrize("kind", KINDS)
def test_native_blocks_decode_with_ours(wasm, mode, kind):
    for n in [0, 1, 13, 100, 5000, 65536, 200_000]:
        data = make_bytes(n, n, kind)
        block = lz4.block.compress(data, mode=mode, store_size=False)
        assert wasm.lz4_decompress_block(block, n) == data
        assert wasm.lz4_decompress_block(block, n + 100) == data  # spare capacity is fine


def test_native_frame_blocks_decode_with_ours(wasm):
    # Linked-block frames need a dictionary; independent blocks are plain LZ4 blocks.
    data = make_bytes(1, 300_000, "text")
    framed = lz4.frame.compress(
        data, block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False, content_checksum=False
    )
    flg = framed[4]
    assert not flg & 0x10  # no block checksums
    pos, out = 7 + (8 if flg & 0x08 else 0), b""  # magic, FLG, BD, [content size], HC
    while True:
        (size,) = struct.unpack_from("<I", framed, pos)
        pos += 4
        if size == 0:
            break
        block = framed[pos : pos + (size & 0x7FFFFFFF)]
        pos += size & 0x7FFFFFFF
        out += block if size & 0x80000000 else wasm.lz4_decompress_block(block, 65536)
    assert out == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_roundtrip_arbitrary(wasm, data):
    block = wasm.lz4_compress_block(data)
    assert decode_native(block, len(data)) == data
    assert wasm.lz4_decompress_block(block, len(data)) == data


def outcome(fn, block: bytes, cap: int) -> bytes | None:
    try:
        return fn(block, cap)
    except XetFormatError:
        return None


@pytest.mark.parametrize("seed", range(6))
def test_every_truncation_is_rejected_like_the_reference(wasm, seed):
    rnd = random.Random(seed)
    data = make_bytes(seed, rnd.randrange(200, 2000), rnd.choice(["text", "runs", "random"]))
    for block in [wasm.lz4_compress_block(data), lz4.block.compress(data, store_size=False)]:
        assert wasm.lz4_decompress_block(block, len(data)) == data
        for cut in range(len(block)):
            got = outcome(wasm.lz4_decompress_block, block[:cut], len(data))
            assert got == outcome(_lz4_decompress, block[:cut], len(data)), cut
            # A strict prefix can only decode to a proper prefix of the data, if at all.
            assert got is None or (len(got) < len(data) and data.startswith(got))


def test_specific_malformed_blocks(wasm):
    bad = {
        "empty": (b"", 10),
        "offset truncated": (b"\x10a\x01", 10),  # literal "a", then half an offset
        "zero offset": (b"\x11a\x00\x00" + b"\x00", 100),
        "offset before start": (b"\x11a\x02\x00" + b"\x00", 100),
        "offset way before start": (b"\x10a\xff\xff", 100),
        "literal length runs off the end": (b"\xf0\xff\xff", 1000),
        "literals truncated": (b"\x50abc", 100),
        "match length truncated": (b"\x1fa\x01\x00\xff", 1000),
        "output overflow (literals)": (b"\x50abcde", 4),
        "output overflow (match)": (b"\x1fa\x01\x00\x10\x00", 10),
    }
    for name, (block, cap) in bad.items():
        with pytest.raises(XetFormatError):
            wasm.lz4_decompress_block(block, cap)
        assert outcome(_lz4_decompress, block, cap) is None, name
    # The same kind of blocks, made valid, decode: overlapping match (RLE) and a final literal.
    assert wasm.lz4_decompress_block(b"\x1fa\x01\x00\x10\x00", 1000) == b"a" * 36
    assert wasm.lz4_decompress_block(b"\x50abcde", 5) == b"abcde"


def test_random_garbage_never_crashes(wasm):
    rnd = random.Random(12)
    for i in range(3000):
        blob = rnd.randbytes(rnd.randrange(0, 200))
        cap = rnd.choice([0, 1, 16, 100, 5000])
        assert outcome(wasm.lz4_decompress_block, blob, cap) == outcome(
            _lz4_decompress, blob, cap
        ), i


def test_corrupted_blocks_agree_with_reference(wasm):
    rnd = random.Random(13)
    for i in range(150):
        data = make_bytes(i, rnd.randrange(20, 5000), rnd.choice(KINDS))
        block = bytearray(wasm.lz4_compress_block(data))
        for _ in range(10):
            bad = bytearray(block)
            for _ in range(rnd.randrange(1, 4)):
                bad[rnd.randrange(len(bad))] = rnd.randrange(256)
            cap = len(data) + rnd.choice([-5, 0, 0, 50])
            cap = max(cap, 0)
            assert outcome(wasm.lz4_decompress_block, bytes(bad), cap) == outcome(
                _lz4_decompress, bytes(bad), cap
            )


def test_output_capacity_is_exact(wasm):
    data = make_bytes(3, 10_000, "text")
    block = wasm.lz4_compress_block(data)
    assert wasm.lz4_decompress_block(block, len(data)) == data
    with pytest.raises(XetFormatError, match="exceeds"):
        wasm.lz4_decompress_block(block, len(data) - 1)
    with pytest.raises(ValueError):
        wasm.lz4_decompress_block(block, -1)
