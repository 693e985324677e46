"""MDB v2 shards: serializer (this module), model (:mod:`.shard_model`), parser
(:mod:`.shard_parse`).

Upload form (what clients send): header with ``footer_size = 0``, the file section and its
bookend, the CAS section and its bookend. Servers store/return shards with a 200-byte footer,
optionally preceded by lookup tables; dedup responses carry an HMAC key in that footer.

Files and xorbs are written sorted by hash (xet-hex order) and de-duplicated by hash, as
hf_xet does, so equal inputs give byte-identical shards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from .hashes import MerkleHash
from .shard_model import (
    BOOKEND,
    CAS_LOOKUP_ENTRY,
    CHUNK_FLAG_GLOBAL_DEDUP,
    CHUNK_LOOKUP_ENTRY,
    FILE_FLAG_METADATA_EXT,
    FILE_FLAG_VERIFICATION,
    FILE_HEADER,
    FILE_LOOKUP_ENTRY,
    FOOTER,
    FOOTER_LEN,
    HEADER,
    HEADER_TAG,
    HEADER_VERSION,
    MAX_SHARD_BYTES,
    NO_EXPIRY,
    RECORD,
    RECORD_LEN,
    FileEntry,
    FileTerm,
    LookupTables,
    Shard,
    ShardFooterInfo,
    XorbChunk,
    XorbEntry,
    lookup_offsets,
)
from .shard_parse import ParsedShard, parse_shard, parse_shard_full

_PAD16 = bytes(16)
T = TypeVar("T")


def _unique_sorted(items: Iterable[T], key: Callable[[T], MerkleHash]) -> list[T]:
    """Sort by hash, keeping the first entry of each hash."""
    seen: dict[MerkleHash, T] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return [seen[h] for h in sorted(seen)]


def _file_records(entry: FileEntry) -> list[bytes]:
    n = len(entry.terms)
    if entry.verification is not None and len(entry.verification) != n:
        raise ValueError(
            f"file {entry.file_hash}: {n} terms but {len(entry.verification)} verification hashes"
        )
    out = [FILE_HEADER.pack(entry.file_hash.raw, entry.flags, n, 0)]
    for term in entry.terms:
        if not 0 <= term.chunk_start < term.chunk_end:
            raise ValueError(f"file {entry.file_hash}: empty or negative term range")
        out.append(
            RECORD.pack(
                term.xorb_hash.raw, 0, term.unpacked_bytes, term.chunk_start, term.chunk_end
            )
        )
    if entry.verification is not None:
        out += [h.raw + _PAD16 for h in entry.verification]
    stored_sha = entry.sha256_field()
    if stored_sha is not None:
        out.append(stored_sha.raw + _PAD16)
    return out


def _xorb_records(entry: XorbEntry) -> list[bytes]:
    out = [
        RECORD.pack(
            entry.xorb_hash.raw,
            entry.flags,
            len(entry.chunks),
            entry.bytes_in_cas,
            entry.num_bytes_on_disk,
        )
    ]
    out += [RECORD.pack(c.hash.raw, c.byte_start, c.size, c.flags, 0) for c in entry.chunks]
    return out


def serialize_shard(
    shard: Shard,
    *,
    with_footer: bool = False,
    with_lookup_tables: bool = False,
) -> bytes:
    """Serialize ``shard``.

    Default = upload form (no footer). ``with_footer`` appends the 200-byte footer using
    ``shard.footer`` (or an all-default one); ``with_lookup_tables`` also writes the file/CAS/
    chunk lookup tables before it (chunk keys are taken from the chunk hashes as given, i.e.
    already HMAC'd if the shard is protected). Ties between equal truncated chunk hashes are
    ordered by position; xet-core leaves them in unspecified order.
    """
    files = _unique_sorted(shard.files, lambda f: f.file_hash)
    xorbs = _unique_sorted(shard.xorbs, lambda x: x.xorb_hash)
    footer_wanted = with_footer or with_lookup_tables

    parts: list[bytes] = [
        HEADER.pack(HEADER_TAG, HEADER_VERSION, FOOTER_LEN if footer_wanted else 0)
    ]
    file_lookup: list[tuple[int, int]] = []
    index = 0
    for entry in files:
        records = _file_records(entry)
        file_lookup.append((entry.file_hash.truncated(), index))
        index += len(records)
        parts += records
    parts.append(BOOKEND)
    cas_info_offset = RECORD_LEN * (1 + index + 1)

    cas_lookup: list[tuple[int, int]] = []
    chunk_lookup: list[tuple[int, int, int]] = []
    index = 0
    for entry in xorbs:
        records = _xorb_records(entry)
        cas_lookup.append((entry.xorb_hash.truncated(), index))
        chunk_lookup += [(c.hash.truncated(), index, i) for i, c in enumerate(entry.chunks)]
        index += len(records)
        parts += records
    parts.append(BOOKEND)
    if not footer_wanted:
        return b"".join(parts)

    tables_offset = cas_info_offset + RECORD_LEN * (index + 1)
    if not with_lookup_tables:
        file_lookup, cas_lookup, chunk_lookup = [], [], []
    file_lookup.sort(key=lambda e: e[0])
    cas_lookup.sort(key=lambda e: e[0])
    chunk_lookup.sort(key=lambda e: e[0])
    parts += [FILE_LOOKUP_ENTRY.pack(*e) for e in file_lookup]
    parts += [CAS_LOOKUP_ENTRY.pack(*e) for e in cas_lookup]
    parts += [CHUNK_LOOKUP_ENTRY.pack(*e) for e in chunk_lookup]

    info = shard.footer or ShardFooterInfo()
    file_lookup_offset, cas_lookup_offset, chunk_lookup_offset, footer_offset = lookup_offsets(
        tables_offset, len(file_lookup), len(cas_lookup), len(chunk_lookup)
    )
    parts.append(
        FOOTER.pack(
            1,
            RECORD_LEN,
            cas_info_offset,
            file_lookup_offset,
            len(file_lookup),
            cas_lookup_offset,
            len(cas_lookup),
            chunk_lookup_offset,
            len(chunk_lookup),
            bytes(info.hmac_key),
            info.creation_timestamp,
            info.key_expiry,
            bytes(48),
            sum(x.num_bytes_on_disk for x in xorbs),
            sum(f.size for f in files),
            sum(x.bytes_in_cas for x in xorbs),
            footer_offset,
        )
    )
    return b"".join(parts)


#: A chunk whose hash's word 3 is divisible by this is always eligible for global dedup.
GLOBAL_DEDUP_MODULUS = 1024


def is_dedup_eligible_hash(h: MerkleHash) -> bool:
    """The hash-based half of the global-dedup eligibility rule (``word3 % 1024 == 0``)."""
    return h.word(3) % GLOBAL_DEDUP_MODULUS == 0


def mark_dedup_eligible(shard: Shard) -> Shard:
    """Copy of ``shard`` with chunk flag bit 31 set where the server rule makes a chunk
    eligible for global dedup: already flagged, ``word3(hash) % 1024 == 0``, or the first
    chunk of a file listed in the same shard (start of its first term). This is what
    hf_xet's ``local://`` backend stores; clients upload flags = 0.
    """
    file_starts = {(f.terms[0].xorb_hash, f.terms[0].chunk_start) for f in shard.files if f.terms}
    xorbs = []
    for entry in shard.xorbs:
        chunks = [
            XorbChunk(c.hash, c.byte_start, c.size, c.flags | CHUNK_FLAG_GLOBAL_DEDUP)
            if (
                c.flags & CHUNK_FLAG_GLOBAL_DEDUP
                or is_dedup_eligible_hash(c.hash)
                or (entry.xorb_hash, i) in file_starts
            )
            else c
            for i, c in enumerate(entry.chunks)
        ]
        xorbs.append(
            XorbEntry(
                entry.xorb_hash,
                chunks,
                entry.num_bytes_on_disk,
                entry.num_bytes_in_cas,
                entry.flags,
            )
        )
    return Shard(list(shard.files), xorbs, shard.footer)


def shard_size(shard: Shard) -> int:
    """Size of the upload form of ``shard``, without serializing it (for splitting at 64 MiB)."""
    records = 1 + 1 + 1
    # Same first-entry-wins rule as the serializer.
    for f in _unique_sorted(shard.files, lambda f: f.file_hash):
        records += 1 + len(f.terms) * (2 if f.verification is not None else 1)
        records += 1 if f.sha256 is not None else 0
    for x in _unique_sorted(shard.xorbs, lambda x: x.xorb_hash):
        records += 1 + len(x.chunks)
    return RECORD_LEN * records


__all__ = [
    "CHUNK_FLAG_GLOBAL_DEDUP",
    "FILE_FLAG_METADATA_EXT",
    "FILE_FLAG_VERIFICATION",
    "FOOTER_LEN",
    "GLOBAL_DEDUP_MODULUS",
    "MAX_SHARD_BYTES",
    "NO_EXPIRY",
    "FileEntry",
    "FileTerm",
    "LookupTables",
    "ParsedShard",
    "Shard",
    "ShardFooterInfo",
    "XorbChunk",
    "XorbEntry",
    "is_dedup_eligible_hash",
    "mark_dedup_eligible",
    "parse_shard",
    "parse_shard_full",
    "serialize_shard",
    "shard_size",
]
