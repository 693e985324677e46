"""Batch decoding of xorb chunk records (``decode_records``): wasm kernel vs the core's reader
on frames written by python-lz4 with every option, and the streaming decoder built on it."""

from __future__ import annotations

import random
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import blake3
import lz4.frame
import pytest
import xxhash

from tests.portable.kernel_checks import make_bytes
from xet_pyodide.core.compression import Scheme
from xet_pyodide.core.hashes import DATA_KEY
from xet_pyodide.core.xorb import encode_chunk, record_header
from xet_pyodide.errors import XetFormatError
from xet_pyodide.kernels._load_wasmtime import load
from xet_pyodide.kernels._wasm import WasmKernels
from xet_pyodide.kernels.reference import ReferenceKernels
from xet_pyodide.session.download_decode import RecordDecoder, decode_records

REF = ReferenceKernels()


@pytest.fixture(scope="module")
def wasm() -> WasmKernels:
    return load()


def frame(data: bytes, **options: object) -> bytes:
    return lz4.frame.compress(data, **options)  # type: ignore[arg-type]


def bg4(data: bytes) -> bytes:
    return data[0::4] + data[1::4] + data[2::4] + data[3::4]


FRAME_OPTIONS = [
    {},
    {"block_linked": True},
    {"block_linked": False, "block_size": lz4.frame.BLOCKSIZE_MAX256KB},
    {"content_checksum": True},
    {"block_checksum": True, "block_linked": True},
    {"store_size": True, "content_checksum": True, "block_checksum": True},
    {"compression_level": 9, "block_linked": True},
]


def lz4_records(seed: int) -> tuple[bytes, list[bytes]]:
    """Records whose payloads are python-lz4 frames with the options above (linked blocks
    referencing earlier blocks, checksums, content sizes), plain and byte-grouped, some made
    of two concatenated frames with a skippable frame in between."""
    rnd = random.Random(seed)
    chunks: list[bytes] = []
    parts: list[bytes] = []
    for i, options in enumerate(FRAME_OPTIONS * 2):
        n = rnd.choice([0, 1, 4096, 70_000, 131_072])
        data = make_bytes(seed * 100 + i, n, rnd.choice(["text", "runs", "periodic", "random"]))
        scheme = rnd.choice([Scheme.LZ4, Scheme.BG4_LZ4])
        source = bg4(data) if scheme == Scheme.BG4_LZ4 else data
        if i % 3 == 2 and n:
            half = len(source) // 2
            skippable = struct.pack("<II", 0x184D2A5A, 3) + b"abc"
            payload = frame(source[:half], **options) + skippable + frame(source[half:], **options)
        else:
            payload = frame(source, **options)
        chunks.append(data)
        parts.append(record_header(scheme, len(payload), n) + payload)
    return b"".join(parts), chunks


@pytest.mark.parametrize("seed", range(4))
def test_python_lz4_frames_decode(wasm: WasmKernels, seed: int) -> None:
    body, chunks = lz4_records(seed)
    want = b"".join(chunks)
    for kernels in (wasm, REF):
        out = bytearray(len(want))
        batch = kernels.decode_records(body, len(chunks), memoryview(out), DATA_KEY)
        assert batch.consumed == len(body) and batch.need == 0
        assert batch.sizes == [len(c) for c in chunks]
        assert bytes(out) == want
        assert batch.digests == b"".join(
            blake3.blake3(c, key=DATA_KEY).digest() for c in chunks
        )


def test_stopping_rules(wasm: WasmKernels) -> None:
    chunks = [make_bytes(i, 10_000 * (i + 1), "text") for i in range(4)]
    body = b"".join(encode_chunk(c, Scheme.LZ4) for c in chunks)
    ends = [0]
    for c in chunks:
        ends.append(ends[-1] + len(c))
    records = [0]
    for c in chunks:
        records.append(records[-1] + len(encode_chunk(c, Scheme.LZ4)))
    for kernels in (wasm, REF):
        out = memoryview(bytearray(ends[-1]))
        # chunk count
        batch = kernels.decode_records(body, 2, out)
        assert (batch.consumed, batch.sizes, batch.need) == (records[2], [10_000, 20_000], 0)
        assert batch.digests == b""
        # output room: chunk 2 (30 000 bytes) does not fit in 35 000
        batch = kernels.decode_records(body, 4, out[:35_000])
        assert (batch.consumed, batch.need) == (records[2], 30_000)
        # incomplete last record: stops before it, whatever room there is
        batch = kernels.decode_records(body[: records[3] + 9], 4, out)
        assert (batch.consumed, len(batch.sizes), batch.need) == (records[3], 3, 0)
        assert bytes(out[: ends[3]]) == b"".join(chunks[:3])
        # nothing whole
        assert kernels.decode_records(body[:7], 4, out).consumed == 0


