"""Xorb chunk records, compression policy, builder limits, footers and the strict decoder."""

from __future__ import annotations

import contextlib
import math
import random
import struct

import lz4.frame as lz4f
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cpython._core_helpers import random_input, vector_input
from xet_pyodide.core.chunking import chunk_data
from xet_pyodide.core.compression import (
    Scheme,
    bg4_recommended,
    choose_scheme,
    popcount_histograms,
)
from xet_pyodide.core.hashes import MerkleHash, chunk_hash, xorb_hash
from xet_pyodide.core.xorb import (
    MAX_XORB_BYTES,
    MAX_XORB_CHUNKS,
    ChunkRecord,
    XorbBuilder,
    build_footer,
    decode_record,
    decode_xorb,
    encode_chunk,
    iter_records,
    load_xorb,
    parse_footer,
    record_header,
)
from xet_pyodide.core.xorb_footer import has_footer
from xet_pyodide.errors import XetFormatError, XetIntegrityError
from xet_pyodide.kernels import get_kernels


def header(version=0, compressed=0, scheme=0, uncompressed=0) -> bytes:
    return (
        bytes([version])
        + compressed.to_bytes(3, "little")
        + bytes([scheme])
        + uncompressed.to_bytes(3, "little")
    )


def test_record_header_layout():
    assert record_header(Scheme.LZ4, 0x010203, 0x0A0B0C) == header(0, 0x010203, 1, 0x0A0B0C)
    with pytest.raises(ValueError):
        record_header(0, 1 << 24, 0)


@pytest.mark.parametrize("scheme", list(Scheme))
@pytest.mark.parametrize("kind", ["text", "random", "floats", "constant"])
def test_encode_decode_round_trip(scheme, kind):
    data = random_input(random.Random(1), 70_000, kind)
    record = encode_chunk(data, scheme)
    (parsed,) = list(iter_records(record))
    assert parsed.uncompressed_size == len(data)
    assert parsed.compressed_size == len(record) - 8
    assert decode_record(parsed) == data
    if kind == "random" or scheme == Scheme.NONE:
        assert parsed.scheme == Scheme.NONE and bytes(parsed.payload) == data
    elif kind in ("text", "constant"):
        assert parsed.scheme == scheme and parsed.compressed_size < len(data)


def test_not_strictly_smaller_falls_back_to_raw():
    data = b"x"  # an LZ4 frame of one byte is far bigger than the byte
    assert encode_chunk(data, Scheme.LZ4) == header(0, 1, 0, 1) + data


def test_payload_is_an_lz4_frame_python_lz4_can_read():
    data = random_input(random.Random(2), 100_000, "text")
    (rec,) = iter_records(encode_chunk(data, Scheme.LZ4))
    assert lz4f.decompress(bytes(rec.payload)) == data
    (rec,) = iter_records(encode_chunk(data, Scheme.BG4_LZ4))
    assert get_kernels().bg4_regroup(lz4f.decompress(bytes(rec.payload))) == data


def test_foreign_lz4_frames_are_accepted_in_records():
    data = random_input(random.Random(3), 120_000, "repeats")
    payload = lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB, block_linked=True)
    record = header(0, len(payload), 1, len(data)) + payload
    assert decode_xorb(record) == [data]


def _rust_bg4_predictor(data: bytes) -> bool:
    """Literal transcription of xet-core's BG4Predictor (per-byte loop, NaN-skipping max)."""
    hist = [[0] * 9 for _ in range(4)]
    for i, b in enumerate(data):
        hist[i % 4][bin(b).count("1")] += 1
    base = [1 + sum(hist[i][j] for i in range(4)) for j in range(9)]
    totals = [sum(h) for h in hist]
    base_total = sum(totals)
    best = 0.0
    for i in range(4):
        kl = 0.0
        for j in range(9):
            p = hist[i][j] / totals[i] if totals[i] else math.nan
            q = base[j] / base_total if base_total else math.inf
            kl += p * math.log(p / q) if p > 0 else math.nan
        if not math.isnan(kl):
            best = max(best, kl)
    return best > 0.02


