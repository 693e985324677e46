"""The in-memory model of an MDB v2 shard (what :mod:`.shard` serializes and parses).

A shard lists files (their terms, per-term verification hashes and optional sha256) and xorbs
(their chunks' hashes, offsets and sizes). Layout constants live here too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .hashes import HASH_LEN, MerkleHash, sha256_to_xet, xet_to_sha256

#: Every record of the file and CAS sections is 48 bytes.
RECORD_LEN = 48
HEADER_TAG = bytes.fromhex("48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa9")
HEADER_VERSION = 2
FOOTER_VERSION = 1
FOOTER_LEN = 200
#: Bookend record closing each section: 32 bytes 0xFF then 16 zero bytes.
BOOKEND = b"\xff" * HASH_LEN + bytes(16)

FILE_FLAG_VERIFICATION = 0x8000_0000
FILE_FLAG_METADATA_EXT = 0x4000_0000
FILE_FLAGS_KNOWN = FILE_FLAG_VERIFICATION | FILE_FLAG_METADATA_EXT
#: Chunk flag bit 31: "eligible for global dedup" (hf_xet 1.8.0 uploads 0).
CHUNK_FLAG_GLOBAL_DEDUP = 0x8000_0000
#: Protocol limit on a shard's size (``MDB_SHARD_TARGET_SIZE``).
MAX_SHARD_BYTES = 64 * 1024 * 1024
#: ``shard_key_expiry`` value xet-core writes for "never expires".
NO_EXPIRY = 0xFFFF_FFFF_FFFF_FFFF

# Binary layouts (little-endian), shared by the serializer and the parser.
#: Header record: tag, version, footer size (0 in the upload form).
HEADER = struct.Struct("<32sQQ")
#: File section header record: file hash, flags, number of terms, reserved.
FILE_HEADER = struct.Struct("<32sIIQ")
#: A hash and four u32: file terms (xorb hash, reserved, unpacked bytes, chunk start, chunk
#: end), CAS headers (xorb hash, flags, chunks, bytes in CAS, bytes on disk) and CAS chunks
#: (chunk hash, byte start, size, flags, reserved).
RECORD = struct.Struct("<32sIIII")
#: Footer: version, file/CAS section offsets, (offset, count) of the file, CAS and chunk lookup
#: tables, HMAC key, creation time, key expiry, reserved, the three byte totals, footer offset.
FOOTER = struct.Struct("<9Q32sQQ48sQQQQ")
FILE_LOOKUP_ENTRY = struct.Struct("<QI")  # u64 truncated file hash, u32 record index
CAS_LOOKUP_ENTRY = struct.Struct("<QI")  # u64 truncated xorb hash, u32 record index
#: u64 truncated chunk hash, u32 xorb record index, u32 chunk index
CHUNK_LOOKUP_ENTRY = struct.Struct("<QII")
FILE_LOOKUP_ENTRY_LEN = FILE_LOOKUP_ENTRY.size  # 12
CAS_LOOKUP_ENTRY_LEN = CAS_LOOKUP_ENTRY.size  # 12
CHUNK_LOOKUP_ENTRY_LEN = CHUNK_LOOKUP_ENTRY.size  # 16


def lookup_offsets(
    tables_start: int, n_files: int, n_xorbs: int, n_chunks: int
) -> tuple[int, int, int, int]:
    """Offsets of the file, CAS and chunk lookup tables and of the footer, which follow each
    other from ``tables_start`` (the end of the CAS section)."""
    cas_lookup = tables_start + FILE_LOOKUP_ENTRY_LEN * n_files
    chunk_lookup = cas_lookup + CAS_LOOKUP_ENTRY_LEN * n_xorbs
    return tables_start, cas_lookup, chunk_lookup, chunk_lookup + CHUNK_LOOKUP_ENTRY_LEN * n_chunks


@dataclass(frozen=True, slots=True)
class FileTerm:
    """Chunks ``[chunk_start, chunk_end)`` of a xorb, ``unpacked_bytes`` long once decoded."""

    xorb_hash: MerkleHash
    chunk_start: int
    chunk_end: int
    unpacked_bytes: int


@dataclass(slots=True)
class FileEntry:
    """A file's reconstruction: its terms in file order.

    ``verification`` holds one range hash per term (required by servers for uploads).
    ``sha256`` is the ordinary SHA-256 digest (hashlib byte order); the shard stores it in xet
    word order, the conversion happens on (de)serialization. hf_xet writes 32 zero bytes for
    empty files.
    """

    file_hash: MerkleHash
    terms: list[FileTerm]
    verification: list[MerkleHash] | None = None
    sha256: bytes | None = None

    @property
    def size(self) -> int:
        """File size = sum of the terms' unpacked bytes."""
        return sum(t.unpacked_bytes for t in self.terms)

    @property
    def flags(self) -> int:
        return (FILE_FLAG_VERIFICATION if self.verification is not None else 0) | (
            FILE_FLAG_METADATA_EXT if self.sha256 is not None else 0
        )

    def sha256_field(self) -> MerkleHash | None:
        """The metadata-ext field as stored in the shard."""
        return None if self.sha256 is None else sha256_to_xet(self.sha256)

    @staticmethod
    def sha256_from_field(stored: MerkleHash) -> bytes:
        return xet_to_sha256(stored)