def test_errors_name_the_record(wasm: WasmKernels) -> None:
    good = encode_chunk(b"x" * 1000, Scheme.LZ4)
    payload = frame(b"y" * 1000, content_checksum=True)
    bad_sum = bytearray(payload)
    bad_sum[-1] ^= 1
    cases = [
        (struct.pack("<II", 1 | 3 << 8, 3 << 8) + b"abc", "version"),
        (struct.pack("<II", 3 << 8, 7 | 3 << 8) + b"abc", "scheme"),
        (struct.pack("<II", 1 << 8, 1 | 131_073 << 8) + b"a", "131072"),
        (struct.pack("<II", 262_145 << 8, 1 | 10 << 8), "too large"),
        (record_header(0, 2, 1)[:4] + struct.pack("<I", 1 << 8) + b"ab", "mismatched"),
        (record_header(1, len(bad_sum), 1000) + bytes(bad_sum), "content checksum"),
        (record_header(1, len(payload), 999) + payload, "exceeds|999"),
        (record_header(1, len(payload), 1001) + payload, "1000 bytes"),
        (record_header(1, 5, 10) + b"\x04\x22\x4d\x18\x60", "truncated"),
        (record_header(1, 4, 10) + b"abcd", "magic"),
    ]
    for record, message in cases:
        for kernels in (wasm, REF):
            with pytest.raises(XetFormatError, match=f"^chunk record 3: .*({message})"):
                kernels.decode_records(good + record, 5, memoryview(bytearray(5000)), None, 2)


def test_decoded_bytes_outside_the_output_are_untouched(wasm: WasmKernels) -> None:
    """The kernel decodes into the arena and copies out only what it produced."""
    chunks = [make_bytes(7, 65_536, "runs"), make_bytes(8, 1000, "text")]
    body = b"".join(encode_chunk(c, Scheme.BG4_LZ4) for c in chunks)
    out = bytearray(b"\xee" * 70_000)
    batch = wasm.decode_records(body, 2, memoryview(out)[100:])
    assert batch.sizes == [65_536, 1000]
    assert out[:100] == b"\xee" * 100 and out[100 + 66_536 :] == b"\xee" * (70_000 - 66_636)


@pytest.mark.parametrize("seed", range(6))
def test_streaming_decoder_any_split(seed: int) -> None:
    """RecordDecoder fed the same records in random blocks (splits inside headers and
    payloads, empty blocks) gives the one-shot result, hashes included."""
    rnd = random.Random(seed)
    chunks = [
        make_bytes(seed * 50 + i, rnd.choice([0, 5, 3000, 65_536, 131_072]), kind)
        for i, kind in enumerate(rnd.choices(["random", "text", "zeros"], k=9))
    ]
    body = b"".join(encode_chunk(c, rnd.choice(list(Scheme))) for c in chunks)
    whole = decode_records(body, len(chunks), 0, DATA_KEY)
    decoder = RecordDecoder(len(chunks), rnd.randrange(0, 200_000), DATA_KEY)
    pos = 0
    while pos < len(body):
        step = rnd.choice([0, 1, 7, 8, 9, 1000, 70_000, 300_000])
        decoder.feed(body[pos : pos + step])
        pos += step
    streamed = decoder.finish()
    assert bytes(streamed.data) == bytes(whole.data) == b"".join(chunks)
    assert streamed.offsets == whole.offsets
    assert streamed.hashes == whole.hashes
    assert whole.hashes is not None and [h.raw for h in whole.hashes] == [
        blake3.blake3(c, key=DATA_KEY).digest() for c in chunks
    ]


