"""LZ4 frame encode/decode: hf_xet's parameters, any valid frame accepted, strict errors."""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import Iterator

import lz4.frame as lz4f
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cpython._core_helpers import random_input
from xet_pyodide.errors import XetFormatError
from xet_pyodide.kernels import get_kernels, lz4frame


def compress(data: bytes) -> bytes:
    """Our frame of ``data``, over the active kernels (what the core's payload codec uses)."""
    return lz4frame.compress(data, get_kernels())


def decompress(data: bytes, max_output: int) -> bytes:
    return lz4frame.decompress(data, max_output, get_kernels())

SAMPLES = [
    b"",
    b"a",
    b"abc" * 10,
    bytes(65536),
    bytes(65537),
    random.Random(1).randbytes(1000),
    random_input(random.Random(2), 131072, "text"),
    random_input(random.Random(3), 131072, "random"),
    random_input(random.Random(4), 700_000, "repeats"),
    random_input(random.Random(5), 3_000_000, "lowentropy"),
]


@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: str(len(d)))
def test_encoder_writes_hf_xet_header_and_round_trips(data):
    frame = compress(data)
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] == 0x60
    expected_bd = 0x40 if len(data) <= 65536 else 0x50 if len(data) <= 262144 else None
    if expected_bd is not None:
        assert frame[5] == expected_bd
    assert frame[6] == (xxhash.xxh32(frame[4:6]).intdigest() >> 8) & 0xFF
    assert frame[-4:] == bytes(4)
    assert lz4f.decompress(frame) == data
    assert decompress(frame, len(data)) == data


def test_incompressible_block_is_stored_raw():
    data = random.Random(9).randbytes(5000)
    frame = compress(data)
    (word,) = struct.unpack_from("<I", frame, 7)
    assert word == 0x8000_0000 | len(data)
    assert frame[11 : 11 + len(data)] == data


FRAME_OPTIONS = [
    {},
    {"block_linked": False, "store_size": False},
    {"block_size": lz4f.BLOCKSIZE_MAX64KB, "block_linked": True},
    {"block_size": lz4f.BLOCKSIZE_MAX64KB, "content_checksum": True, "block_checksum": True},
    {"block_size": lz4f.BLOCKSIZE_MAX1MB, "compression_level": 12},
    {"block_size": lz4f.BLOCKSIZE_MAX4MB, "store_size": True, "content_checksum": True},
]


@pytest.mark.parametrize(
    "options", FRAME_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: str(len(d)))
def test_decoder_accepts_any_valid_frame(options, data):
    frame = lz4f.compress(data, **options)
    assert decompress(frame, len(data)) == data


def test_linked_blocks_reference_previous_blocks():
    """Repeated 50 KB pieces across 64 KB blocks: matches must reach into earlier blocks."""
    piece = random.Random(12).randbytes(50_000)
    data = piece * 8
    frame = lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB, block_linked=True)
    assert len(frame) < len(data) // 4  # the matches really cross block boundaries
    assert decompress(frame, len(data)) == data


def test_concatenated_and_skippable_frames():
    a, b = b"first frame " * 100, b"second"
    skippable = struct.pack("<II", 0x184D2A5A, 3) + b"xyz"
    data = lz4f.compress(a) + skippable + compress(b)
    assert decompress(data, len(a) + len(b)) == a + b


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "no LZ4 frame"),
        (b"\x04\x22\x4d", "truncated"),
        (b"\x00\x00\x00\x00", "not an LZ4 frame"),
        (b"\x04\x22\x4d\x18\x20\x40\x00\x00\x00\x00\x00", "version"),
        (b"\x04\x22\x4d\x18\x61\x40", "dictionary"),
        (b"\x04\x22\x4d\x18\x60\x30", "block maximum"),
        (b"\x04\x22\x4d\x18\x62\x40", "reserved"),
    ],
)
def test_malformed_frames(frame, message):
    with pytest.raises(XetFormatError, match=message):
        decompress(frame, 1000)


def test_header_checksum_and_content_checks():
    data = b"hello world " * 1000
    frame = bytearray(lz4f.compress(data, content_checksum=True, block_checksum=True))
    broken = bytearray(frame)
    broken[-1] ^= 1
    with pytest.raises(XetFormatError, match="content checksum"):
        decompress(bytes(broken), len(data))
    hc_index = 4 + 2 + 8  # FLG, BD, content size
    broken = bytearray(frame)
    broken[hc_index] ^= 1
    with pytest.raises(XetFormatError, match="header checksum"):
        decompress(bytes(broken), len(data))


