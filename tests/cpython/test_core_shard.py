"""MDB v2 shards: model, serializer (upload and stored forms), hostile-input-safe parser."""

from __future__ import annotations

import contextlib
import hashlib
import random
import struct
from collections.abc import Iterator
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cpython._core_helpers import plan_upload, random_input
from xet_pyodide.core.hashes import (
    MerkleHash,
    file_hash,
    hmac_hash,
    verification_hash,
    xorb_hash,
)
from xet_pyodide.core.shard import (
    CHUNK_FLAG_GLOBAL_DEDUP,
    NO_EXPIRY,
    FileEntry,
    FileTerm,
    Shard,
    ShardFooterInfo,
    XorbChunk,
    XorbEntry,
    mark_dedup_eligible,
    parse_shard,
    parse_shard_full,
    serialize_shard,
    shard_size,
)
from xet_pyodide.core.terms import build_file_entry, merge_terms
from xet_pyodide.errors import XetFormatError

TAG = bytes.fromhex("48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa9")


def rand_hash(rng: random.Random) -> MerkleHash:
    return MerkleHash(rng.randbytes(32))


def sample_shard(seed: int = 0, n_files: int = 4, n_xorbs: int = 3) -> Shard:
    rng = random.Random(seed)
    xorbs = []
    for _ in range(n_xorbs):
        sizes = [rng.randint(1, 131072) for _ in range(rng.randint(1, 40))]
        xorbs.append(XorbEntry.from_chunks(rand_hash(rng), [rand_hash(rng) for _ in sizes], sizes))
    files = []
    for i in range(n_files):
        terms = []
        for _ in range(rng.randint(0 if i == 0 else 1, 5)):
            x = rng.choice(xorbs)
            start = rng.randrange(len(x.chunks))
            end = rng.randint(start + 1, len(x.chunks))
            terms.append(
                FileTerm(x.xorb_hash, start, end, sum(c.size for c in x.chunks[start:end]))
            )
        files.append(
            FileEntry(
                rand_hash(rng),
                terms,
                [rand_hash(rng) for _ in terms],
                hashlib.sha256(bytes([i])).digest() if terms else bytes(32),
            )
        )
    return Shard(files, xorbs)


def test_upload_form_layout():
    shard = sample_shard()
    data = serialize_shard(shard)
    assert data[:32] == TAG
    assert struct.unpack_from("<QQ", data, 32) == (2, 0)
    assert len(data) % 48 == 0 and len(data) == shard_size(shard)
    assert data[-48:] == b"\xff" * 32 + bytes(16)
    parsed = parse_shard(data)
    assert parsed.footer is None
    assert parsed.files == sorted(shard.files, key=lambda f: f.file_hash)
    assert parsed.xorbs == sorted(shard.xorbs, key=lambda x: x.xorb_hash)
    assert serialize_shard(parsed) == data


def test_shard_size_keeps_first_of_duplicate_entries():
    """Entries repeating a hash with a different shape are dropped by the serializer (first
    wins); the size estimate must drop the same ones."""
    shard = sample_shard(seed=3)
    first_file = shard.files[1]
    longer = FileEntry(
        first_file.file_hash,
        first_file.terms * 2,
        (first_file.verification or []) * 2,
        first_file.sha256,
    )
    first_xorb = shard.xorbs[0]
    shorter = XorbEntry(first_xorb.xorb_hash, first_xorb.chunks[:1])
    dup = Shard([*shard.files, longer], [*shard.xorbs, shorter])
    assert shard_size(dup) == len(serialize_shard(dup)) == len(serialize_shard(shard))


def test_file_record_contents():
    h = MerkleHash(bytes(range(32)))
    x = MerkleHash(b"\x07" * 32)
    v = MerkleHash(b"\x09" * 32)
    sha = hashlib.sha256(b"abc").digest()
    data = serialize_shard(Shard([FileEntry(h, [FileTerm(x, 2, 5, 1234)], [v], sha)], []))
    header = data[48:96]
    assert header == h.raw + struct.pack("<IIQ", 0xC0000000, 1, 0)
    assert data[96:144] == x.raw + struct.pack("<IIII", 0, 1234, 2, 5)
    assert data[144:192] == v.raw + bytes(16)
    # sha256 stored in xet word order: xet hex of the field == hexdigest
    assert MerkleHash(data[192:224]).hex() == hashlib.sha256(b"abc").hexdigest()
    assert data[224:240] == bytes(16)
    assert parse_shard(data).files[0].sha256 == sha


