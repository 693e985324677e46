"""Protocol-core checks that run unchanged in CPython, Pyodide-in-Node and Pyodide-in-Chromium.

Only the standard library, ``xet_pyodide`` and the vectors' input generator are imported;
arguments and results are JSON. Inputs are rebuilt from their names by
``tests/vectors/make_inputs.py`` (the Pyodide runtimes get a copy of it), so the CPython side
only passes the expected values.

The checks are synchronous; in Pyodide call :func:`prepare` (async) once first, which loads
the kernels the way a browser main thread requires.
"""

from __future__ import annotations

import hashlib
import random

try:  # CPython: the repository's copy
    from tests.vectors.make_inputs import CASES
except ImportError:  # Pyodide: copied to sys.path by tests/plugins/pyodide.py
    from make_inputs import CASES  # type: ignore[import-not-found,no-redef]


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


async def prepare() -> str:
    """Load the kernels (asynchronously where the runtime needs it); returns the backend."""
    from xet_pyodide import kernels

    loader = getattr(kernels, "load_kernels", None)
    k = await loader() if loader is not None else kernels.get_kernels()
    return k.name


def ends_of(chunks: list[bytes]) -> list[int]:
    """Exclusive end offsets of back-to-back chunks."""
    out, total = [], 0
    for c in chunks:
        total += len(c)
        out.append(total)
    return out


# --------------------------------------------------------------------------- checks


def single_values() -> dict:
    """§1 hex example, §3.3 node example, §3.8 HMAC example, chunk hashes, CRC check value."""
    from xet_pyodide.core.crc import crc64_nvme
    from xet_pyodide.core.hashes import MerkleHash, chunk_hash, hmac_hash, node_hash

    children = [
        ("1f6a2b8e9d3c4075a2e8c5fd4f0b763e6f3c1d7a9b2e6487de3f91ab7c6d5401", 10000),
        ("7c94fe2a38bdcf9b4d2a6f7e1e08ac35bc24a7903d6f5a0e7d1c2b93e5f748de", 20000),
        ("cfd18a92e0743bb09e56dbf76ea2c34d99b5a0cf271f8d429b6cd148203df061", 25000),
        ("e38d7c09a21b4cf8d0f92b3a85e6df19f7c20435e0b1c78a9d635f7b8c2e4da1", 64000),
    ]
    node, _ = node_hash([(MerkleHash.from_hex(h), s) for h, s in children])
    return {
        "xet_hex_of_bytes_0_to_31": MerkleHash(bytes(range(32))).hex(),
        "chunk_hash_abc": chunk_hash(b"abc").hex(),
        "chunk_hash_empty": chunk_hash(b"").hex(),
        "hmac_chunk_hash_abc_key_bytes_0_to_31": hmac_hash(
            chunk_hash(b"abc"), bytes(range(32))
        ).hex(),
        "crc64nvme_of_123456789": hex(crc64_nvme(b"123456789")),
        "spec_node_hash": node.hex(),
    }


def vector_case(name: str) -> dict:
    """Everything expected.json records for one case, computed here."""
    from xet_pyodide.core.chunking import chunk_boundaries
    from xet_pyodide.core.filehash import FileHasher
    from xet_pyodide.core.hashes import chunk_hashes, verification_hash, xorb_hash

    data = CASES[name]()
    ends = chunk_boundaries(data)
    sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    hashes = chunk_hashes(data, sizes)
    hasher = FileHasher()
    for start in range(0, len(data), 1 << 20):
        hasher.update(data[start : start + (1 << 20)])
    entries = list(zip(hashes, sizes, strict=True))
    return {
        "size": len(data),
        "chunk_ends": ends,
        "chunk_hashes": [h.hex() for h in hashes[:40]],
        "xorb_hash_all_chunks": xorb_hash(entries).hex() if entries else None,
        "verification_hash_all_chunks": verification_hash(hashes).hex() if hashes else None,
        "file_hash": hasher.finish().hex(),
        "sha256": hasher.sha256_hex(),
    }


def streamed_chunk_ends(name: str, feed_sizes: list[int]) -> list[int]:
    """Chunk ends with the input fed in the given (cycled) block sizes."""
    from xet_pyodide.core.chunking import Chunker

    data = CASES[name]()
    chunker = Chunker()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        n = feed_sizes[i % len(feed_sizes)]
        out += chunker.feed(memoryview(data)[pos : pos + n])
        pos += n
        i += 1
    return ends_of(out + chunker.finish())


def xorb_round_trip(name: str) -> dict:
    """Build a xorb (hf_xet compression policy), store it with a footer, parse it back."""
    from xet_pyodide.core.chunking import chunk_data
    from xet_pyodide.core.xorb import XorbBuilder, iter_records, load_xorb, parse_footer

    chunks = chunk_data(CASES[name]())
    builder = XorbBuilder()
    builder.add_chunks(chunks)
    xorb = builder.finish()
    stored = xorb.stored()
    loaded, decoded = load_xorb(stored, xorb.hash)
    footer = parse_footer(stored)
    schemes: dict[str, int] = {}
    for record in iter_records(xorb.body):
        schemes[str(record.scheme)] = schemes.get(str(record.scheme), 0) + 1
    return {
        "xorb_hash": xorb.hash.hex(),
        "num_chunks": xorb.num_chunks,
        "decoded_equal": decoded == chunks,
        "footer_hash": footer.xorb_hash.hex(),
        "footer_len": len(stored) - len(xorb.body),
        "record_offsets_equal": loaded.record_offsets == xorb.record_offsets,
        "schemes": schemes,
    }