@pytest.mark.parametrize("kind", ["random", "floats", "text", "constant", "lowentropy", "repeats"])
@pytest.mark.parametrize("size", [0, 3, 4, 1000, 65536])
def test_bg4_predictor_matches_reference(kind, size):
    data = random_input(random.Random(size), size, kind)
    assert bg4_recommended(data) == _rust_bg4_predictor(data)
    hist = popcount_histograms(data)
    assert sum(map(sum, hist)) == size


def test_bg4_predictor_verdicts():
    floats = vector_input("floats_3MB")[:65536]
    assert choose_scheme(floats) == Scheme.BG4_LZ4
    assert choose_scheme(random.Random(0).randbytes(65536)) == Scheme.LZ4


def test_builder_policy_retests_every_32_chunks_per_segment(monkeypatch):
    analysed = []

    def spy(data):
        analysed.append(len(data))
        return Scheme.LZ4

    monkeypatch.setattr("xet_pyodide.core.xorb.choose_scheme", spy)
    builder = XorbBuilder()
    for i in range(70):
        builder.add(bytes([i]) * (100 + i))
    builder.start_file_segment()
    for i in range(5):
        builder.add(bytes([i]) * (1000 + i))
    assert analysed == [100, 132, 164, 1000]


def test_builder_applies_the_scheme_to_the_block():
    floats = vector_input("floats_3MB")
    chunks = chunk_data(floats[:1_500_000])
    builder = XorbBuilder()
    builder.add_chunks(chunks)
    xorb = builder.finish()
    schemes = {r.scheme for r in iter_records(xorb.body)}
    assert schemes == {Scheme.BG4_LZ4}
    assert decode_xorb(xorb.body) == chunks
    fixed = XorbBuilder(Scheme.NONE)
    fixed.add_chunks(chunks)
    assert {r.scheme for r in iter_records(fixed.finish().body)} == {Scheme.NONE}


def test_builder_outputs():
    rng = random.Random(5)
    chunks = [rng.randbytes(rng.randint(1, 20_000)) for _ in range(50)]
    builder = XorbBuilder()
    for i, c in enumerate(chunks):
        assert builder.add(c) == i
    xorb = builder.finish()
    assert xorb.chunk_hashes == [chunk_hash(c) for c in chunks]
    assert xorb.chunk_sizes == [len(c) for c in chunks]
    assert xorb.hash == xorb_hash(xorb.entries)
    assert xorb.record_offsets[0] == 0 and xorb.record_offsets[-1] == len(xorb.body)
    assert [r.offset for r in iter_records(xorb.body)] == xorb.record_offsets[:-1]
    assert xorb.num_bytes_in_cas == sum(map(len, chunks))
    assert xorb.byte_range(2, 5) == (xorb.record_offsets[2], xorb.record_offsets[5])
    assert builder.num_bytes == len(xorb.body)
    loaded, decoded = load_xorb(xorb.body, xorb.hash)
    assert decoded == chunks and loaded.record_offsets == xorb.record_offsets
    with pytest.raises(ValueError):
        XorbBuilder().finish()
    with pytest.raises(ValueError):
        xorb.byte_range(3, 3)


def test_builder_limits():
    builder = XorbBuilder(Scheme.NONE)
    assert builder.can_add(MAX_XORB_BYTES - 8)
    assert not builder.can_add(MAX_XORB_BYTES - 7)
    for _ in range(MAX_XORB_CHUNKS):
        builder.add(b"a")
    assert not builder.can_add(1)
    with pytest.raises(ValueError):
        builder.add(b"a")
    with pytest.raises(ValueError):
        XorbBuilder().add(bytes(131073))
    full = XorbBuilder(Scheme.NONE, max_bytes=1000)
    full.add(bytes(500))
    assert full.can_add(484) and not full.can_add(485)