def test_cas_record_contents():
    xh = MerkleHash(b"\x05" * 32)
    c0, c1 = MerkleHash(b"\x01" * 32), MerkleHash(b"\x02" * 32)
    entry = XorbEntry(xh, [XorbChunk(c0, 0, 100), XorbChunk(c1, 100, 50, CHUNK_FLAG_GLOBAL_DEDUP)])
    data = serialize_shard(Shard([], [entry]))
    cas = data[96:]
    assert cas[:48] == xh.raw + struct.pack("<IIII", 0, 2, 150, 0)
    assert cas[48:96] == c0.raw + struct.pack("<IIII", 0, 100, 0, 0)
    assert cas[96:144] == c1.raw + struct.pack("<IIII", 100, 50, 0x80000000, 0)
    assert parse_shard(data).xorbs == [entry]


def test_duplicates_are_written_once():
    shard = sample_shard(1)
    doubled = Shard(shard.files + shard.files[:2], shard.xorbs + shard.xorbs[:1])
    assert serialize_shard(doubled) == serialize_shard(shard)


def test_empty_shard_and_empty_file():
    assert (
        serialize_shard(Shard()) == TAG + struct.pack("<QQ", 2, 0) + (b"\xff" * 32 + bytes(16)) * 2
    )
    empty = FileEntry(MerkleHash.ZERO, [], [], bytes(32))
    data = serialize_shard(Shard([empty], []))
    assert data[48:96] == bytes(32) + struct.pack("<IIQ", 0xC0000000, 0, 0)
    assert data[96:144] == bytes(48)
    assert parse_shard(data).files == [empty]


def test_footer_and_lookup_tables():
    shard = sample_shard(2, n_files=6, n_xorbs=4)
    key = bytes(range(1, 33))
    shard.footer = ShardFooterInfo(key, 1_700_000_000, 1_700_086_400)
    data = serialize_shard(shard, with_footer=True, with_lookup_tables=True)
    assert struct.unpack_from("<Q", data, 40)[0] == 200
    parsed = parse_shard_full(data)
    assert parsed.shard.footer == shard.footer
    assert parsed.shard.files == sorted(shard.files, key=lambda f: f.file_hash)
    n_chunks = sum(len(x.chunks) for x in shard.xorbs)
    assert (len(parsed.lookup.files), len(parsed.lookup.xorbs), len(parsed.lookup.chunks)) == (
        6,
        4,
        n_chunks,
    )
    # every lookup entry points at the right record
    for trunc, index in parsed.lookup.files:
        assert data[48 + 48 * index : 48 + 48 * index + 8] == struct.pack("<Q", trunc)
    for xorb in parsed.shard.xorbs:
        for i, c in enumerate(xorb.chunks):
            assert any(k == c.hash.truncated() and ci == i for k, _, ci in parsed.lookup.chunks)
    assert parsed.materialized_bytes == sum(f.size for f in shard.files)
    assert parsed.stored_bytes == sum(x.bytes_in_cas for x in shard.xorbs)
    footer = data[-200:]
    assert struct.unpack_from("<Q", footer, 192)[0] == len(data) - 200
    assert footer[72:104] == key
    # without tables: offsets point at the footer, counts are zero
    plain = serialize_shard(shard, with_footer=True)
    assert struct.unpack_from("<9Q", plain, len(plain) - 200)[3:] == (len(plain) - 200, 0) * 3
    assert parse_shard(plain).files == parsed.shard.files


def test_footer_without_lookup_tables_all_zero():
    """@huggingface/hub 2.17.5 writes a footer whose lookup offsets and counts are all zero
    (no tables, footer right after the CAS section): accepted; zeros with bytes between the
    CAS section and the footer are not."""
    shard = sample_shard(12, n_files=3, n_xorbs=2)
    plain = bytearray(serialize_shard(shard, with_footer=True))
    base = len(plain) - 200
    struct.pack_into("<6Q", plain, base + 24, 0, 0, 0, 0, 0, 0)
    assert parse_shard(bytes(plain)).files == sorted(shard.files, key=lambda f: f.file_hash)
    parsed = parse_shard_full(bytes(plain))
    assert (parsed.lookup.files, parsed.lookup.xorbs, parsed.lookup.chunks) == ([], [], [])
    padded = plain[:base] + bytes(12) + plain[base:]
    struct.pack_into("<Q", padded, 40, 200)
    struct.pack_into("<Q", padded, len(padded) - 8, base + 12)
    with pytest.raises(XetFormatError, match="inconsistent"):
        parse_shard(bytes(padded))


