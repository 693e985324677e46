"""Property tests against the oracle: our file hash == hf_xet.hash_files on generated inputs."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cpython._core_helpers import INPUT_KINDS, hf_hash_files, random_input
from xet_pyodide import hash_files
from xet_pyodide.core.filehash import FileHasher

BATCHES = 8
PER_BATCH = 40


def _size(rng: random.Random) -> int:
    """Mostly small files (where the edge cases are), some medium, a few large."""
    roll = rng.random()
    if roll < 0.15:
        return rng.choice([0, 1, 8191, 8192, 8193, 131071, 131072, 131073, 262144])
    if roll < 0.7:
        return rng.randint(0, 300_000)
    if roll < 0.95:
        return rng.randint(300_000, 3_000_000)
    return rng.randint(3_000_000, 8_000_000)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_file_hash_equals_hf_xet(batch, tmp_path):
    rng = random.Random(1000 + batch)
    paths, contents = [], []
    for i in range(PER_BATCH):
        data = random_input(rng, _size(rng), rng.choice(INPUT_KINDS))
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(data)
        paths.append(path)
        contents.append(data)
    expected = hf_hash_files(paths)
    ours = hash_files(paths)
    for path, data, info, (hf_hash, hf_size) in zip(paths, contents, ours, expected, strict=True):
        assert (info.hash.hex(), info.size) == (hf_hash, hf_size), path.name
        assert info.sha256 == hashlib.sha256(data).hexdigest()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 2_000_000),
    kind=st.sampled_from(INPUT_KINDS),
    cuts=st.lists(st.integers(1, 200_000), max_size=12),
)
def test_streamed_file_hash_equals_hf_xet(tmp_path, seed, size, kind, cuts):
    data = random_input(random.Random(seed), size, kind)
    path = tmp_path / f"h{seed}.bin"
    path.write_bytes(data)
    hasher = FileHasher()
    pos = 0
    for n in cuts:
        hasher.update(data[pos : pos + n])
        pos += n
    hasher.update(data[pos:])
    ((hf_hash, hf_size),) = hf_hash_files([path])
    assert (hasher.finish().hex(), hasher.size) == (hf_hash, hf_size)
