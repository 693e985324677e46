"""Chunking: size rules, feed-split invariance, block-parallel candidate scans."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cpython._core_helpers import INPUT_KINDS, random_input, vector_input, vectors
from tests.portable.core_checks import ends_of
from xet_pyodide.core.chunking import (
    MAX_CHUNK,
    MIN_CHUNK,
    BoundaryFinder,
    Chunker,
    chunk_boundaries,
    chunk_data,
    scan_block,
)
from xet_pyodide.kernels import get_kernels
from xet_pyodide.kernels.gear_table import GEAR_TABLE

MASK = 0xFFFF_0000_0000_0000


def byte_at_a_time(data: bytes) -> list[int]:
    """§2.3 normative rule, literally (slow; small inputs only)."""
    ends, start, h = [], 0, 0
    for i, b in enumerate(data):
        h = ((h << 1) + GEAR_TABLE[b]) & 0xFFFF_FFFF_FFFF_FFFF
        size = i + 1 - start
        if size >= MIN_CHUNK and ((h & MASK) == 0 or size >= MAX_CHUNK):
            ends.append(i + 1)
            start, h = i + 1, 0
    if start < len(data):
        ends.append(len(data))
    return ends


def stream(data: bytes, sizes: list[int]) -> list[bytes]:
    chunker = Chunker()
    out: list[bytes] = []
    pos = 0
    for n in sizes:
        out += chunker.feed(data[pos : pos + n])
        pos += n
    out += chunker.feed(data[pos:])
    return out + chunker.finish()


def test_constants():
    assert (MIN_CHUNK, MAX_CHUNK) == (8192, 131072)


@pytest.mark.parametrize(("seed", "kind"), list(enumerate(INPUT_KINDS)))
def test_matches_byte_at_a_time_rule(seed, kind):
    rng = random.Random(seed)
    data = random_input(rng, 400_000, kind)
    assert chunk_boundaries(data) == byte_at_a_time(data)


def test_size_limits_hold():
    rng = random.Random(11)
    for kind in INPUT_KINDS:
        data = random_input(rng, 2_000_000, kind)
        ends = chunk_boundaries(data)
        sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
        assert ends[-1] == len(data)
        assert all(MIN_CHUNK <= s <= MAX_CHUNK for s in sizes[:-1])
        assert 1 <= sizes[-1] <= MAX_CHUNK


def test_edge_sizes():
    assert chunk_boundaries(b"") == []
    assert chunk_data(b"") == []
    assert chunk_boundaries(b"x") == [1]
    assert chunk_boundaries(bytes(MAX_CHUNK)) == [MAX_CHUNK]
    assert chunk_boundaries(bytes(MAX_CHUNK + 1)) == [MAX_CHUNK, MAX_CHUNK + 1]
    chunker = Chunker()
    assert chunker.finish() == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 1_500_000),
    kind=st.sampled_from(INPUT_KINDS),
    cuts=st.lists(st.integers(1, 300_000), max_size=30),
)
def test_feed_split_invariance(seed, size, kind, cuts):
    data = random_input(random.Random(seed), size, kind)
    expected = chunk_boundaries(data)
    chunks = stream(data, cuts)
    assert b"".join(chunks) == data
    assert ends_of(chunks) == expected


@pytest.mark.parametrize("seed", range(4))
def test_one_byte_feeds(seed):
    rng = random.Random(seed)
    data = random_input(
        rng, rng.randint(20_000, 60_000), ["random", "text", "repeats", "floats"][seed]
    )
    assert ends_of(stream(data, [1] * len(data))) == chunk_boundaries(data)


def test_feed_accepts_any_buffer():
    data = vector_input("spec_counter_1MB")
    chunker = Chunker()
    out = chunker.feed(bytearray(data[:300_000]))
    out += chunker.feed(memoryview(data)[300_000:700_000])
    out += chunker.feed(data[700_000:]) + chunker.finish()
    assert ends_of(out) == vectors()["cases"]["spec_counter_1MB"]["chunk_ends"]


def test_chunker_keeps_only_the_open_chunk():
    data = random_input(random.Random(5), 3_000_000, "random")
    chunker = Chunker()
    for start in range(0, len(data), 1 << 20):
        chunker.feed(data[start : start + (1 << 20)])
        assert len(chunker._pending) < MAX_CHUNK
    assert chunker.position == len(data)


@pytest.mark.parametrize(
    ("block", "size"), [(1, 20_000), (63, 200_000), (64, 200_000), (1000, 1_000_000),
                        (65536, 1_000_000), (300_001, 1_000_000)]
)  # fmt: skip
def test_scan_block_matches_continuous_scan(block, size):
    data = random_input(random.Random(block), size, "text")
    continuous, _ = get_kernels().gear_scan(data, 0)
    parallel = []
    for start in range(0, len(data), block):
        rel = scan_block(data[start : start + block], data[max(0, start - 63) : start])
        parallel += [start + c for c in rel]
    # The first 63 positions of the stream never admit a cut; they may differ in between.
    assert [c for c in parallel if c >= 63] == [c for c in continuous if c >= 63]


@pytest.mark.parametrize("name", ["spec_counter_1MB", "repeats_900KB", "rand_5MB", "floats_3MB"])
def test_boundary_finder_with_externally_scanned_blocks(name):
    """A worker pool scans blocks independently; the finder turns candidates into chunks."""
    data = vector_input(name)
    block = 777_777
    finder = BoundaryFinder()
    ends: list[int] = []
    for start in range(0, len(data), block):
        candidates = scan_block(data[start : start + block], data[max(0, start - 63) : start])
        ends += finder.push(len(data[start : start + block]), candidates)
    ends += finder.finish()
    assert ends == vectors()["cases"][name]["chunk_ends"]


def test_chunker_with_external_candidates_then_internal_scan():
    data = vector_input("rand_5MB")
    chunker = Chunker()
    out: list[bytes] = []
    block = 1_000_003
    for i, start in enumerate(range(0, len(data), block)):
        piece = data[start : start + block]
        if i % 2 == 0:
            out += chunker.feed(piece, scan_block(piece, data[max(0, start - 63) : start]))
        else:
            out += chunker.feed(piece)
    out += chunker.finish()
    assert ends_of(out) == vectors()["cases"]["rand_5MB"]["chunk_ends"]