def test_dedup_response_shard_with_hmac_key():
    """What the CAS server returns for a global-dedup query, and how a client matches it."""
    rng = random.Random(3)
    chunk_hashes = [rand_hash(rng) for _ in range(10)]
    sizes = [rng.randint(8192, 131072) for _ in chunk_hashes]
    key = rng.randbytes(32)
    protected = [hmac_hash(h, key) for h in chunk_hashes]
    xorb = XorbEntry.from_chunks(rand_hash(rng), protected, sizes)
    info = ShardFooterInfo(key, creation_timestamp=1000, key_expiry=1000 + 14 * 86400)
    data = serialize_shard(Shard([], [xorb], info), with_footer=True)
    parsed = parse_shard(data)
    assert parsed.files == [] and parsed.footer is not None and parsed.footer.protected
    index = {c.hash: i for i, c in enumerate(parsed.xorbs[0].chunks)}
    assert [index[hmac_hash(h, parsed.footer.hmac_key)] for h in chunk_hashes[3:7]] == [3, 4, 5, 6]
    assert NO_EXPIRY == 2**64 - 1


def test_mark_dedup_eligible():
    rng = random.Random(4)
    x = XorbEntry.from_chunks(rand_hash(rng), [rand_hash(rng) for _ in range(6)], [10] * 6)
    special = MerkleHash(bytes(24) + (1024 * 7).to_bytes(8, "little"))
    x.chunks[4] = XorbChunk(special, 40, 10)
    f = FileEntry(rand_hash(rng), [FileTerm(x.xorb_hash, 2, 4, 20)], None, None)
    marked = mark_dedup_eligible(Shard([f], [x]))
    assert [bool(c.flags) for c in marked.xorbs[0].chunks] == [0, 0, 1, 0, 1, 0]
    assert not any(c.flags for c in x.chunks)  # input untouched


def test_merge_terms_and_file_entry():
    a, b = MerkleHash(b"\xaa" * 32), MerkleHash(b"\xbb" * 32)
    locations = [(a, 0), (a, 1), (a, 2), (b, 5), (a, 3), (a, 1), (a, 2)]
    sizes = [10, 20, 30, 40, 50, 60, 70]
    terms = merge_terms(locations, sizes)
    assert [
        (t.xorb_hash, t.chunk_start, t.chunk_end, t.unpacked_bytes, first) for t, first in terms
    ] == [
        (a, 0, 3, 60, 0),
        (b, 5, 6, 40, 3),
        (a, 3, 4, 50, 4),
        (a, 1, 3, 130, 5),
    ]
    hashes = [MerkleHash(bytes([i]) * 32) for i in range(7)]
    entry = build_file_entry(hashes, sizes, locations, bytes(32))
    assert entry.verification == [
        verification_hash(hashes[0:3]),
        verification_hash(hashes[3:4]),
        verification_hash(hashes[4:5]),
        verification_hash(hashes[5:7]),
    ]
    assert entry.size == sum(sizes)
    assert build_file_entry([], [], []).file_hash == MerkleHash.ZERO


def test_serializer_rejects_inconsistent_entries():
    h = MerkleHash.ZERO
    with pytest.raises(ValueError):
        serialize_shard(Shard([FileEntry(h, [FileTerm(h, 0, 1, 5)], [], None)], []))
    with pytest.raises(ValueError):
        serialize_shard(Shard([FileEntry(h, [FileTerm(h, 3, 3, 5)], None, None)], []))


# --------------------------------------------------------------------------- hostile input


def _format_errors_only(data: bytes, **kwargs) -> None:
    with contextlib.suppress(XetFormatError):
        parse_shard_full(data, **kwargs)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"X" + d[1:], "header tag"),
        (lambda d: d[:32] + struct.pack("<Q", 3) + d[40:], "version"),
        (lambda d: d[:40] + struct.pack("<Q", 7) + d[48:], "footer size"),
        (lambda d: d + bytes(48), "unexpected bytes"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:80] + struct.pack("<I", 0x20000000) + d[84:], "unknown flags"),
    ],
)
def test_malformed_shards(mutate, message):
    data = serialize_shard(sample_shard(5))
    with pytest.raises(XetFormatError, match=message):
        parse_shard(mutate(data))


