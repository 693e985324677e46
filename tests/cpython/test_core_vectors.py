"""Conformance on every case of the vectors in tests/vectors (expected.json, inputs built by
make_inputs.py), and where those values come from (hf_xet 1.8.0)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.cpython._core_helpers import (
    REPO,
    hf_upload,
    stored_xorbs,
    vector_file,
    vector_input,
    vectors,
)
from tests.portable import core_checks
from xet_pyodide import hash_files
from xet_pyodide.core.chunking import Chunker, chunk_boundaries
from xet_pyodide.core.filehash import FileHasher, hash_bytes
from xet_pyodide.core.hashes import (
    DATA_KEY,
    INTERNAL_NODE_KEY,
    VERIFICATION_KEY,
    chunk_hash,
    hash_chunks,
    verification_hash,
    xorb_hash,
)
from xet_pyodide.core.shard_model import HEADER_TAG
from xet_pyodide.core.xorb import parse_footer

CASES = sorted(vectors()["cases"])


def _chunks(data: bytes, ends: list[int]) -> list[bytes]:
    return [data[a:b] for a, b in zip([0, *ends], ends, strict=False)]


@pytest.mark.parametrize("name", CASES)
def test_vector_case(name, tmp_path):
    case = vectors()["cases"][name]
    data = vector_input(name)
    assert len(data) == case["size"]

    ends = chunk_boundaries(data)
    assert ends == case["chunk_ends"]

    chunks = _chunks(data, ends)
    hashes = hash_chunks(chunks) if chunks else []
    assert [h.hex() for h in hashes[: len(case["chunk_hashes"])]] == case["chunk_hashes"]

    entries = [(h, len(c)) for h, c in zip(hashes, chunks, strict=True)]
    if case["xorb_hash_all_chunks"] is None:
        assert not entries
    else:
        assert xorb_hash(entries).hex() == case["xorb_hash_all_chunks"]
        assert verification_hash(hashes).hex() == case["verification_hash_all_chunks"]

    hasher = FileHasher()
    for start in range(0, len(data), 1 << 20):
        hasher.update(memoryview(data)[start : start + (1 << 20)])
    assert hasher.finish().hex() == case["file_hash"]
    assert hasher.sha256_hex() == case["sha256"] == hashlib.sha256(data).hexdigest()
    assert hasher.chunk_hashes == hashes
    assert hasher.size == case["size"]
    assert hash_bytes(data).hex() == case["file_hash"]

    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    (info,) = hash_files([path], block_size=300_007)
    assert (info.hash.hex(), info.size, info.sha256) == (
        case["file_hash"],
        case["size"],
        case["sha256"],
    )
    assert info.path == str(path)


@pytest.mark.parametrize("name", ["spec_counter_1MB", "repeats_900KB", "rand_262145"])
def test_vector_streaming_chunker(name):
    data = vector_input(name)
    expected = vectors()["cases"][name]["chunk_ends"]
    chunker = Chunker()
    out = []
    for start in range(0, len(data), 65_521):
        out += chunker.feed(data[start : start + 65_521])
    out += chunker.finish()
    assert b"".join(out) == data
    ends = []
    for c in out:
        ends.append((ends[-1] if ends else 0) + len(c))
    assert ends == expected


def test_spec_text_values_section_2_5():
    """The §2.5 numbers as printed in docs/protocol.md."""
    data = vector_input("spec_counter_1MB")
    assert chunk_boundaries(data) == [
        15495, 97599, 148155, 203695, 237968, 266791, 364424, 394626, 421194,
        508149, 583358, 665072, 679411, 810424, 869079, 879205, 909481, 1000000,
    ]  # fmt: skip
    assert hash_bytes(data).hex() == (
        "821f3082696957442edc1152ff335f9107b9195661bbd39b7805e162c1284db9"
    )
    assert hash_bytes(bytes(131073)).hex() == (
        "83f8f48adc7310b5748295b256ca24cdce2aac457679c98526e3a19e0388f58a"
    )
    assert hash_bytes(bytes(i & 0xFF for i in range(1_000_000))).hex() == (
        "73ae55f233afe1f99070208aae38bc6e78981664f0f8106deae0adc7ad93a2c4"
    )


def test_file_hashes_are_hf_xet_s(tmp_path):
    """Provenance of the vectors: every ``file_hash`` is what hf_xet 1.8.0 says."""
    import hf_xet

    paths = []
    for name in CASES:
        paths.append(tmp_path / f"{name}.bin")
        paths[-1].write_bytes(vector_input(name))
    infos = hf_xet.hash_files([str(p) for p in paths])
    got = {p.stem: info.hash for p, info in zip(paths, infos, strict=True)}
    assert got == {name: vectors()["cases"][name]["file_hash"] for name in CASES}


@pytest.mark.parametrize("name", ["spec_counter_1MB", "repeats_900KB"])
def test_chunks_are_hf_xet_s(name, tmp_path):
    """Provenance of the vectors: the chunks hf_xet 1.8.0 stores for the input (its xorb
    footers list their hashes and sizes) are the expected chunk ends and hashes."""
    case = vectors()["cases"][name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(vector_input(name))
    hf_upload(tmp_path / "cas", [path], tmp_path / "home")
    (stored,) = stored_xorbs(tmp_path / "cas").values()  # one small file: one xorb
    footer = parse_footer(stored)
    unique = list(dict.fromkeys(case["chunk_hashes"]))  # a repeated chunk is stored once
    assert [h.hex() for h in footer.chunk_hashes] == unique
    sizes = dict(zip(case["chunk_hashes"], _sizes(case["chunk_ends"]), strict=True))
    assert _sizes(footer.unpacked_ends) == [sizes[h] for h in unique]


def _sizes(ends: list[int]) -> list[int]:
    return [b - a for a, b in zip([0, *ends], ends, strict=False)]


def test_hashes_printed_in_docs_protocol_md():
    """Every 64-digit hex value in docs/protocol.md is a vector, a key, the shard tag, a §3.3
    or §2.5 example computed here: the document cannot drift from the code unnoticed."""
    text = (REPO / "docs" / "protocol.md").read_text()
    printed = set(re.findall(r"\b[0-9a-f]{64}\b", text))
    known = set(re.findall(r"\b[0-9a-f]{64}\b", vector_file("expected.json").read_text()))
    known |= {k.hex() for k in (DATA_KEY, INTERNAL_NODE_KEY, VERIFICATION_KEY, HEADER_TAG)}
    known |= {chunk_hash(b"abc").raw.hex(), core_checks.single_values()["spec_node_hash"]}
    known.add(hash_bytes(bytes(i & 0xFF for i in range(1_000_000))).hex())
    known |= set(re.findall(r"[0-9a-f]{64}", Path(core_checks.__file__).read_text()))
    assert len(printed) >= 15
    assert printed <= known, printed - known
