"""The protocol core inside every runtime (CPython, Pyodide/Node, Pyodide/Chromium) via
``tests/portable/core_checks.py``; expected values come from tests/vectors, hashlib and
python-lz4 on the CPython side. Pyodide runs the checks through pytest-pyodide's
``run_in_pyodide`` (``in_pyodide`` below, the ``rt`` fixture: tests/plugins/pyodide.py)."""

from __future__ import annotations

import hashlib
import random

import lz4.frame as lz4f
import pytest
from pytest_pyodide import run_in_pyodide

from tests.cpython._core_helpers import vector_input, vectors

PORTABLE_CASES = [
    "empty",
    "one_byte",
    "abc",
    "zeros_8192",
    "zeros_131073",
    "rand_65536",
    "rand_131073",
    "rand_262145",
    "spec_counter_1MB",
    "repeats_900KB",
    "floats_3MB",
]


@run_in_pyodide(packages=["xet-pyodide"])
async def in_pyodide(selenium, module, func, args):
    """``tests/portable/<module>.<func>(*args)`` inside Pyodide (the ``rt`` fixture calls it)."""
    import importlib
    import inspect

    result = getattr(importlib.import_module(f"tests.portable.{module}"), func)(*args)
    return (await result) if inspect.isawaitable(result) else result


@pytest.fixture
def krt(rt):
    """``rt`` with the kernels loaded (Pyodide runtimes load them asynchronously, once)."""
    if rt.name != "cpython":
        assert rt.call("core_checks", "prepare").startswith(("wasm", "reference"))
    return rt


def _expected(name: str) -> dict:
    case = dict(vectors()["cases"][name])
    case.pop("chunk_hashes_truncated", None)
    return case


def test_single_values(krt):
    got = krt.call("core_checks", "single_values")
    single = vectors()["single_values"]
    for key, value in single.items():
        assert got[key] == value, key
    assert got["spec_node_hash"] == (
        "649b032540f645eb28eea76696f2b55d4d596bf09ffcbf3f77e529029454defa"
    )


@pytest.mark.parametrize("name", PORTABLE_CASES)
def test_vector_case(krt, name):
    assert krt.call("core_checks", "vector_case", name) == _expected(name)


@pytest.mark.parametrize("feeds", [[1, 7, 8191], [65536], [100_003, 3, 250_000]])
def test_streamed_chunking(krt, feeds):
    name = "spec_counter_1MB" if feeds != [1, 7, 8191] else "rand_131073"
    assert (
        krt.call("core_checks", "streamed_chunk_ends", name, feeds) == _expected(name)["chunk_ends"]
    )


@pytest.mark.parametrize("name", ["spec_counter_1MB", "floats_3MB", "repeats_900KB"])
def test_xorb_round_trip(krt, name):
    got = krt.call("core_checks", "xorb_round_trip", name)
    case = _expected(name)
    n = len(case["chunk_ends"])
    # Every chunk goes in, repeated ones too (repeats_900KB has 16 chunks, 9 distinct): a
    # builder without dedup gives the all-chunks hash of the vectors.
    assert got["xorb_hash"] == got["footer_hash"] == case["xorb_hash_all_chunks"]
    assert got["num_chunks"] == n
    if name == "repeats_900KB":
        assert (n, len(set(case["chunk_hashes"]))) == (16, 9)
    assert got["decoded_equal"] and got["record_offsets_equal"]
    assert got["footer_len"] == 92 + 40 * n + 4
    if name == "floats_3MB":
        assert set(got["schemes"]) <= {"2", "0"} and got["schemes"].get("2", 0) > n // 2
    if name == "spec_counter_1MB":
        assert got["schemes"] == {"0": n}  # SHA-256 output does not compress


def test_shard_round_trip(krt):
    names = ["abc", "repeats_900KB", "empty", "rand_262145", "abc"]
    got = krt.call("core_checks", "shard_round_trip", names)
    assert got["file_hashes"] == [_expected(n)["file_hash"] for n in names]
    sha = [
        hashlib.sha256(vector_input(n)).hexdigest() if n != "empty" else "00" * 32 for n in names
    ]
    assert got["sha256"] == sha
    # repeats_900KB: 16 chunks, the repeated ones point back into the first copy
    assert got["terms"][1][0][:2] == [1, 7] and sum(t[2] for t in got["terms"][1]) == 900_004
    assert got["terms"][2] == []
    assert got["terms"][0] == got["terms"][4] == [[0, 1, 3]]
    assert got["upload_round_trip"] and got["stored_round_trip"]
    n_files = 4  # "abc" twice is one entry
    n_chunks = 1 + 9 + 6  # unique chunks: abc, repeats (9 unique), rand_262145
    records = 1 + 1 + (1 + n_chunks) + 1  # shard header, file bookend, CAS block, CAS bookend
    records += sum(1 + 2 * len(t) + 1 for t in got["terms"][:4])
    assert got["upload_len"] == 48 * records
    assert got["lookup_counts"] == [n_files, 1, n_chunks]
    assert got["footer_key_hex"] == bytes(range(32)).hex()


def test_lz4_interop(krt):
    rng = random.Random(9)
    data = bytes(b % 5 for b in rng.randbytes(300_000))
    frame = lz4f.compress(data, block_size=lz4f.BLOCKSIZE_MAX64KB, block_linked=True)
    got = krt.call("core_checks", "lz4_decode", frame.hex(), len(data))
    assert got == hashlib.sha256(data).hexdigest()
    ours = bytes.fromhex(krt.call("core_checks", "lz4_encode", 3, 100_000))
    assert ours[4:6] == b"\x60\x50"
    assert lz4f.decompress(ours) == bytes(b % 7 for b in random.Random(3).randbytes(100_000))


def test_hostile_inputs(krt):
    assert krt.call("core_checks", "hostile_inputs") == ["XetFormatError"] * 8