def test_streaming_decoder_rejects_extra_records() -> None:
    body = encode_chunk(b"a" * 100) * 3
    decoder = RecordDecoder(2)
    with pytest.raises(XetFormatError, match="more than 2 chunks"):
        decoder.feed(body)
    decoder = RecordDecoder(2)
    decoder.feed(body[: len(body) // 3 * 2 + 5])  # 5 bytes of a third record's header
    with pytest.raises(XetFormatError, match=r"holds 2 whole chunk records \(\+5 bytes\)"):
        decoder.finish()


@pytest.mark.parametrize("kind", ["random", "text", "zeros", "runs", "periodic"])
def test_encode_record_matches_python_assembly(wasm: WasmKernels, kind: str) -> None:
    """One kernel call gives byte for byte the record the block kernels and Python assemble
    (and python-lz4 reads its frames back)."""
    from xet_pyodide.kernels.records import encode_record_python

    rnd = random.Random(kind)
    for n in [0, 1, 12, 13, 100, 65_535, 65_536, 65_537, 131_072, rnd.randrange(131_073)]:
        data = make_bytes(n, n, kind)
        for scheme in (0, 1, 2):
            record = wasm.encode_record(data, scheme)
            assert record == encode_record_python(data, scheme, wasm), (n, scheme)
            stored, used = struct.unpack_from("<II", record)
            assert used >> 8 == n and stored >> 8 == len(record) - 8
            payload = record[8:]
            if used & 0xFF == 1:
                assert lz4.frame.decompress(payload) == data
            elif used & 0xFF == 2:
                assert lz4.frame.decompress(payload) == bg4(data)
            else:
                assert payload == data


def test_encode_record_rejects_bad_input(wasm: WasmKernels) -> None:
    with pytest.raises(ValueError, match="131072"):
        wasm.encode_record(bytes(131_073), 1)
    with pytest.raises(ValueError, match="scheme"):
        wasm.encode_record(b"abc", 3)


def test_encode_records_reference_and_wasm_agree(wasm: WasmKernels) -> None:
    rnd = random.Random(5)
    chunks = [make_bytes(i, rnd.choice([1, 300, 5000]), "text") for i in range(6)]
    schemes = bytes([0, 1, 2, 2, 1, 0])
    per_chunk = b"".join(wasm.encode_record(c, s) for c, s in zip(chunks, schemes, strict=True))
    out_ref, out_wasm = bytearray(b"ab"), bytearray(b"ab")
    crc_ref = REF.encode_records(chunks, schemes, out_ref, 17)
    crc_wasm = wasm.encode_records(chunks, schemes, out_wasm, 17)
    assert out_wasm == b"ab" + per_chunk and crc_wasm == wasm.crc64_nvme(per_chunk, 17)
    # the reference backend's own LZ4 may pick other matches: same rule, its own records
    ref_chunk = b"".join(REF.encode_record(c, s) for c, s in zip(chunks, schemes, strict=True))
    assert out_ref == b"ab" + ref_chunk and crc_ref == wasm.crc64_nvme(ref_chunk, 17)
    assert wasm.encode_records([], b"", out_wasm) is None and out_wasm == b"ab" + per_chunk


def test_encode_records_rejects_bad_input(wasm: WasmKernels) -> None:
    out = bytearray(b"keep")
    with pytest.raises(ValueError, match="131072"):
        wasm.encode_records([b"x", bytes(131_073)], b"\x01\x01", out)
    with pytest.raises(ValueError, match="scheme"):
        wasm.encode_records([b"x", b"y"], b"\x01\x03", out)
    with pytest.raises(ValueError, match="2 chunks but 1 schemes"):
        wasm.encode_records([b"x", b"y"], b"\x01", out)
    assert out == b"keep"  # nothing appended


# ------------------------------------------------------------------- differential fuzzing
#
# The native fuzzer (scripts/fuzz_records.sh) cannot reach the SIMD code that ships (BG4
# regroup, 4-lane BLAKE3 are wasm128-only), so the shipped .wasm meets its regression corpus
# here: every corpus input and seeded mutations of it, decoded by the wasm kernels and by the
# reference decoder (the record reader of kernels/records.py over the reference kernels' own
# block functions: no wasm),
# must give the same result or the same error. Inputs read as the harness reads them: 4 bytes
# of parameters (record limit, output capacity, hash or not, scheme), then the records.

FUZZ_CORPUS = Path(__file__).resolve().parents[2] / "tests" / "fuzz" / "corpus"


@pytest.fixture
def reference_only() -> ReferenceKernels:
    """REF decodes records over its own block functions (``ReferenceKernels()`` without
    ``blocks``), so REF.decode_records uses no wasm at all."""
    assert REF.blocks is REF
    return REF


def _mutate(rnd: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    kind = rnd.randrange(7)
    if kind == 0 and out:  # a few bit flips
        for _ in range(rnd.randint(1, 3)):
            out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
    elif kind == 1 and len(out) >= 4:  # a 32-bit field set to an edge value
        pos = rnd.randrange(len(out) - 3)
        value = rnd.choice([0, 1, 0xFF, 0x100, 0xFFFF, 131_072 << 8, 0xFFFFFFFF])
        out[pos : pos + 4] = struct.pack("<I", value ^ rnd.choice([0, 1]))
    elif kind == 2:  # truncated
        del out[rnd.randrange(len(out) + 1) :]
    elif kind == 3:  # spliced with another input
        out = out[: rnd.randrange(len(out) + 1)] + other[rnd.randrange(len(other) + 1) :]
    elif kind == 4 and out:  # a range repeated
        a = rnd.randrange(len(out))
        out[a:a] = out[a : a + rnd.randint(1, 300)]
    elif kind == 5:  # other parameters
        out[:4] = rnd.randbytes(4)
    elif kind == 6:  # a frame descriptor changed and its header checksum made to match
        _edit_frame_descriptor(rnd, out)
    return bytes(out)


def _edit_frame_descriptor(rnd: random.Random, out: bytearray) -> None:
    """Change an LZ4 frame's FLG or BD (a bit flip) or its content size (by a few bytes) and
    make the header checksum match (random flips there only ever meet the checksum test)."""
    frames = [m.end() for m in re.finditer(re.escape(lz4.frame.compress(b"")[:4]), out)]
    at = rnd.choice(frames) if frames else len(out)
    if at + 11 > len(out):
        return
    if out[at] & 0x08 and rnd.random() < 0.5:
        (size,) = struct.unpack_from("<Q", out, at + 2)
        struct.pack_into("<Q", out, at + 2, max(0, size + rnd.choice([-2, -1, 1, 3])))
    else:
        out[at + rnd.randrange(2)] ^= 1 << rnd.randrange(8)
    end = at + (10 if out[at] & 0x08 else 2)
    out[end] = (xxhash.xxh32_intdigest(bytes(out[at:end])) >> 8) & 0xFF


def _decode(kernels: Any, data: bytes) -> tuple:
    """What ``kernels.decode_records`` makes of a fuzzer input (or its error)."""
    if len(data) < 4:
        return ("too short",)
    cap = (data[1] << 10) | data[2]
    out = bytearray(cap)
    key = DATA_KEY if data[3] & 1 else None
    try:
        batch = kernels.decode_records(data[4:], 1 + data[0] % 8, memoryview(out), key)
    except XetFormatError as exc:  # (the wording differs; the record it names may not)
        return ("error", re.match(r"chunk record (\d+): ", str(exc)).group(1))  # type: ignore[union-attr]
    return (batch.consumed, batch.sizes, batch.need, batch.digests, bytes(out[: sum(batch.sizes)]))


def test_shipped_wasm_matches_reference_on_mutated_corpus(
    wasm: WasmKernels, reference_only: ReferenceKernels
) -> None:
    inputs = sorted(p.read_bytes() for p in FUZZ_CORPUS.iterdir() if p.is_file())
    assert len(inputs) >= 100
    rnd = random.Random(18)
    cases = inputs + [_mutate(rnd, x, rnd.choice(inputs)) for x in inputs for _ in range(12)]
    outcomes: Counter[str] = Counter()
    for data in cases:
        want = _decode(REF, data)
        assert _decode(wasm, data) == want, data[:64].hex()
        outcomes[want[0] if isinstance(want[0], str) else "decoded" if want[1] else "none"] += 1
    assert outcomes["error"] > 100 and outcomes["decoded"] > 100, outcomes


def test_shipped_wasm_encoder_output_decodes_with_reference(
    wasm: WasmKernels, reference_only: ReferenceKernels
) -> None:
    """The harness's round trip, across implementations: what the wasm encoder makes of each
    corpus input (as chunk data, every scheme) decodes to it with the reference decoder."""
    for path in sorted(FUZZ_CORPUS.iterdir()):
        data = path.read_bytes()[4 : 4 + 131_072]
        for scheme in (0, 1, 2):
            record = wasm.encode_record(data, scheme)
            out = bytearray(len(data))
            batch = REF.decode_records(record, 1, memoryview(out), DATA_KEY)
            assert (batch.consumed, batch.sizes, bytes(out)) == (len(record), [len(data)], data)
            assert batch.digests == blake3.blake3(data, key=DATA_KEY).digest()