def test_footer_v1_round_trip_and_layout():
    chunks = [bytes([i]) * (1000 * (i + 1)) for i in range(5)]
    builder = XorbBuilder(Scheme.LZ4)
    builder.add_chunks(chunks)
    xorb = builder.finish()
    footer = xorb.build_footer()
    n = len(chunks)
    assert len(footer) == 92 + 40 * n + 4
    assert struct.unpack("<I", footer[-4:])[0] == 92 + 40 * n
    stored = xorb.stored()
    assert has_footer(stored) and not has_footer(xorb.body)
    parsed = parse_footer(stored)
    assert parsed.version == 1
    assert parsed.xorb_hash == xorb.hash
    assert parsed.chunk_hashes == xorb.chunk_hashes
    assert parsed.record_ends == xorb.record_offsets[1:]
    assert parsed.unpacked_ends == xorb.unpacked_offsets()[1:]
    assert parsed.footer_start == len(xorb.body)
    assert parsed.nonce == bytes(16)
    # sequential readers stop at the footer
    assert decode_xorb(stored) == chunks
    loaded, _ = load_xorb(stored, xorb.hash)
    assert loaded.footer == parsed and loaded.body == xorb.body


def test_footer_v0_parse():
    chunks = [b"a" * 100, b"b" * 200]
    builder = XorbBuilder(Scheme.NONE)
    builder.add_chunks(chunks)
    xorb = builder.finish()
    n = len(chunks)
    info = (
        b"XETBLOB\x00"
        + xorb.hash.raw
        + struct.pack("<I", n)
        + struct.pack(f"<{n}I", *xorb.record_offsets[1:])
        + b"".join(h.raw for h in xorb.chunk_hashes)
        + bytes(16)
    )
    stored = xorb.body + info + struct.pack("<I", len(info))
    parsed = parse_footer(stored)
    assert parsed.version == 0 and parsed.unpacked_ends is None
    assert parsed.chunk_hashes == xorb.chunk_hashes
    loaded, decoded = load_xorb(stored)
    assert decoded == chunks and loaded.hash == xorb.hash


def test_integrity_errors():
    builder = XorbBuilder()
    builder.add_chunks([b"one" * 5000, b"two" * 5000])
    xorb = builder.finish()
    with pytest.raises(XetIntegrityError):
        load_xorb(xorb.body, MerkleHash.ZERO)
    wrong = build_footer(
        xorb.chunk_hashes,
        xorb.record_offsets[1:],
        xorb.unpacked_offsets()[1:],
        MerkleHash(b"\1" * 32),
    )
    with pytest.raises(XetIntegrityError):
        load_xorb(xorb.body + wrong)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (header(1, 1, 0, 1) + b"x", "version"),
        (header(0, 1, 3, 1) + b"x", "scheme"),
        (header(0, 1, 0, 131073) + b"x", "131072"),
        (header(0, 262145, 1, 10), "too large"),
        (header(0, 2, 0, 1) + b"xx", "mismatched"),
        (header(0, 10, 0, 10) + b"short", "truncated"),
        (header(0, 5, 1, 10) + b"\x04\x22\x4d\x18\x60", "LZ4"),
        (b"\x00\x01", "truncated"),
    ],
)
def test_record_validation(record, message):
    with pytest.raises(XetFormatError, match=message):
        decode_xorb(record)


def test_decoded_length_must_match_header():
    data = b"hello" * 1000
    payload = lz4f.compress(data)
    with pytest.raises(XetFormatError):
        decode_xorb(header(0, len(payload), 1, len(data) - 1) + payload)
    with pytest.raises(XetFormatError):
        decode_xorb(header(0, len(payload), 1, len(data) + 1) + payload)


