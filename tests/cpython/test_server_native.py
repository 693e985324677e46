"""The server's native per-byte path (xet_cas_server.native: blake3 + lz4 packages) against the
kernels: the same validated xorbs (hashes, layouts, footers) on the conformance vectors, the same
verdict and message on damaged records, and the commit proof's SHA-256 equal to hashlib's."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import lz4.block
import pytest
from xet_cas_server import native, validation
from xet_cas_server.errors import InvalidObject
from xet_cas_server.hub import content
from xet_cas_server.store import Store

from tests.cpython._core_helpers import pack_xorbs, random_input, vector_input, vectors
from xet_pyodide.core.hashes import DATA_KEY, MerkleHash
from xet_pyodide.core.xorb import Scheme, iter_records
from xet_pyodide.errors import XetFormatError
from xet_pyodide.kernels import get_kernels

CASES = sorted(vectors()["cases"])
SCHEMES = [Scheme.NONE, Scheme.LZ4, Scheme.BG4_LZ4, None]


def _verdict(fn, body: bytes, claimed: MerkleHash) -> tuple[str, object]:
    try:
        return "ok", fn(body, claimed)
    except InvalidObject as e:
        return "invalid", e.message


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: "auto" if s is None else s.name)
@pytest.mark.parametrize("name", CASES)
def test_vectors_validate_alike(name: str, scheme: Scheme | None) -> None:
    case = vectors()["cases"][name]
    xorbs = pack_xorbs(vector_input(name), scheme)
    if not xorbs:
        return
    hashes = []
    for x in xorbs:
        got = validation._validate_native(x.body, x.hash)
        assert got == validation._validate_kernels(x.body, x.hash)
        assert validation.validate_xorb(x.body, x.hash) == got
        assert got.layout.hash == x.hash
        hashes += got.layout.chunk_hashes
    # real values: the chunk hashes hf_xet computes for this input
    assert [h.hex() for h in hashes[: len(case["chunk_hashes"])]] == case["chunk_hashes"]


def _compressed_xorb(seed: int) -> bytes:
    rng = random.Random(seed)
    data = random_input(rng, 300_000, "text") + random_input(rng, 300_000, "floats")
    (x,) = pack_xorbs(data, None)
    kinds = {r.scheme for r in iter_records(x.body)}
    assert kinds - {Scheme.NONE}, kinds  # compressed records to damage
    return x.body


@pytest.mark.parametrize("seed", range(6))
def test_damaged_records_get_the_kernels_verdict(seed: int) -> None:
    """Bytes flipped inside compressed payloads and headers: validate_xorb (native, then the
    kernels for what it refuses) answers exactly what the kernels alone answer."""
    body = _compressed_xorb(seed)
    records = [r for r in iter_records(body) if r.scheme != Scheme.NONE]
    claimed = validation._validate_kernels(body, _hash_of(body)).layout.hash
    rng = random.Random(1000 + seed)
    outcomes = set()
    for _ in range(40):
        damaged = bytearray(body)
        r = rng.choice(records)
        for _ in range(rng.randint(1, 3)):
            pos = r.offset + rng.randrange(8 + r.compressed_size)
            damaged[pos] = rng.randrange(256)
        mine = _verdict(validation.validate_xorb, bytes(damaged), claimed)
        assert mine == _verdict(validation._validate_kernels, bytes(damaged), claimed)
        outcomes.add(mine[0])
    assert "invalid" in outcomes


def _hash_of(body: bytes) -> MerkleHash:
    from xet_pyodide.core.xorb import load_xorb

    return load_xorb(body, keep_chunks=False)[0].hash


def test_lz4_blocks_native_decodes_only_what_the_kernels_decode() -> None:
    """liblz4 accepts a subset of the kernels' blocks and decodes them to the same bytes; a block
    it refuses goes to the kernels (same result or the kernels' error)."""
    kernels = get_kernels()
    blocks = native._Blocks(kernels)
    rng = random.Random(7)
    src = random_input(rng, 64 * 1024, "text")
    good = lz4.block.compress(src, store_size=False)
    agreed = refused = 0
    for _ in range(300):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            theirs = kernels.lz4_decompress_block(bytes(b), len(src))
        except XetFormatError:
            theirs = None
        try:
            raw = lz4.block.decompress(bytes(b), uncompressed_size=len(src))
        except lz4.block.LZ4BlockError:
            raw = None
        if raw is not None:
            assert raw == theirs
            agreed += 1
        try:
            mine = blocks.lz4_decompress_block(bytes(b), len(src))
        except XetFormatError:
            mine = None
        assert mine == theirs
        refused += theirs is None
    assert agreed and refused


def test_native_blake3_is_the_kernels() -> None:
    rng = random.Random(3)
    for n in (0, 1, 63, 64, 1023, 1024, 1025, 65536, 131072):
        data = rng.randbytes(n)
        chunk = native.decode_record(Scheme.NONE, memoryview(data), n)
        digests, sizes = native.hash_records(_raw_record(data), [8 + n])
        assert sizes == [n]
        assert digests == get_kernels().blake3_keyed(chunk, DATA_KEY)


def _raw_record(data: bytes) -> bytes:
    from xet_pyodide.core.xorb import record_header

    return record_header(Scheme.NONE, len(data), len(data)) + data


def _stored_file(tmp_path: Path, data: bytes, scheme: Scheme | None) -> tuple[Store, str, list]:
    """``data`` stored as xorbs + a shard registering it: (store, file hash hex, xorbs)."""
    from xet_pyodide.core.shard import serialize_shard
    from xet_pyodide.core.shard_model import Shard, XorbEntry
    from xet_pyodide.core.terms import build_file_entry

    store = Store(tmp_path, max_shard_bytes=1 << 26)
    xorbs = pack_xorbs(data, scheme)
    hashes, sizes, locations = [], [], []
    for x in xorbs:
        assert store.put_xorb(x.body, x.hash)
        hashes += x.chunk_hashes
        sizes += x.chunk_sizes
        locations += [(x.hash, k) for k in range(x.num_chunks)]
    entry = build_file_entry(hashes, sizes, locations, hashlib.sha256(data).digest())
    entries = [XorbEntry.from_chunks(x.hash, x.chunk_hashes, x.chunk_sizes) for x in xorbs]
    body = serialize_shard(Shard([entry], entries))
    store.put_shard(body, store.parse_shard(body), "r")
    return store, entry.file_hash.hex(), xorbs


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: "auto" if s is None else s.name)
def test_sha256_proof_is_hashlib(tmp_path: Path, scheme: Scheme | None) -> None:
    """The commit proof's reconstruction + SHA-256 equals hashlib over the original bytes and
    over what a plain GET streams."""
    rng = random.Random(11)
    data = b"".join(random_input(rng, 700_000, k) for k in ("random", "text", "floats"))
    store, name, _ = _stored_file(tmp_path, data, scheme)
    try:
        assert content.sha256_of(store, name) == hashlib.sha256(data).hexdigest()
        streamed = b"".join(content.stream_file(store, name, None))
        assert streamed == data
    finally:
        store.close()


def test_sha256_proof_damaged_record_fails_cleanly(tmp_path: Path) -> None:
    """A stored record damaged after validation (here: its scheme byte) fails the proof with
    XetFormatError — not a BufferError from unmapping while the error's traceback still
    holds a view of the mapping — and, repaired, the file is proven again."""
    rng = random.Random(13)
    data = random_input(rng, 600_000, "floats")
    store, name, xorbs = _stored_file(tmp_path, data, Scheme.LZ4)
    try:
        path = store.objects.path("xorb", xorbs[0].hash.hex())
        raw = bytearray(path.read_bytes())
        pos = 0
        for _ in range(5):  # the 6th record's header: version, size (3), scheme, size (3)
            pos += 8 + int.from_bytes(raw[pos + 1 : pos + 4], "little")
        original = raw[pos + 4]
        raw[pos + 4] = 0xEE
        path.chmod(0o644)
        path.write_bytes(bytes(raw))
        with pytest.raises(XetFormatError):
            content.sha256_of(store, name)
        raw[pos + 4] = original
        path.write_bytes(bytes(raw))
        assert content.sha256_of(store, name) == hashlib.sha256(data).hexdigest()
    finally:
        store.close()