def test_output_limit_is_enforced():
    data = bytes(200_000)
    with pytest.raises(XetFormatError):
        decompress(compress(data), 199_999)
    with pytest.raises(XetFormatError, match="content size"):
        decompress(lz4f.compress(data, store_size=True), 1000)
    # A raw block larger than the limit.
    raw = compress(random.Random(1).randbytes(3000))
    with pytest.raises(XetFormatError):
        decompress(raw, 2999)


def test_content_size_mismatch():
    data = b"abc" * 100
    frame = bytearray(lz4f.compress(data, store_size=True))
    frame[6:14] = struct.pack("<Q", len(data) + 1)
    frame[14] = (xxhash.xxh32(bytes(frame[4:14])).intdigest() >> 8) & 0xFF
    with pytest.raises(XetFormatError, match="content size"):
        decompress(bytes(frame), 10_000)


def _only_format_errors(frame: bytes, limit: int) -> None:
    with contextlib.suppress(XetFormatError):
        decompress(frame, limit)


def test_truncated_at_every_position():
    data = random_input(random.Random(3), 100_000, "text")
    for options in ({}, {"block_checksum": True, "content_checksum": True}):
        frame = lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB, **options)
        for cut in range(len(frame)):
            with pytest.raises(XetFormatError):
                decompress(frame[:cut], len(data))


def _flips(frame: bytes, rng: random.Random, count: int) -> Iterator[tuple[int, bytes]]:
    """Every bit of the first 24 bytes (magic, descriptor, first block size), then ``count``
    random single-bit flips."""
    spots = [(pos, bit) for pos in range(24) for bit in range(8)]
    spots += [(rng.randrange(len(frame)), rng.randrange(8)) for _ in range(count)]
    for pos, bit in spots:
        broken = bytearray(frame)
        broken[pos] ^= 1 << bit
        yield pos, bytes(broken)


@pytest.mark.parametrize("linked", [False, True])
@pytest.mark.parametrize(
    "checksums",
    [
        {"content_checksum": True, "block_checksum": True},
        {"content_checksum": True},
        {"block_checksum": True},
    ],
    ids=["both", "content", "blocks"],
)
def test_bit_flips_in_checksummed_frames_are_detected(checksums, linked):
    """Where xxh32 checksums cover the frame, a flipped bit never comes out as data: the
    decoder raises, or (a flip in a match offset that points at equal bytes) the output is
    still exactly right."""
    rng = random.Random(4)
    data = random_input(rng, 80_000, "repeats")
    frame = lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB, block_linked=linked, **checksums)
    detected = 0
    for pos, broken in _flips(frame, rng, 1000):
        try:
            out = decompress(broken, len(data))
        except XetFormatError:
            detected += 1
            continue
        assert out == data, f"flip at byte {pos} decoded to wrong data undetected"
    assert detected >= 1000  # (nearly all of the 1192 flips; the rest decoded correctly)


def test_bit_flips_in_frames_without_checksums_raise_only_format_errors():
    """hf_xet's frames (and ours) carry no checksum: a flip may decode to other bytes, which
    the chunk hash catches (test_core_xorb.py). Here: only XetFormatError, never more output
    than allowed."""
    rng = random.Random(5)
    data = random_input(rng, 80_000, "repeats")
    frames = [compress(data), lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB)]
    for frame in frames:
        for _, broken in _flips(frame, rng, 1500):
            with contextlib.suppress(XetFormatError):
                assert len(decompress(broken, len(data))) <= len(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_raises_only_format_errors(garbage):
    _only_format_errors(b"\x04\x22\x4d\x18" + garbage, 1 << 20)
    _only_format_errors(garbage, 1 << 20)


def test_linked_blocks_on_reference_kernels():
    """The prefix trick for linked blocks must work on every block decompressor."""
    from xet_pyodide.kernels.reference import ReferenceKernels

    reference = ReferenceKernels()
    data = random.Random(13).randbytes(40_000) * 5
    frame = lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB, block_linked=True)
    assert lz4frame.decompress(frame, len(data), reference) == data
