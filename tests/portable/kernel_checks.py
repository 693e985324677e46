"""Kernel cross-checks that run unchanged in CPython, Pyodide-in-Node and Pyodide-in-Chromium.

Inside Pyodide there is no native ``blake3``/``lz4``, so the CPython side of a test
(``tests/cpython/test_kernels_portable.py``) builds the inputs with :func:`make_bytes` (seeded,
deterministic, stdlib only), computes the expected values with the native libraries, and passes
both the input *specs* and the expectations as JSON. The functions here rebuild the same inputs,
run them through ``get_kernels()`` (which must be the wasm backend) and return what they got.
Checks that need no native reference (BG4, malformed LZ4 against the pure-Python decoder) are
self-contained and return a list of mismatches.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from typing import Any

_WORDS = [b"the ", b"xet ", b"chunk ", b"hash ", b"0123 ", b"\n", b"pyodide ", b"lz4 ", b"\x00\x01"]


def make_bytes(seed: int, n: int, kind: str = "random") -> bytes:
    """Deterministic test input. ``kind``: random | text | zeros | runs | periodic."""
    rnd = random.Random(seed)
    if kind == "random":
        return rnd.randbytes(n)
    if kind == "zeros":
        return bytes(n)
    if kind == "text":
        parts: list[bytes] = []
        size = 0
        while size < n:
            w = rnd.choice(_WORDS)
            parts.append(w)
            size += len(w)
        return b"".join(parts)[:n]
    if kind == "runs":
        out = bytearray()
        while len(out) < n:
            out += bytes([rnd.randrange(4)]) * rnd.randrange(1, 300)
        return bytes(out[:n])
    if kind == "periodic":
        period = rnd.randbytes(rnd.randrange(1, 40))
        return (period * (n // len(period) + 1))[:n]
    raise ValueError(f"unknown kind {kind!r}")


async def _kernels() -> Any:
    from xet_pyodide import kernels

    k = await kernels.load_kernels()
    if not k.name.startswith("wasm"):
        raise AssertionError(f"expected the wasm kernels, got {k.name}")
    return k


async def backend_name() -> str:
    return (await _kernels()).name


async def blake3_batches(cases: list[list[Any]], key_hex: str) -> list[dict[str, Any]]:
    """cases: [seed, kind, [lengths...]]. Returns per case the hex digests from
    blake3_keyed_many and from one blake3_keyed call per message."""
    k = await _kernels()
    key = bytes.fromhex(key_hex)
    out = []
    for seed, kind, lengths in cases:
        data = make_bytes(seed, sum(lengths), kind)
        many = k.blake3_keyed_many(data, lengths, key)
        singles = []
        pos = 0
        for n in lengths:
            singles.append(k.blake3_keyed(data[pos : pos + n], key).hex())
            pos += n
        out.append(
            {"many": [many[i : i + 32].hex() for i in range(0, len(many), 32)], "single": singles}
        )
    return out


async def gear_scans(cases: list[list[Any]]) -> list[list[Any]]:
    """cases: [seed, kind, n, state, split]. Returns [candidates, final_state] of a scan of the
    whole input, after checking that scanning it as two pieces (split) gives the same."""
    k = await _kernels()
    out = []
    for seed, kind, n, state, split in cases:
        data = make_bytes(seed, n, kind)
        cands, final = k.gear_scan(data, state)
        a, mid = k.gear_scan(data[:split], state)
        b, end = k.gear_scan(data[split:], mid)
        if a + [split + i for i in b] != cands or end != final:
            raise AssertionError(f"gear split mismatch for case {seed}/{n}/{split}")
        out.append([cands, final])
    return out


async def lz4_compress_blocks(cases: list[list[Any]]) -> list[str]:
    """cases: [seed, kind, n]. Returns our compressed blocks, base64 (checked natively)."""
    k = await _kernels()
    return [
        base64.b64encode(k.lz4_compress_block(make_bytes(s, n, kind))).decode()
        for s, kind, n in cases
    ]


async def lz4_decompress_blocks(blocks: list[list[Any]]) -> list[str]:
    """blocks: [base64 block, size]. Returns sha256 hex of each decompressed output."""
    k = await _kernels()
    return [
        hashlib.sha256(k.lz4_decompress_block(base64.b64decode(b), n)).hexdigest()
        for b, n in blocks
    ]


async def lz4_malformed(seed: int, count: int) -> list[str]:
    """Truncate, corrupt and shrink-the-output valid blocks; the wasm decoder must agree with the
    pure-Python reference decoder (same output, or both raise XetFormatError)."""
    from xet_pyodide.errors import XetFormatError
    from xet_pyodide.kernels.reference import _lz4_decompress

    k = await _kernels()
    rnd = random.Random(seed)
    problems: list[str] = []

    def run(fn: Any, blk: bytes, cap: int) -> bytes | None:
        try:
            return fn(blk, cap)
        except XetFormatError:
            return None

    for i in range(count):
        data = make_bytes(seed + i, rnd.randrange(0, 3000), rnd.choice(["text", "runs", "random"]))
        block = k.lz4_compress_block(data)
        variants = [(block[:cut], len(data)) for cut in range(len(block))]
        for _ in range(20):
            bad = bytearray(block)
            if bad:
                bad[rnd.randrange(len(bad))] = rnd.randrange(256)
            variants.append((bytes(bad), len(data) + rnd.randrange(0, 64)))
        variants.append((block, max(0, len(data) - 1)))
        variants.append((rnd.randbytes(rnd.randrange(1, 64)), 4096))
        for blk, cap in variants:
            got, want = run(k.lz4_decompress_block, blk, cap), run(_lz4_decompress, blk, cap)
            if got != want:
                problems.append(f"case {i}: block {blk.hex()[:80]} cap {cap}")
    return problems


def _decode_outcome(kernels: Any, data: bytes, max_chunks: int, room: int) -> Any:
    """What ``decode_records`` does with ``data``: its result and output, or the record an
    error names (the text before the first colon: "chunk record N")."""
    from xet_pyodide.core.hashes import DATA_KEY
    from xet_pyodide.errors import XetFormatError

    out = bytearray(room)
    try:
        batch = kernels.decode_records(data, max_chunks, memoryview(out), DATA_KEY, 5)
    except XetFormatError as exc:
        return ("error", str(exc).split(":")[0])
    return (batch.consumed, batch.sizes, batch.need, batch.digests.hex(), bytes(out).hex())


async def records_vs_reference(seed: int, count: int) -> list[str]:
    """Batch record decoding (one kernel call) against the core's record-at-a-time reader
    (the reference kernels' ``decode_records``) on valid, truncated and corrupted runs of
    records, with every stopping rule (chunk count, output room, incomplete last record)."""
    from xet_pyodide.core.xorb import Scheme, encode_chunk
    from xet_pyodide.kernels.reference import ReferenceKernels

    k = await _kernels()
    ref = ReferenceKernels(blocks=k)  # the record walk in Python, the block work as before
    rnd = random.Random(seed)
    problems: list[str] = []
    sizes = [0, 1, 100, 1023, 4096, 65536, 131072]
    for i in range(count):
        chunks = [
            make_bytes(seed + 100 * i + j, rnd.choice([*sizes, rnd.randrange(131073)]), kind)
            for j, kind in enumerate(rnd.choices(["random", "text", "runs", "zeros"], k=5))
        ][: rnd.randrange(1, 6)]
        body = b"".join(encode_chunk(c, rnd.choice(list(Scheme))) for c in chunks)
        total = sum(map(len, chunks))
        variants = [body, body[: rnd.randrange(len(body) + 1)], body + b"\0" * 7]
        for _ in range(12):
            bad = bytearray(body)
            bad[rnd.randrange(len(bad))] = rnd.randrange(256)
            variants.append(bytes(bad))
        for v, data in enumerate(variants):
            for max_chunks, room in (
                (len(chunks), total),
                (rnd.randrange(1, len(chunks) + 1), total),
                (len(chunks) + 1, rnd.randrange(total + 1)),
            ):
                got = _decode_outcome(k, data, max_chunks, room)
                want = _decode_outcome(ref, data, max_chunks, room)
                if got != want:
                    problems.append(
                        f"case {i} variant {v} max {max_chunks} room {room}: "
                        f"{str(got)[:120]} != {str(want)[:120]}"
                    )
    return problems


async def records_encode_vs_python(seed: int, count: int) -> list[str]:
    """``encode_record`` (one kernel call) against the record Python assembles from the
    block kernels, and back through ``decode_records``."""
    from xet_pyodide.kernels.records import encode_record_python

    k = await _kernels()
    rnd = random.Random(seed)
    problems: list[str] = []
    for i in range(count):
        n = rnd.choice([0, 1, 13, 4096, 65_536, 65_537, 131_072, rnd.randrange(131_073)])
        data = make_bytes(seed + i, n, rnd.choice(["random", "text", "runs", "zeros"]))
        for scheme in (0, 1, 2):
            record = k.encode_record(data, scheme)
            out = bytearray(n)
            batch = k.decode_records(record, 1, memoryview(out))
            if record != encode_record_python(data, scheme, k) or bytes(out) != data:
                problems.append(f"case {i}: {n} bytes, scheme {scheme}")
            if batch.consumed != len(record):
                problems.append(f"case {i}: record not consumed")
    return problems


def _float_bytes(seed: int, n: int) -> bytes:
    """float32 noise (BG4-friendly: the exponent bytes repeat), cut to ``n`` bytes."""
    rnd = random.Random(seed)
    floats = struct.pack(f"<{n // 4 + 1}f", *(rnd.gauss(0, 1) for _ in range(n // 4 + 1)))
    return floats[:n]


def _mixed_chunks(seed: int, count: int) -> list[bytes]:
    """Chunks of every kind the packer meets, sizes at the limits included."""
    rnd = random.Random(seed)
    chunks = []
    for i in range(count):
        n = rnd.choice([1, 13, 8192, 65_536, 65_537, 131_072, rnd.randrange(1, 131_073)])
        kind = rnd.choice(["random", "text", "runs", "zeros", "floats", "floats"])
        data = _float_bytes(seed + i, n) if kind == "floats" else make_bytes(seed + i, n, kind)
        chunks.append(data)
    return chunks


async def records_batch_vs_single(seed: int, count: int) -> list[str]:
    """``encode_records`` (one kernel call per run) against one ``encode_record`` per chunk:
    the same bytes, whatever the schemes, with and without the CRC, for runs of many of one
    call's pieces (``ENCODE_PIECE``, 512 KiB of chunks) too."""
    from xet_pyodide.core.crc import crc64_nvme

    k = await _kernels()
    rnd = random.Random(seed)
    problems: list[str] = []
    chunks = _mixed_chunks(seed, count)
    # a run of 80 chunks of 128 KiB: 20 kernel calls, the CRC carried from one to the next
    chunks += [_float_bytes(seed + 1000 + i, 131_072) for i in range(80)]
    schemes = bytes(rnd.choice([0, 1, 2]) for _ in chunks)
    want = b"".join(k.encode_record(c, s) for c, s in zip(chunks, schemes, strict=True))
    for start, stop in ((0, len(chunks)), (0, 1), (3, 9), (count, len(chunks))):
        expect = b"".join(
            k.encode_record(c, s)
            for c, s in zip(chunks[start:stop], schemes[start:stop], strict=True)
        )
        out = bytearray(b"head")
        if (
            k.encode_records([memoryview(c) for c in chunks[start:stop]], schemes[start:stop], out)
            is not None
        ):
            problems.append(f"{start}:{stop}: a CRC without asking")
        if bytes(out) != b"head" + expect:
            problems.append(f"{start}:{stop}: records differ")
        out = bytearray()
        crc = k.encode_records(chunks[start:stop], schemes[start:stop], out, crc64_nvme(b"head"))
        if bytes(out) != expect or crc != crc64_nvme(b"head" + expect):
            problems.append(f"{start}:{stop}: records or CRC differ with a CRC")
    if not want:
        problems.append("nothing encoded")
    for bad_chunks, bad_schemes in (([b"x"], b"\x03"), ([bytes(131_073)], b"\x01"), ([b"x"], b"")):
        try:
            k.encode_records(bad_chunks, bad_schemes, bytearray())
            problems.append(f"accepted {len(bad_chunks[0])} bytes, schemes {bad_schemes!r}")
        except ValueError:
            pass
    return problems


async def popcount_vs_reference(seed: int) -> list[str]:
    """``popcount_histograms`` (the BG4 predictor's statistic) against the reference
    backend's bytes.translate/count, every length mod 4, float-like and other data."""
    from xet_pyodide.kernels.reference import ReferenceKernels

    k = await _kernels()
    ref = ReferenceKernels()
    problems: list[str] = []
    for i, n in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 8, 4099, 65_536, 131_071, 131_072]):
        for data in (_float_bytes(seed + i, n), make_bytes(seed + i, n, "runs")):
            if k.popcount_histograms(memoryview(data)) != ref.popcount_histograms(data):
                problems.append(f"{n} bytes: histograms differ")
    return problems


