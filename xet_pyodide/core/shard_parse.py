"""Parser for MDB v2 shards, safe on hostile input.

Every count read from the data is checked against the bytes actually remaining before anything
is read or allocated, so ``num_entries = 2**32 - 1`` fails fast with :class:`XetFormatError`
instead of allocating. No other exception type escapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import XetFormatError
from .hashes import HASH_LEN, MerkleHash, xet_to_sha256
from .shard_model import (
    CAS_LOOKUP_ENTRY,
    CHUNK_LOOKUP_ENTRY,
    FILE_FLAG_METADATA_EXT,
    FILE_FLAG_VERIFICATION,
    FILE_FLAGS_KNOWN,
    FILE_HEADER,
    FILE_LOOKUP_ENTRY,
    FOOTER,
    FOOTER_LEN,
    FOOTER_VERSION,
    HEADER,
    HEADER_TAG,
    HEADER_VERSION,
    MAX_SHARD_BYTES,
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

_BOOKEND_HASH = b"\xff" * HASH_LEN


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

    def section_record(self, what: str) -> memoryview | None:
        """The next header record of a section, or None at the section's bookend."""
        header = self.records(1, what)
        return None if bytes(header[:HASH_LEN]) == _BOOKEND_HASH else header


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
    tag, version, footer_size = HEADER.unpack_from(view)
    if tag != HEADER_TAG:
        raise XetFormatError("not an MDB shard (wrong header tag)")
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
    while (header := cur.section_record("file section header")) is not None:
        raw_hash, flags, n, _reserved = FILE_HEADER.unpack(header)
        if flags & ~FILE_FLAGS_KNOWN:
            raise XetFormatError(f"file {MerkleHash(raw_hash)} has unknown flags 0x{flags:08x}")
        with_verification = bool(flags & FILE_FLAG_VERIFICATION)
        with_ext = bool(flags & FILE_FLAG_METADATA_EXT)
        cur.need((n * (2 if with_verification else 1) + with_ext) * RECORD_LEN, f"{n} file terms")
        terms = []
        for xorb, _cas_flags, size, start, stop in RECORD.iter_unpack(cur.records(n, "terms")):
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
    return files


def _parse_xorbs(cur: _Cursor) -> list[XorbEntry]:
    xorbs: list[XorbEntry] = []
    while (header := cur.section_record("CAS section header")) is not None:
        raw_hash, flags, n, in_cas, on_disk = RECORD.unpack(header)
        xorb_hash = MerkleHash(raw_hash)
        if n == 0:
            raise XetFormatError(f"xorb {xorb_hash} is listed with no chunks")
        cur.need(n * RECORD_LEN, f"{n} chunk entries")
        chunks = [
            XorbChunk(MerkleHash(h), start, size, chunk_flags)
            for h, start, size, chunk_flags, _reserved in RECORD.iter_unpack(
                cur.records(n, "chunks")
            )
        ]
        # num_bytes_in_cas is kept only when it disagrees with the chunk sizes (None = derived).
        stated = None if in_cas == sum(c.size for c in chunks) else in_cas
        xorbs.append(XorbEntry(xorb_hash, chunks, on_disk, stated, flags))
    return xorbs


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
    ) = FOOTER.unpack_from(view, footer_offset)
    if version != FOOTER_VERSION:
        raise XetFormatError(f"unsupported shard footer version {version}")
    if file_info_offset != RECORD_LEN or cas_offset != cas_info_offset:
        raise XetFormatError("shard footer section offsets do not match the sections")
    if stated_footer_offset != footer_offset:
        raise XetFormatError("shard footer offset does not match its position")
    stated = (file_lookup_offset, cas_lookup_offset, chunk_lookup_offset, footer_offset)
    # A footer without lookup tables (offsets and counts all zero, the footer right after the
    # CAS section) is what @huggingface/hub 2.17.5 uploads.
    tables = (file_lookup_offset, n_files, cas_lookup_offset, n_xorbs, chunk_lookup_offset)
    no_tables = not any(tables) and n_chunks == 0
    if no_tables and tables_start == footer_offset:
        file_lookup_offset = cas_lookup_offset = chunk_lookup_offset = footer_offset
    elif stated != lookup_offsets(tables_start, n_files, n_xorbs, n_chunks):
        raise XetFormatError("shard lookup tables are inconsistent with the footer")
    lookup = LookupTables(
        list(FILE_LOOKUP_ENTRY.iter_unpack(view[file_lookup_offset:cas_lookup_offset])),
        list(CAS_LOOKUP_ENTRY.iter_unpack(view[cas_lookup_offset:chunk_lookup_offset])),
        list(CHUNK_LOOKUP_ENTRY.iter_unpack(view[chunk_lookup_offset:footer_offset])),
    )
    for table in (lookup.files, lookup.xorbs, lookup.chunks):
        if any(table[i][0] > table[i + 1][0] for i in range(len(table) - 1)):
            raise XetFormatError("shard lookup table is not sorted")
    shard.footer = ShardFooterInfo(bytes(hmac_key), created, expiry)
    return ParsedShard(shard, lookup, on_disk, materialized, stored)  # type: ignore[arg-type]


__all__ = ["ParsedShard", "parse_shard", "parse_shard_full"]
