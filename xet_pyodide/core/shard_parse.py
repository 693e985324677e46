"""Parser for MDB v2 shards, safe on hostile input.

Every count read from the data is checked against the bytes actually remaining before anything
is read or allocated, so ``num_entries = 2**32 - 1`` fails fast with :class:`XetFormatError`
instead of allocating. No other exception type escapes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import XetFormatError
from .hashes import HASH_LEN, MerkleHash, xet_to_sha256
from .shard_model import (
    CAS_LOOKUP_ENTRY_LEN,
    CHUNK_LOOKUP_ENTRY_LEN,
    FILE_FLAG_METADATA_EXT,
    FILE_FLAG_VERIFICATION,
    FILE_FLAGS_KNOWN,
    FILE_LOOKUP_ENTRY_LEN,
    FOOTER_LEN,
    FOOTER_VERSION,
    HEADER_TAG,
    HEADER_VERSION,
    MAX_SHARD_BYTES,
    RECORD_LEN,
    FileEntry,
    FileTerm,
    LookupTables,
    Shard,
    ShardFooterInfo,
    XorbChunk,
    XorbEntry,
)

_BOOKEND_HASH = b"\xff" * HASH_LEN
_RECORD = struct.Struct("<32sIIII")  # hash + four u32 (both sections use this shape)
_FILE_HEADER = struct.Struct("<32sIIQ")
_FOOTER = struct.Struct("<9Q32sQQ48sQQQQ")


@dataclass(frozen=True, slots=True)
class ParsedShard:
    """Everything a shard says: the model plus the stored footer totals and lookup tables."""

    shard: Shard
    lookup: LookupTables
    stored_bytes_on_disk: int = 0
    materialized_bytes: int = 0
    stored_bytes: int = 0


class _Cursor:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: memoryview, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def need(self, n: int, what: str) -> None:
        if n > self.end - self.pos:
            raise XetFormatError(
                f"shard truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"{self.end - self.pos} left"
            )

    def records(self, count: int, what: str) -> memoryview:
        """``count`` 48-byte records (bounds-checked before slicing)."""
        self.need(count * RECORD_LEN, what)
        out = self.data[self.pos : self.pos + count * RECORD_LEN]
        self.pos += count * RECORD_LEN
        return out


def parse_shard(data: bytes | bytearray | memoryview, *, max_size: int = MAX_SHARD_BYTES) -> Shard:
    """Parse a shard (upload form, or stored form with footer and lookup tables)."""
    return parse_shard_full(data, max_size=max_size).shard


def parse_shard_full(
    data: bytes | bytearray | memoryview, *, max_size: int = MAX_SHARD_BYTES
) -> ParsedShard:
    """Like :func:`parse_shard`, also returning footer totals and lookup tables."""
    view = memoryview(data).cast("B")
    if len(view) > max_size:
        raise XetFormatError(f"shard of {len(view)} bytes exceeds the {max_size}-byte limit")
    if len(view) < RECORD_LEN:
        raise XetFormatError("shard truncated: no complete header")
    if bytes(view[:32]) != HEADER_TAG:
        raise XetFormatError("not an MDB shard (wrong header tag)")
    version, footer_size = struct.unpack_from("<QQ", view, 32)
    if version != HEADER_VERSION:
        raise XetFormatError(f"unsupported shard version {version}")
    if footer_size not in (0, FOOTER_LEN):
        raise XetFormatError(f"invalid shard footer size {footer_size}")
    if footer_size > len(view) - RECORD_LEN:
        raise XetFormatError("shard truncated: too short for its footer")
    end = len(view) - footer_size
    cur = _Cursor(view, RECORD_LEN, end)
    files = _parse_files(cur)
    cas_info_offset = cur.pos
    xorbs = _parse_xorbs(cur)
    shard = Shard(files, xorbs)
    if not footer_size:
        if cur.pos != end:
            raise XetFormatError(f"{end - cur.pos} unexpected bytes after the CAS section")
        return ParsedShard(shard, LookupTables([], [], []))
    return _parse_footer(view, cur.pos, cas_info_offset, shard)


def _parse_files(cur: _Cursor) -> list[FileEntry]:
    files: list[FileEntry] = []
    while True:
        header = cur.records(1, "file section header")
        if bytes(header[:HASH_LEN]) == _BOOKEND_HASH:
            return files
        raw_hash, flags, n, _reserved = _FILE_HEADER.unpack(header)
        if flags & ~FILE_FLAGS_KNOWN:
            raise XetFormatError(f"file {MerkleHash(raw_hash)} has unknown flags 0x{flags:08x}")
        with_verification = bool(flags & FILE_FLAG_VERIFICATION)
        with_ext = bool(flags & FILE_FLAG_METADATA_EXT)
        cur.need((n * (2 if with_verification else 1) + with_ext) * RECORD_LEN, f"{n} file terms")
        terms = []
        for xorb, _cas_flags, size, start, stop in _RECORD.iter_unpack(cur.records(n, "terms")):
            if stop <= start:
                raise XetFormatError(
                    f"file {MerkleHash(raw_hash)} has an empty term [{start}, {stop})"
                )
            terms.append(FileTerm(MerkleHash(xorb), start, stop, size))
        verification = None
        if with_verification:
            block = bytes(cur.records(n, "verification entries"))
            verification = [
                MerkleHash(block[i : i + HASH_LEN]) for i in range(0, len(block), RECORD_LEN)
            ]
        sha256 = None
        if with_ext:
            ext = cur.records(1, "metadata extension")
            sha256 = xet_to_sha256(MerkleHash(ext[:HASH_LEN]))
        files.append(FileEntry(MerkleHash(raw_hash), terms, verification, sha256))


def _parse_xorbs(cur: _Cursor) -> list[XorbEntry]:
    xorbs: list[XorbEntry] = []
    while True:
        header = cur.records(1, "CAS section header")
        if bytes(header[:HASH_LEN]) == _BOOKEND_HASH:
            return xorbs
        raw_hash, flags, n, in_cas, on_disk = _RECORD.unpack(header)
        xorb_hash = MerkleHash(raw_hash)
        if n == 0:
            raise XetFormatError(f"xorb {xorb_hash} is listed with no chunks")
        cur.need(n * RECORD_LEN, f"{n} chunk entries")
        chunks = [
            XorbChunk(MerkleHash(h), start, size, chunk_flags)
            for h, start, size, chunk_flags, _reserved in _RECORD.iter_unpack(
                cur.records(n, "chunks")
            )
        ]
        # num_bytes_in_cas is kept only when it disagrees with the chunk sizes (None = derived).
        stated = None if in_cas == sum(c.size for c in chunks) else in_cas
        xorbs.append(XorbEntry(xorb_hash, chunks, on_disk, stated, flags))


def _parse_footer(
    view: memoryview, tables_start: int, cas_info_offset: int, shard: Shard
) -> ParsedShard:
    footer_offset = len(view) - FOOTER_LEN
    (
        version,
        file_info_offset,
        cas_offset,
        file_lookup_offset,
        n_files,
        cas_lookup_offset,
        n_xorbs,
        chunk_lookup_offset,
        n_chunks,
        hmac_key,
        created,
        expiry,
        _reserved,
        on_disk,
        materialized,
        stored,
        stated_footer_offset,
    ) = _FOOTER.unpack_from(view, footer_offset)
    if version != FOOTER_VERSION:
        raise XetFormatError(f"unsupported shard footer version {version}")
    if file_info_offset != RECORD_LEN or cas_offset != cas_info_offset:
        raise XetFormatError("shard footer section offsets do not match the sections")
    if stated_footer_offset != footer_offset:
        raise XetFormatError("shard footer offset does not match its position")
    expected = (
        (file_lookup_offset, tables_start),
        (cas_lookup_offset, file_lookup_offset + FILE_LOOKUP_ENTRY_LEN * n_files),
        (chunk_lookup_offset, cas_lookup_offset + CAS_LOOKUP_ENTRY_LEN * n_xorbs),
        (footer_offset, chunk_lookup_offset + CHUNK_LOOKUP_ENTRY_LEN * n_chunks),
    )
    for actual, wanted in expected:
        if actual != wanted:
            raise XetFormatError("shard lookup tables are inconsistent with the footer")
    lookup = LookupTables(
        [tuple(e) for e in struct.iter_unpack("<QI", view[file_lookup_offset:cas_lookup_offset])],
        [tuple(e) for e in struct.iter_unpack("<QI", view[cas_lookup_offset:chunk_lookup_offset])],
        [tuple(e) for e in struct.iter_unpack("<QII", view[chunk_lookup_offset:footer_offset])],
    )
    for table in (lookup.files, lookup.xorbs, lookup.chunks):
        if any(table[i][0] > table[i + 1][0] for i in range(len(table) - 1)):
            raise XetFormatError("shard lookup table is not sorted")
    shard.footer = ShardFooterInfo(bytes(hmac_key), created, expiry)
    return ParsedShard(shard, lookup, on_disk, materialized, stored)  # type: ignore[arg-type]


__all__ = ["ParsedShard", "parse_shard", "parse_shard_full"]