async def packer_batched_vs_per_chunk(seed: int, count: int, max_xorb_bytes: int) -> list[str]:
    """``Packer.stage`` + ``flush_file`` (the upload's batched path) against ``Packer.add``
    (one record per call) on the same chunks of three interleaved files: the same xorbs
    (bodies, hashes, per-file byte counts, CRC-64 kept while packing), the same locations,
    the same record bytes."""
    from xet_pyodide.core.crc import crc64_nvme
    from xet_pyodide.core.hashes import chunk_hash
    from xet_pyodide.session.packing import Packer

    await _kernels()
    rnd = random.Random(seed)
    chunks = _mixed_chunks(seed, count)
    # a long float run then random: the scheme is re-chosen every 32 chunks of a draft
    chunks += [_float_bytes(seed + 2000 + i, 4096) for i in range(70)]
    chunks += [make_bytes(seed + 3000 + i, 2048) for i in range(40)]
    hashes = [chunk_hash(c).raw for c in chunks]
    files = [rnd.randrange(3) for _ in chunks]
    cuts = sorted(rnd.sample(range(1, len(chunks)), 12))  # where a _place call ends
    problems: list[str] = []

    one, many = [], []
    per_chunk = Packer(one.append, max_xorb_bytes=max_xorb_bytes, checksum=True)
    batched = Packer(many.append, max_xorb_bytes=max_xorb_bytes, checksum=True)
    added = staged = 0
    locations_a, locations_b = [], []
    start = 0
    for stop in [*cuts, len(chunks)]:
        touched = set()
        for i in range(start, stop):
            draft, index, record_len = per_chunk.add(files[i], chunks[i], hashes[i])
            locations_a.append((per_chunk.drafts.index(draft), index))
            added += record_len
            draft_b, index_b = batched.stage(files[i], memoryview(chunks[i]), hashes[i])
            locations_b.append((batched.drafts.index(draft_b), index_b))
            touched.add(files[i])
        for fid in sorted(touched):
            staged += batched.flush_file(fid)
        start = stop
        if stop == cuts[5]:
            per_chunk.finish_file(0)
            batched.finish_file(0)
    for packer in (per_chunk, batched):
        packer.seal_all()
    if locations_a != locations_b:
        problems.append("locations differ")
    if added != staged:
        problems.append(f"record bytes {added} != {staged}")
    if len(one) != len(many):
        problems.append(f"{len(one)} xorbs != {len(many)}")
    for n, (a, b) in enumerate(zip(one, many, strict=False)):
        if bytes(a.body) != bytes(b.body):
            problems.append(f"xorb {n}: bodies differ")
        if a.hash != b.hash or a.file_bytes != b.file_bytes or a.chunk_sizes != b.chunk_sizes:
            problems.append(f"xorb {n}: hash, file bytes or sizes differ")
        if not a.crc64 == b.crc64 == crc64_nvme(bytes(b.body)):
            problems.append(f"xorb {n}: CRC-64 {a.crc64} / {b.crc64} is not the body's")
    if not one:
        problems.append("no xorb")
    schemes = set()
    for x in one:
        pos = 0
        while pos < len(x.body):
            w0, w1 = struct.unpack_from("<II", x.body, pos)
            schemes.add(w1 & 0xFF)
            pos += 8 + (w0 >> 8)
    if schemes != {0, 1, 2}:
        problems.append(f"schemes used: {sorted(schemes)} (the data should need all three)")
    return problems


