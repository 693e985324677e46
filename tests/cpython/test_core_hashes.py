"""MerkleHash and the protocol's hash functions: spec examples and single values."""

from __future__ import annotations

import hashlib
import pickle
import random

import blake3
import pytest

from tests.cpython._core_helpers import vectors
from xet_pyodide.core.crc import crc64_nvme
from xet_pyodide.core.hashes import (
    DATA_KEY,
    INTERNAL_NODE_KEY,
    VERIFICATION_KEY,
    MerkleHash,
    chunk_hash,
    chunk_hashes,
    file_hash,
    hash_chunks,
    hmac_hash,
    merkle_root,
    node_hash,
    sha256_to_xet,
    verification_hash,
    xet_to_sha256,
    xorb_hash,
)
from xet_pyodide.errors import XetFormatError

SPEC_NODE_CHILDREN = [
    ("1f6a2b8e9d3c4075a2e8c5fd4f0b763e6f3c1d7a9b2e6487de3f91ab7c6d5401", 10000),
    ("7c94fe2a38bdcf9b4d2a6f7e1e08ac35bc24a7903d6f5a0e7d1c2b93e5f748de", 20000),
    ("cfd18a92e0743bb09e56dbf76ea2c34d99b5a0cf271f8d429b6cd148203df061", 25000),
    ("e38d7c09a21b4cf8d0f92b3a85e6df19f7c20435e0b1c78a9d635f7b8c2e4da1", 64000),
]


def test_xet_hex_example_section_1():
    h = MerkleHash(bytes(range(32)))
    expected = vectors()["single_values"]["xet_hex_of_bytes_0_to_31"]
    assert expected == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert h.hex() == expected
    assert str(h) == expected
    assert MerkleHash.from_hex(expected) == h
    assert MerkleHash.from_hex(expected.upper()) == h


def test_words_and_truncated():
    h = MerkleHash(bytes(range(32)))
    assert h.word(0) == 0x0706050403020100
    assert h.word(3) == 0x1F1E1D1C1B1A1918
    assert h.words() == (h.word(0), h.word(1), h.word(2), h.word(3))
    assert h.truncated() == h.word(0)
    with pytest.raises(IndexError):
        h.word(4)


def test_ordering_matches_xet_hex_strings():
    rng = random.Random(7)
    hashes = [MerkleHash(rng.randbytes(32)) for _ in range(300)]
    hashes += [MerkleHash(bytes(31) + bytes([i])) for i in range(5)]
    assert [h.hex() for h in sorted(hashes)] == sorted(h.hex() for h in hashes)
    a, b = sorted(hashes)[:2]
    assert a < b and a <= b and b > a and b >= a and a != b


def test_value_semantics():
    h = MerkleHash(b"\x01" * 32)
    assert h == MerkleHash(bytearray(b"\x01" * 32))
    assert len({h, MerkleHash(b"\x01" * 32)}) == 1
    assert pickle.loads(pickle.dumps(h)) == h
    assert bytes(h) == h.raw
    assert MerkleHash.ZERO.raw == bytes(32)
    with pytest.raises(AttributeError):
        h.raw = b""  # type: ignore[misc]
    with pytest.raises(ValueError):
        MerkleHash(b"\x00" * 31)


@pytest.mark.parametrize(
    "bad", ["", "00" * 31, "g" * 64, "0x" + "0" * 62, " " + "0" * 63, "0" * 65]
)
def test_from_hex_rejects_malformed(bad):
    with pytest.raises(XetFormatError):
        MerkleHash.from_hex(bad)


def test_keys_match_spec_decimal_lists():
    assert list(DATA_KEY[:4]) == [102, 151, 245, 119]
    assert list(INTERNAL_NODE_KEY[-4:]) == [74, 83, 113, 63]
    assert list(VERIFICATION_KEY[:3]) == [127, 24, 87]


def test_chunk_hash_single_values():
    single = vectors()["single_values"]
    assert chunk_hash(b"abc").hex() == single["chunk_hash_abc"]
    assert chunk_hash(b"abc").raw.hex() == (
        "14f0aff7063580a845c69db7e9a99af15661f9702567495c4e28d08d69291307"
    )
    assert chunk_hash(b"").hex() == single["chunk_hash_empty"]
    assert chunk_hash(b"abc").raw == blake3.blake3(b"abc", key=DATA_KEY).digest()