def test_oversized_counts_fail_fast():
    h = MerkleHash(b"\x01" * 32)
    for flags in (0, 0xC0000000):
        header = TAG + struct.pack("<QQ", 2, 0) + h.raw + struct.pack("<IIQ", flags, 0xFFFFFFFF, 0)
        with pytest.raises(XetFormatError, match="truncated"):
            parse_shard(header + bytes(480))
    cas = TAG + struct.pack("<QQ", 2, 0) + b"\xff" * 32 + bytes(16)
    cas += h.raw + struct.pack("<IIII", 0, 0xFFFFFFFF, 0, 0)
    with pytest.raises(XetFormatError, match="truncated"):
        parse_shard(cas + bytes(480))


def test_hostile_footer_offsets():
    shard = sample_shard(6)
    data = bytearray(serialize_shard(shard, with_footer=True, with_lookup_tables=True))
    base = len(data) - 200
    for field in range(1, 9):
        for value in (0, 2**64 - 1, 2**32, base + 12):
            broken = bytearray(data)
            struct.pack_into("<Q", broken, base + 8 * field, value)
            if bytes(broken) != bytes(data):
                with pytest.raises(XetFormatError):
                    parse_shard(bytes(broken))


def test_size_limit():
    data = serialize_shard(sample_shard(7))
    with pytest.raises(XetFormatError, match="limit"):
        parse_shard(data, max_size=len(data) - 1)
    assert parse_shard(data, max_size=len(data)).files


def test_truncated_at_every_position():
    for form in (
        serialize_shard(sample_shard(8)),
        serialize_shard(sample_shard(8), with_footer=True, with_lookup_tables=True),
    ):
        for cut in range(len(form)):
            with pytest.raises(XetFormatError):
                parse_shard(form[:cut])


def _real_shard() -> Shard:
    """Four files (one empty, one sharing chunks with another, so files have several terms)
    and the xorbs holding their chunks, all with real hashes."""
    rng = random.Random(9)
    first = rng.randbytes(300_000)
    second = first[100_000:] + rng.randbytes(50_000) + first[:60_000]
    plan = plan_upload([first, second, b"", random_input(rng, 1000, "text")])
    shard = plan.shard()
    assert max(len(f.terms) for f in shard.files) >= 3 and len(shard.xorbs) == 1
    return shard


def _hash_mismatch(shard: Shard) -> str | None:
    """What recomputing the shard's hashes exposes, or None: each xorb hash over its chunk
    list, and each file's verification hashes and file hash over the chunks its terms name.
    (A CAS server makes the same checks against the stored xorbs.)"""
    xorbs = {x.xorb_hash: x for x in shard.xorbs}
    for x in shard.xorbs:
        if xorb_hash([(c.hash, c.size) for c in x.chunks]) != x.xorb_hash:
            return f"xorb {x.xorb_hash}: chunk list does not hash to it"
        starts = list(accumulate((c.size for c in x.chunks), initial=0))[:-1]
        if [c.byte_start for c in x.chunks] != starts or x.num_bytes_in_cas is not None:
            return f"xorb {x.xorb_hash}: offsets or total disagree with the chunk sizes"
    for f in shard.files:
        if f.terms and (f.verification is None or len(f.verification) != len(f.terms)):
            return f"file {f.file_hash}: verification entries missing"
        chunks: list[tuple[MerkleHash, int]] = []
        for i, term in enumerate(f.terms):
            x = xorbs.get(term.xorb_hash)
            if x is None or term.chunk_end > len(x.chunks):
                return f"file {f.file_hash} term {i}: no such chunks"
            named = [(c.hash, c.size) for c in x.chunks[term.chunk_start : term.chunk_end]]
            if sum(size for _, size in named) != term.unpacked_bytes:
                return f"file {f.file_hash} term {i}: wrong size"
            assert f.verification is not None
            if verification_hash([h for h, _ in named]) != f.verification[i]:
                return f"file {f.file_hash} term {i}: verification hash"
            chunks += named
        if file_hash(chunks) != f.file_hash:
            return f"file {f.file_hash}: chunks hash to another file hash"
    return None


