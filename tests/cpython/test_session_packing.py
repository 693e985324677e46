"""Packing rules, draft merging, query policy and shard splitting (pure logic, no network)."""

from __future__ import annotations

import asyncio
import random

import pytest

from xet_pyodide.core.hashes import MerkleHash, chunk_hash, xorb_hash
from xet_pyodide.core.shard import parse_shard
from xet_pyodide.core.shard_model import FileEntry, FileTerm, XorbEntry
from xet_pyodide.core.xorb import MAX_XORB_BYTES, MAX_XORB_CHUNKS, decode_xorb
from xet_pyodide.session.dedup import (
    DedupQueries,
    FileQueries,
    GlobalDedupIndex,
    eligible_positions,
    is_query_eligible,
)
from xet_pyodide.session.packing import Packer, SealedXorb, XorbDraft, resolve
from xet_pyodide.session.shards import PendingTerm, build_shards, resolve_terms


def chunk(i: int, size: int = 100) -> tuple[bytes, bytes]:
    data = random.Random(i).randbytes(size)
    return data, chunk_hash(data).raw


def test_draft_seals_to_a_valid_xorb() -> None:
    draft = XorbDraft()
    chunks = [chunk(i, 5000 + i) for i in range(10)]
    for data, h in chunks:
        draft.add(data, h)
    sealed = draft.seal()
    assert decode_xorb(sealed.body) == [d for d, _ in chunks]
    hashes = [MerkleHash(h) for _, h in chunks]
    assert sealed.hash == xorb_hash([(h, len(d)) for h, (d, _) in zip(hashes, chunks, strict=True)])
    assert draft.hash == sealed.hash and draft.chunk_hash_raw(3) == chunks[3][1]
    entry = sealed.shard_entry()
    assert [c.byte_start for c in entry.chunks][:3] == [0, 5000, 10001]
    assert entry.num_bytes_on_disk == 0  # like hf_xet 1.8.0


def test_chunk_count_and_byte_limits() -> None:
    sealed: list[SealedXorb] = []
    packer = Packer(sealed.append)
    data, h = chunk(1, 10)
    for _ in range(MAX_XORB_CHUNKS + 1):
        packer.add(0, data, h)
    assert len(sealed) == 1 and sealed[0].num_chunks == MAX_XORB_CHUNKS
    draft = XorbDraft()
    big = bytes(128 * 1024)
    n = 0
    while draft.can_add(len(big)):
        draft.add(big, b"\0" * 32)
        n += 1
    assert n == MAX_XORB_BYTES // (128 * 1024 + 8)  # worst case (raw records) bounds the size


def test_file_tails_merge_into_shared_draft_and_locations_follow() -> None:
    sealed: list[SealedXorb] = []
    packer = Packer(sealed.append)
    a0 = packer.add(0, *chunk(0))
    b0 = packer.add(1, *chunk(1))
    b1 = packer.add(1, *chunk(2))
    packer.finish_file(0)
    packer.finish_file(1)
    packer.seal_all()
    assert len(sealed) == 1 and sealed[0].num_chunks == 3
    ref, index = resolve(b1[0], b1[1])
    assert ref.hash == sealed[0].hash and index == 2
    assert resolve(a0[0], a0[1])[1] == 0 and resolve(b0[0], b0[1])[1] == 1


def test_larger_group_is_sealed_when_tails_do_not_fit() -> None:
    sealed: list[SealedXorb] = []
    packer = Packer(sealed.append)
    for i in range(MAX_XORB_CHUNKS - 5):
        packer.add(0, b"a" * 10, chunk(i)[1])
    packer.finish_file(0)  # becomes the shared draft
    for i in range(10):
        packer.add(1, b"b" * 10, chunk(i)[1])
    packer.finish_file(1)  # does not fit: the larger group (shared) is sealed
    assert len(sealed) == 1 and sealed[0].num_chunks == MAX_XORB_CHUNKS - 5
    assert packer.shared is not None and len(packer.shared) == 10


