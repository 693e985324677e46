"""The core's cost bounds on hostile input: :func:`load_xorb` checks record counts and the
claimed uncompressed total before it allocates, and decodes through a bounded window when the
chunks are not kept; :class:`MerkleBuilder` computes a Merkle root over any number of entries
in bounded memory, with the same result as :func:`merkle_root`.

Memory is measured with ``tracemalloc`` (Python allocations: the output buffers at stake)."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Callable

import pytest

from tests.plugins.hostile import decode_bomb
from xet_pyodide.core import xorb as xorb_mod
from xet_pyodide.core.compression import Scheme
from xet_pyodide.core.hashes import MerkleBuilder, MerkleHash, file_hash, merkle_root
from xet_pyodide.core.xorb import (
    DECODE_WINDOW,
    MAX_CHUNK_UNCOMPRESSED,
    MAX_XORB_BYTES,
    MAX_XORB_CHUNKS,
    XorbBuilder,
    load_xorb,
    scan_records,
)
from xet_pyodide.errors import XetFormatError

MIB = 1024 * 1024


def _peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of Python allocations while ``fn`` runs (its exceptions are swallowed: the caller
    checks them separately)."""
    tracemalloc.start()
    try:
        fn()
    except XetFormatError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_more_records_than_a_xorb_holds_are_refused_from_the_headers() -> None:
    body = decode_bomb(MAX_XORB_CHUNKS + 1, claim=1)
    with pytest.raises(XetFormatError, match=f"more than {MAX_XORB_CHUNKS} chunks"):
        scan_records(body)
    with pytest.raises(XetFormatError, match=f"more than {MAX_XORB_CHUNKS} chunks"):
        load_xorb(body)


def test_claimed_total_over_64_mib_is_refused_before_allocating() -> None:
    # 513 empty LZ4 records claiming 128 KiB each: 64 MiB + 128 KiB from a 4 KB body
    body = decode_bomb(MAX_XORB_BYTES // MAX_CHUNK_UNCOMPRESSED + 1)
    with pytest.raises(XetFormatError, match="claim more than"):
        load_xorb(body)
    # the old decoder allocated the claimed sum (64 MiB) before decoding the first record
    assert _peak_bytes(lambda: load_xorb(body)) < MIB


@pytest.mark.parametrize("keep_chunks", [False, True])
def test_bogus_records_within_the_limits_cost_at_most_the_window(keep_chunks: bool) -> None:
    body = decode_bomb(MAX_XORB_BYTES // MAX_CHUNK_UNCOMPRESSED)  # claims exactly 64 MiB
    assert scan_records(body)[1] == MAX_XORB_BYTES
    with pytest.raises(XetFormatError, match="chunk record 0"):
        load_xorb(body, keep_chunks=keep_chunks)
    peak = _peak_bytes(lambda: load_xorb(body, keep_chunks=keep_chunks))
    if keep_chunks:  # the caller asked for every chunk in one buffer: the claimed size
        assert peak >= MAX_XORB_BYTES
    else:
        assert peak < DECODE_WINDOW + MIB


def _sample_xorb() -> xorb_mod.Xorb:
    rng = random.Random(18)
    builder = XorbBuilder()
    for k in range(60):  # ~3.8 MiB: random, zeros and text, so every scheme appears
        kind = k % 3
        size = rng.randrange(8 * 1024, MAX_CHUNK_UNCOMPRESSED + 1)
        data = (
            rng.randbytes(size)
            if kind == 0
            else bytes(size)
            if kind == 1
            else b"xet " * (size // 4)
        )
        builder.add(data)
    return builder.finish()


def test_windowed_decode_gives_the_same_xorb(monkeypatch: pytest.MonkeyPatch) -> None:
    xorb = _sample_xorb()
    whole, chunks = load_xorb(xorb.body, xorb.hash)
    assert len(chunks) == xorb.num_chunks and sum(map(len, chunks)) == xorb.num_bytes_in_cas
    # a window of ~3 chunks: the records go through the kernel in many batches
    monkeypatch.setattr(xorb_mod, "DECODE_WINDOW", 3 * MAX_CHUNK_UNCOMPRESSED)
    windowed, none = load_xorb(xorb.body, xorb.hash, keep_chunks=False)
    assert none == []
    assert windowed.hash == whole.hash == xorb.hash
    assert windowed.chunk_hashes == whole.chunk_hashes == xorb.chunk_hashes
    assert windowed.chunk_sizes == xorb.chunk_sizes
    assert windowed.record_offsets == xorb.record_offsets
    stored, _ = load_xorb(xorb.stored(), keep_chunks=False)  # with its footer
    assert stored.hash == xorb.hash and stored.footer is not None


def test_a_corrupt_record_late_in_the_xorb_is_found_by_the_windowed_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xorb = _sample_xorb()
    body = bytearray(xorb.body)
    last = xorb.record_offsets[-2]  # header of the last record: claim one byte more
    body[last + 5 : last + 8] = (xorb.chunk_sizes[-1] + 1).to_bytes(3, "little")
    monkeypatch.setattr(xorb_mod, "DECODE_WINDOW", 3 * MAX_CHUNK_UNCOMPRESSED)
    with pytest.raises(XetFormatError, match=f"chunk record {xorb.num_chunks - 1}"):
        load_xorb(bytes(body), keep_chunks=False)


def _entries(n: int, seed: int) -> list[tuple[MerkleHash, int]]:
    rng = random.Random(seed)
    return [(MerkleHash(rng.randbytes(32)), rng.randrange(1, 1 << 17)) for _ in range(n)]


@pytest.mark.parametrize("batch", [3, 10, 64, MerkleBuilder.BATCH])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 9, 10, 11, 18, 100, 2_500])
def test_merkle_builder_matches_merkle_root(n: int, batch: int) -> None:
    entries = _entries(n, n * 1000 + batch)
    builder = MerkleBuilder()
    builder.BATCH = batch
    rng = random.Random(batch)
    pos = 0
    while pos < n:  # fed in uneven pieces
        step = rng.randrange(1, 40)
        piece = entries[pos : pos + step]
        builder.add([h for h, _ in piece], [s for _, s in piece])
        pos += step
    assert builder.count == n
    assert builder.file_hash() == file_hash(entries)
    if n:
        assert MerkleHash(builder.root().raw) == merkle_root(entries)


def test_merkle_builder_memory_does_not_grow_with_the_entries() -> None:
    entries = _entries(8192, 5)
    hashes, sizes = [h for h, _ in entries], [s for _, s in entries]
    builder = MerkleBuilder()
    held = []
    for _ in range(20):  # 163,840 entries, 8x what the builder may hold
        builder.add(hashes, sizes)
        held.append(builder.held)
    assert max(held) < MerkleBuilder.BATCH + 4 * (MerkleBuilder.BATCH // 16)
    assert builder.count == 20 * 8192
    assert builder.file_hash() == file_hash(entries * 20)


def test_merkle_builder_refuses_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="one size per hash"):
        MerkleBuilder().add([MerkleHash.ZERO], [])


def test_uncompressed_records_still_decode_in_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    builder = XorbBuilder(compression=Scheme.NONE)
    builder.add_chunks([rng.randbytes(MAX_CHUNK_UNCOMPRESSED) for _ in range(10)])
    xorb = builder.finish()
    monkeypatch.setattr(xorb_mod, "DECODE_WINDOW", MAX_CHUNK_UNCOMPRESSED)  # one chunk a time
    loaded, _ = load_xorb(xorb.body, xorb.hash, keep_chunks=False)
    assert loaded.chunk_hashes == xorb.chunk_hashes