#: Byte columns of each kind of 48-byte record that no hash covers: reserved bytes the parser
#: ignores, the sha256 (checked against the content by whoever has it), flags, and
#: num_bytes_on_disk (a CAS server checks it against the stored xorb). An empty file has no
#: chunk to hash: its flag byte (verification / metadata-ext bits) is unprotected too.
_UNPROTECTED = {
    "file": [(40, 48)],
    "empty file": [(35, 36), (40, 48)],
    "term": [(32, 36)],
    "verification": [(32, 48)],
    "sha256": [(0, 48)],
    "xorb": [(32, 36), (44, 48)],
    "chunk": [(40, 48)],
    "bookend": [(32, 48)],
}


def _unprotected_positions(shard: Shard) -> dict[int, str]:
    """Offset -> record kind of the bytes outside every hash in the upload form of ``shard``."""
    kinds = []
    for f in sorted(shard.files, key=lambda f: f.file_hash):
        kinds += ["file" if f.terms else "empty file"] + ["term"] * len(f.terms)
        kinds += ["verification"] * len(f.terms) + ["sha256"] * (f.sha256 is not None)
    kinds.append("bookend")
    for x in sorted(shard.xorbs, key=lambda x: x.xorb_hash):
        kinds += ["xorb"] + ["chunk"] * len(x.chunks)
    kinds.append("bookend")
    out = {}
    for record, kind in enumerate(kinds, 1):  # (record 0: the header)
        for a, b in _UNPROTECTED[kind]:
            out.update(dict.fromkeys(range(48 * record + a, 48 * record + b), kind))
    return out


def _non_empty(shard: Shard) -> tuple[list[FileEntry], list[XorbEntry]]:
    return [f for f in shard.files if f.terms], shard.xorbs


def _parsed_flips(data: bytes, seed: int) -> Iterator[tuple[int, bytes, Shard]]:
    """Flip one random bit of every byte of ``data`` in turn; yields ``(position, bytes,
    parsed shard)`` for the flips the parser accepts."""
    rng = random.Random(seed)
    for pos in range(len(data)):
        broken = bytearray(data)
        broken[pos] ^= 1 << rng.randrange(8)
        try:
            parsed = parse_shard(bytes(broken))
        except XetFormatError:
            continue
        yield pos, bytes(broken), parsed


def test_real_shard_passes_the_hash_check():
    shard = _real_shard()
    assert _hash_mismatch(parse_shard(serialize_shard(shard))) is None


def test_bit_flips_in_hash_protected_fields_are_detected():
    """A flipped bit of an upload-form shard is refused by the parser or exposed by
    recomputing the hashes, unless it sits in a field no hash covers (_UNPROTECTED); there
    the parsed shard is the original (ignored bytes) or carries exactly that one change (an
    empty file's flags: its entries change, nothing else does). One random bit of every
    byte."""
    shard = _real_shard()
    data = serialize_shard(shard)
    original = parse_shard(data)
    unprotected = _unprotected_positions(shard)
    undetected = set()
    for pos, broken, parsed in _parsed_flips(data, 9):
        if _hash_mismatch(parsed) is not None:
            continue
        kind = unprotected.get(pos)
        assert kind is not None, f"flip at byte {pos} went undetected"
        if kind == "empty file" and pos % 48 == 35:
            assert _non_empty(parsed) == _non_empty(original), pos
            assert all(f.file_hash == MerkleHash.ZERO for f in parsed.files if not f.terms)
        else:
            assert parsed == original or serialize_shard(parsed) == broken, pos
        undetected.add(pos)
    # every unprotected byte really is unchecked (an empty file's flag byte: only 2 of 8 bits)
    assert set(unprotected) - undetected <= {p for p in unprotected if p % 48 == 35}


def test_bit_flips_in_stored_form_tables_and_footer_leave_the_entries_alone():
    """The stored form adds lookup tables and a footer, which no hash covers: a flip there is
    refused or leaves every file and xorb entry as it was; flips in the sections behave as in
    the upload form."""
    shard = _real_shard()
    data = serialize_shard(shard, with_footer=True, with_lookup_tables=True)
    sections = len(serialize_shard(shard))
    original = parse_shard(data)
    for pos, _, parsed in _parsed_flips(data, 10):
        if pos >= sections:
            assert (parsed.files, parsed.xorbs) == (original.files, original.xorbs), pos
        else:
            assert _hash_mismatch(parsed) is not None or pos in _unprotected_positions(shard), pos


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1000))
def test_garbage_raises_only_format_errors(garbage):
    _format_errors_only(garbage)
    _format_errors_only(TAG + struct.pack("<QQ", 2, 0) + garbage)
    _format_errors_only(TAG + struct.pack("<QQ", 2, 200) + garbage)