def test_batched_chunk_hashes_equal_single():
    rng = random.Random(3)
    chunks = [rng.randbytes(rng.randint(0, 5000)) for _ in range(40)]
    expected = [chunk_hash(c) for c in chunks]
    assert chunk_hashes(b"".join(chunks), [len(c) for c in chunks]) == expected
    assert hash_chunks(chunks) == expected
    assert chunk_hashes(b"", []) == []


def test_internal_node_example_section_3_3():
    children = [(MerkleHash.from_hex(h), size) for h, size in SPEC_NODE_CHILDREN]
    h, size = node_hash(children)
    assert h.hex() == "649b032540f645eb28eea76696f2b55d4d596bf09ffcbf3f77e529029454defa"
    assert size == 119000
    text = "".join(f"{hx} : {s}\n" for hx, s in SPEC_NODE_CHILDREN).encode()
    assert h.raw == blake3.blake3(text, key=INTERNAL_NODE_KEY).digest()


def _reference_root(entries):
    """Straight transcription of the §3.4 pseudo-code, independent of the implementation."""
    level = list(entries)
    if not level:
        return MerkleHash.ZERO
    while len(level) > 1:
        out, i = [], 0
        while i < len(level):
            remaining = len(level) - i
            if remaining <= 2:
                j = len(level)
            else:
                end = i + min(9, remaining)
                j = end
                for k in range(i + 2, end):
                    if int.from_bytes(level[k][0].raw[24:32], "little") % 4 == 0:
                        j = k + 1
                        break
            text = "".join(f"{h.hex()} : {s}\n" for h, s in level[i:j]).encode()
            digest = blake3.blake3(text, key=INTERNAL_NODE_KEY).digest()
            out.append((MerkleHash(digest), sum(s for _, s in level[i:j])))
            i = j
        level = out
    return level[0][0]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 9, 10, 17, 64, 200])
def test_merkle_root_matches_reference(n):
    rng = random.Random(n)
    entries = [(MerkleHash(rng.randbytes(32)), rng.randint(1, 131072)) for _ in range(n)]
    assert merkle_root(entries) == _reference_root(entries)
    assert xorb_hash(entries) == merkle_root(entries)


def test_merkle_groups_of_spec_vector():
    """§3.4: level-0 hash%4 of the 1 MB counter vector and its xorb/file hashes."""
    case = vectors()["cases"]["spec_counter_1MB"]
    hashes = [MerkleHash.from_hex(h) for h in case["chunk_hashes"]]
    assert [h.word(3) % 4 for h in hashes] == [0, 0, 0, 0, 2, 1, 3, 2, 1, 3, 0, 3, 0, 2, 0, 2, 0, 3]
    ends = case["chunk_ends"]
    sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    entries = list(zip(hashes, sizes, strict=True))
    assert xorb_hash(entries).hex() == case["xorb_hash_all_chunks"]
    assert file_hash(entries).hex() == case["file_hash"]
    assert verification_hash(hashes).hex() == case["verification_hash_all_chunks"]


def test_single_chunk_roots():
    h = chunk_hash(b"abc")
    assert merkle_root([(h, 3)]) == h
    assert file_hash([]) == MerkleHash.ZERO
    assert file_hash([(h, 3)]).hex() == vectors()["cases"]["abc"]["file_hash"]


def test_hmac_example_section_3_8():
    expected = vectors()["single_values"]["hmac_chunk_hash_abc_key_bytes_0_to_31"]
    assert hmac_hash(chunk_hash(b"abc"), bytes(range(32))).hex() == expected
    assert hmac_hash(chunk_hash(b"abc"), MerkleHash(bytes(range(32)))).hex() == expected
    with pytest.raises(ValueError):
        hmac_hash(chunk_hash(b"abc"), b"short")


def test_sha256_byte_order_section_5_4():
    digest = hashlib.sha256(b"hello").digest()
    stored = sha256_to_xet(digest)
    assert stored.hex() == hashlib.sha256(b"hello").hexdigest()
    assert stored.raw != digest
    assert xet_to_sha256(stored) == digest


def test_crc64_nvme_check_value():
    expected = int(vectors()["single_values"]["crc64nvme_of_123456789"], 16)
    assert crc64_nvme(b"123456789") == expected == 0xAE8B14860A799888
    assert crc64_nvme(b"6789", crc64_nvme(b"12345")) == expected