async def checksums(cases: list[list[Any]]) -> list[list[int]]:
    """cases: [seed, kind, n, seed32]. Returns [crc64, crc64 streamed in 3 parts, xxh32]."""
    k = await _kernels()
    out = []
    for seed, kind, n, xseed in cases:
        data = make_bytes(seed, n, kind)
        a, b = n // 3, 2 * n // 3
        streamed = k.crc64_nvme(data[b:], k.crc64_nvme(data[a:b], k.crc64_nvme(data[:a])))
        out.append([k.crc64_nvme(data), streamed, k.xxh32(data, xseed)])
    return out


async def sha256_digests(cases: list[list[Any]]) -> list[list[str]]:
    """cases: [seed, kind, n, piece]. Returns [KernelSha256 fed whole, fed in ``piece``-byte
    writes, the runtime's hashlib] hex digests (the test compares them with CPython's
    hashlib, i.e. OpenSSL)."""
    from xet_pyodide.kernels.sha256 import KernelSha256

    k = await _kernels()
    out = []
    for seed, kind, n, piece in cases:
        data = make_bytes(seed, n, kind)
        pieces = KernelSha256(k)
        for start in range(0, n, piece):
            pieces.update(data[start : start + piece])
        whole = KernelSha256(k, data).hexdigest()
        out.append([whole, pieces.hexdigest(), hashlib.sha256(data).hexdigest()])
    return out


async def bg4_roundtrips(sizes: list[int]) -> list[int]:
    """BG4 split/regroup against the slicing definition; returns the sizes that failed."""
    k = await _kernels()
    bad = []
    for n in sizes:
        data = make_bytes(n, n)
        split = k.bg4_split(data)
        want = data[0::4] + data[1::4] + data[2::4] + data[3::4]
        if split != want or k.bg4_regroup(split) != data:
            bad.append(n)
    return bad


async def memory_after(calls: int) -> list[int]:
    """Memory size after one large call and after many smaller calls of every kernel."""
    k = await _kernels()
    big = make_bytes(1, 4 << 20)
    k.blake3_keyed_many(big, [len(big)], bytes(32))
    k.lz4_decompress_block(k.lz4_compress_block(big), len(big))
    first = k.memory_size()
    for i in range(calls):
        data = make_bytes(i, 1000 + 997 * i)
        k.gear_scan(data)
        k.blake3_keyed_many(data, [len(data)], bytes(32))
        k.lz4_decompress_block(k.lz4_compress_block(data), len(data))
        k.bg4_regroup(k.bg4_split(data))
        k.crc64_nvme(data)
    return [first, k.memory_size()]