def test_record_dataclass():
    rec = ChunkRecord(0, 3, 3, b"abc", 16)
    assert rec.end == 16 + 8 + 3


def _sample_stored_xorb() -> tuple[bytes, list[bytes]]:
    data = random_input(random.Random(8), 400_000, "repeats") + random_input(
        random.Random(9), 200_000, "floats"
    )
    chunks = chunk_data(data)
    builder = XorbBuilder()
    builder.add_chunks(chunks)
    return builder.finish().stored(), chunks


def _only_format_errors(data: bytes) -> None:
    with contextlib.suppress(XetFormatError, XetIntegrityError):
        load_xorb(data)
    with contextlib.suppress(XetFormatError):
        parse_footer(data)
    with contextlib.suppress(XetFormatError):
        decode_xorb(data)


def test_truncations_raise_only_format_errors():
    stored, _ = _sample_stored_xorb()
    body_len = parse_footer(stored).footer_start
    record_ends = set(parse_footer(stored).record_ends)
    for cut in sorted(set(range(0, len(stored), 997)) | {len(stored) - k for k in range(1, 300)}):
        _only_format_errors(stored[:cut])
        if cut < body_len and cut not in record_ends and cut:
            with pytest.raises(XetFormatError):
                decode_xorb(stored[:cut])


def test_bit_flips_in_a_stored_xorb_are_detected():
    """Chunk hashes cover every decoded byte and the xorb hash covers them (and the sizes),
    so a flipped bit is refused (XetFormatError or XetIntegrityError) unless the chunks still
    come out exactly right: only the footer's 16-byte nonce is outside the hashes (it is
    random per upload), or a flip in an LZ4 match that points at equal bytes.

    Every bit of the footer's fixed fields (its head, the hash-section head, the tail:
    chunk count, section offsets, nonce, info length), then random flips in the per-chunk
    arrays and in the records."""
    stored, chunks = _sample_stored_xorb()
    footer = parse_footer(stored)
    start, end = footer.footer_start, len(stored)
    nonce = range(end - 4 - 16, end - 4)
    rng = random.Random(10)
    spots = [(pos, bit) for pos in range(start, start + 52) for bit in range(8)]
    spots += [(pos, bit) for pos in range(end - 32, end) for bit in range(8)]
    spots += [(rng.randrange(start + 52, end - 32), rng.randrange(8)) for _ in range(300)]
    spots += [(rng.randrange(start), rng.randrange(8)) for _ in range(400)]
    undetected = set()
    for pos, bit in spots:
        broken = bytearray(stored)
        broken[pos] ^= 1 << bit
        try:
            xorb, got = load_xorb(bytes(broken), footer.xorb_hash)
        except (XetFormatError, XetIntegrityError):
            continue
        assert [bytes(c) for c in got] == chunks, f"flip at byte {pos} decoded wrong"
        assert xorb.hash == footer.xorb_hash
        undetected.add(pos)
    assert set(nonce) <= undetected  # the nonce is not covered by any hash (by design)
    assert all(pos in nonce or pos < start for pos in undetected), sorted(undetected)


def test_hostile_footer_counts():
    n = 0xFFFF_FFFF
    info = b"XETBLOB\x01" + bytes(32) + b"XBLBHSH\x00" + struct.pack("<I", n)
    with pytest.raises(XetFormatError):
        parse_footer(info + struct.pack("<I", len(info)))
    with pytest.raises(XetFormatError):
        parse_footer(b"\xff\xff\xff\xff")
    v0 = b"XETBLOB\x00" + bytes(32) + struct.pack("<I", n) + bytes(16)
    with pytest.raises(XetFormatError):
        parse_footer(v0 + struct.pack("<I", len(v0)))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_raises_only_format_errors(garbage):
    _only_format_errors(garbage)
    _only_format_errors(header(0, len(garbage), 1, 1000) + garbage)
    _only_format_errors(garbage + struct.pack("<I", len(garbage)))