def test_resolve_terms_merges_across_draft_merges() -> None:
    shared, tail = XorbDraft(), XorbDraft()
    for i in range(3):
        shared.add(*chunk(i))
    for i in range(3, 5):
        tail.add(*chunk(i))
    terms = [PendingTerm(shared, 1, 3, 200), PendingTerm(tail, 0, 2, 200)]
    shared.absorb(tail)
    shared.seal()
    resolved = resolve_terms(terms)
    assert [(t.xorb_hash, t.chunk_start, t.chunk_end, t.unpacked_bytes) for t, _ in resolved] == [
        (shared.hash, 1, 5, 400)
    ]


def test_build_shards_splits_xorbs_first() -> None:
    h = [MerkleHash(bytes([i]) * 32) for i in range(6)]
    xorbs = [XorbEntry.from_chunks(h[i], [h[i]] * 20, [10] * 20) for i in range(3)]
    files = [FileEntry(h[3 + i], [FileTerm(h[i], 0, 20, 200)], [h[i]], bytes(32)) for i in range(3)]
    shards = build_shards(files, xorbs, max_bytes=48 * 60)
    parsed = [parse_shard(s) for s in shards]
    assert len(shards) >= 2 and all(len(s) <= 48 * 60 for s in shards)
    assert sorted(x.xorb_hash for p in parsed for x in p.xorbs) == h[:3]
    assert sorted(f.file_hash for p in parsed for f in p.files) == h[3:]
    first_file_shard = min(i for i, p in enumerate(parsed) if p.files)
    last_xorb_shard = max(i for i, p in enumerate(parsed) if p.xorbs)
    assert last_xorb_shard <= first_file_shard
    with pytest.raises(ValueError):
        build_shards(files, xorbs, max_bytes=48 * 10)


class _RecordingCas:
    def __init__(self) -> None:
        self.asked: list[MerkleHash] = []

    async def query_dedup_shard(self, h: MerkleHash) -> bytes | None:
        self.asked.append(h)
        return None


def _hash_with_word3(mod1024_zero: bool, salt: int) -> bytes:
    """A chunk hash whose word 3 is (or is not) a multiple of 1024."""
    word3 = 1024 * (salt + 1) + (0 if mod1024_zero else 1)
    return random.Random(salt).randbytes(24) + word3.to_bytes(8, "little")


@pytest.mark.parametrize("first_index", [0, 1, 4097])
def test_eligible_positions_scan_equals_the_per_chunk_rule(first_index: int) -> None:
    rnd = random.Random(first_index)
    hashes = []
    for i in range(600):
        raw = bytearray(rnd.randbytes(32))
        if i % 7 == 0:
            raw[24] = 0  # low byte zero: eligible only if word 3 % 1024 == 0 too
        if i % 21 == 0:
            raw[25] &= 0xFC  # now word 3 % 1024 == 0
        hashes.append(bytes(raw))
    hashes[5] = _hash_with_word3(True, 3)
    want = [k for k, h in enumerate(hashes) if is_query_eligible(h, first_index + k)]
    assert eligible_positions(b"".join(hashes), first_index) == want
    assert 5 in want and len(want) > 20
    assert eligible_positions(b"", 0) == []


async def test_query_policy_first_chunk_eligible_and_spacing() -> None:
    cas = _RecordingCas()
    queries = DedupQueries(cas, GlobalDedupIndex(), spacing=4_000_000)  # type: ignore[arg-type]
    state = FileQueries()
    plain = _hash_with_word3(False, 1)
    eligible = [_hash_with_word3(True, i) for i in range(2, 6)]
    assert queries.consider(state, plain, 0, 0)  # first chunk of a file: always
    assert not queries.consider(state, _hash_with_word3(False, 9), 1, 65536)  # not eligible
    assert not queries.consider(state, eligible[0], 5, 1_000_000)  # eligible, too close
    assert queries.consider(state, eligible[1], 70, 4_100_000)
    assert not queries.consider(state, eligible[1], 200, 9_000_000)  # asked already
    assert queries.consider(state, eligible[2], 210, 9_000_000)
    await queries.wait_until(state, 10**12)
    assert [h.raw for h in cas.asked] == [plain, eligible[1], eligible[2]]
    disabled = DedupQueries(cas, GlobalDedupIndex(), enabled=False)  # type: ignore[arg-type]
    assert not disabled.consider(FileQueries(), plain, 0, 0)
    await asyncio.sleep(0)