@dataclass(frozen=True, slots=True)
class XorbChunk:
    """One chunk of a xorb as a shard lists it (hash HMAC'd in dedup responses)."""

    hash: MerkleHash
    #: Cumulative uncompressed offset of the chunk inside the xorb.
    byte_start: int
    size: int
    flags: int = 0


@dataclass(slots=True)
class XorbEntry:
    """A xorb's CAS block.

    ``num_bytes_in_cas`` ``None`` means "the sum of the chunk sizes" (what every writer stores);
    the parser only fills it in when a shard states something else.
    """

    xorb_hash: MerkleHash
    chunks: list[XorbChunk]
    num_bytes_on_disk: int = 0
    num_bytes_in_cas: int | None = None
    flags: int = 0

    @property
    def bytes_in_cas(self) -> int:
        if self.num_bytes_in_cas is not None:
            return self.num_bytes_in_cas
        return sum(c.size for c in self.chunks)

    @classmethod
    def from_chunks(
        cls,
        xorb_hash: MerkleHash,
        hashes: list[MerkleHash],
        sizes: list[int],
        num_bytes_on_disk: int = 0,
    ) -> XorbEntry:
        """Build from chunk hashes and sizes (offsets accumulated)."""
        chunks = []
        offset = 0
        for h, size in zip(hashes, sizes, strict=True):
            chunks.append(XorbChunk(h, offset, size))
            offset += size
        return cls(xorb_hash, chunks, num_bytes_on_disk)


@dataclass(frozen=True, slots=True)
class ShardFooterInfo:
    """The footer fields a writer chooses (the rest is derived on serialization).

    ``hmac_key`` all zero means the chunk hashes are plain. Timestamps are Unix seconds, passed
    in by the caller (the core never reads a clock).
    """

    hmac_key: bytes = bytes(HASH_LEN)
    creation_timestamp: int = 0
    key_expiry: int = 0

    @property
    def protected(self) -> bool:
        return self.hmac_key != bytes(HASH_LEN)


@dataclass(slots=True)
class Shard:
    files: list[FileEntry] = field(default_factory=list)
    xorbs: list[XorbEntry] = field(default_factory=list)
    footer: ShardFooterInfo | None = None


@dataclass(frozen=True, slots=True)
class LookupTables:
    """Parsed lookup tables of a full shard (empty lists when absent)."""

    files: list[tuple[int, int]]
    xorbs: list[tuple[int, int]]
    chunks: list[tuple[int, int, int]]


__all__ = [
    "BOOKEND",
    "CHUNK_FLAG_GLOBAL_DEDUP",
    "FILE_FLAG_METADATA_EXT",
    "FILE_FLAG_VERIFICATION",
    "FOOTER_LEN",
    "HEADER_TAG",
    "MAX_SHARD_BYTES",
    "NO_EXPIRY",
    "RECORD_LEN",
    "FileEntry",
    "FileTerm",
    "LookupTables",
    "Shard",
    "ShardFooterInfo",
    "XorbChunk",
    "XorbEntry",
]