def shard_round_trip(names: list[str]) -> dict:
    """Files → one xorb (session dedup) → upload shard and stored shard → parse back."""
    from xet_pyodide.core.chunking import chunk_data
    from xet_pyodide.core.hashes import hash_chunks
    from xet_pyodide.core.shard import (
        Shard,
        ShardFooterInfo,
        XorbEntry,
        parse_shard,
        parse_shard_full,
        serialize_shard,
    )
    from xet_pyodide.core.terms import build_file_entry
    from xet_pyodide.core.xorb import XorbBuilder

    builder = XorbBuilder()
    index: dict = {}
    per_file = []
    for name in names:
        data = CASES[name]()
        chunks = chunk_data(data)
        hashes = hash_chunks(chunks) if chunks else []
        builder.start_file_segment()
        for chunk, h in zip(chunks, hashes, strict=True):
            if h not in index:
                index[h] = builder.add(chunk, h)
        sha = hashlib.sha256(data).digest() if data else bytes(32)
        per_file.append((hashes, [len(c) for c in chunks], sha))
    xorb = builder.finish()
    files = [
        build_file_entry(hashes, sizes, [(xorb.hash, index[h]) for h in hashes], sha)
        for hashes, sizes, sha in per_file
    ]
    shard = Shard(files, [XorbEntry.from_chunks(xorb.hash, xorb.chunk_hashes, xorb.chunk_sizes)])
    upload = serialize_shard(shard)
    parsed = parse_shard(upload)
    shard.footer = ShardFooterInfo(bytes(range(32)), 1_700_000_000, 1_700_604_800)
    stored = serialize_shard(shard, with_footer=True, with_lookup_tables=True)
    full = parse_shard_full(stored)
    return {
        "file_hashes": [f.file_hash.hex() for f in files],
        "sha256": [f.sha256.hex() if f.sha256 else None for f in files],
        "terms": [[[t.chunk_start, t.chunk_end, t.unpacked_bytes] for t in f.terms] for f in files],
        "xorb_hash": xorb.hash.hex(),
        "upload_len": len(upload),
        "upload_round_trip": serialize_shard(parsed) == upload,
        "stored_round_trip": full.shard.files == parsed.files and full.shard.xorbs == parsed.xorbs,
        "lookup_counts": [len(full.lookup.files), len(full.lookup.xorbs), len(full.lookup.chunks)],
        "footer_key_hex": full.shard.footer.hmac_key.hex() if full.shard.footer else None,
    }


def lz4_decode(frame_hex: str, size: int) -> str:
    """Decode a foreign LZ4 frame; returns the sha256 of the content."""
    from xet_pyodide.kernels import get_kernels, lz4frame

    frame = bytes.fromhex(frame_hex)
    return hashlib.sha256(lz4frame.decompress(frame, size, get_kernels())).hexdigest()


def lz4_encode(seed: int, size: int) -> str:
    """Our LZ4 frame of a generated input (hex), for a CPython reader to check."""
    from xet_pyodide.kernels import get_kernels, lz4frame

    data = bytes(b % 7 for b in _rand(size, seed))
    return lz4frame.compress(data, get_kernels()).hex()


def hostile_inputs() -> list[str]:
    """Run the parsers on broken bytes; returns the exception type names seen."""
    from xet_pyodide.core.hashes import MerkleHash
    from xet_pyodide.core.shard import FileEntry, FileTerm, Shard, parse_shard, serialize_shard
    from xet_pyodide.core.xorb import XorbBuilder, load_xorb
    from xet_pyodide.kernels import get_kernels, lz4frame

    kernels = get_kernels()
    builder = XorbBuilder()
    builder.add_chunks([_rand(20_000, 1), bytes(30_000), b"abc" * 5000])
    xorb = builder.finish()
    h = MerkleHash(_rand(32, 2))
    shard = serialize_shard(
        Shard([FileEntry(h, [FileTerm(xorb.hash, 0, 3, 80_000)], [h], None)], [])
    )
    samples = [
        (load_xorb, xorb.stored()[:-7]),
        (load_xorb, xorb.body[:1000]),
        (load_xorb, b"XETBLOB" + bytes(100)),
        (parse_shard, shard[:100]),
        (parse_shard, shard[:84] + b"\xff\xff\xff\xff" + shard[88:]),
        (parse_shard, b"garbage" * 20),
        (
            lambda d: lz4frame.decompress(d, 1 << 20, kernels),
            lz4frame.compress(b"hello" * 100, kernels)[:-3],
        ),
        (
            lambda d: lz4frame.decompress(d, 10, kernels),
            lz4frame.compress(b"hello" * 100, kernels),
        ),
    ]
    seen = []
    for parse, data in samples:
        try:
            parse(data)
            seen.append("no error")
        except Exception as error:  # the point is to report the type
            seen.append(type(error).__name__)
    return seen
