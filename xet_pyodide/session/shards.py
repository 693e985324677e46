"""Shards of a commit: file entries + the session's new xorbs, split at the 64 MiB limit.

A file's terms are built while it is processed, pointing at :class:`~.packing.XorbRef` objects
(a draft's final hash is only known once it is sealed). Here they are resolved to xorb hashes,
adjacent terms of the same xorb merged, and the per-term verification hashes computed in one
kernel call per file: terms cover the file's chunks in order, so their hash ranges are
consecutive slices of the file's concatenated chunk hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.hashes import HASH_LEN, VERIFICATION_KEY, MerkleHash, hashes_from_digests
from ..core.shard import MAX_SHARD_BYTES, serialize_shard
from ..core.shard_model import RECORD_LEN, FileEntry, FileTerm, Shard, XorbEntry
from ..kernels import get_kernels
from .packing import XorbRef, resolve


@dataclass(slots=True)
class PendingTerm:
    """A run of consecutive chunks of one xorb ref, as recorded during processing."""

    ref: XorbRef
    start: int
    end: int
    size: int


@dataclass(slots=True)
class FileRecord:
    """A processed file, ready to be listed in a shard."""

    file_hash: MerkleHash
    chunk_hashes: bytes  # raw, 32 bytes per chunk, file order
    chunk_sizes: list[int]
    terms: list[PendingTerm] = field(default_factory=list)
    #: Ordinary SHA-256 digest for the metadata extension, or None to omit it.
    sha256: bytes | None = None


def resolve_terms(terms: list[PendingTerm]) -> list[tuple[FileTerm, int]]:
    """Final terms with the number of chunks each covers (resolves refs, merges neighbours)."""
    out: list[list] = []  # [xorb hash, start, end, size]
    for term in terms:
        ref, start = resolve(term.ref, term.start)
        if ref.hash is None:
            raise RuntimeError("a term references a xorb that was never sealed")
        end = start + (term.end - term.start)
        if out and out[-1][0] == ref.hash and out[-1][2] == start:
            out[-1][2] = end
            out[-1][3] += term.size
        else:
            out.append([ref.hash, start, end, term.size])
    return [(FileTerm(h, s, e, size), e - s) for h, s, e, size in out]


def file_entry(record: FileRecord) -> FileEntry:
    resolved = resolve_terms(record.terms)
    terms = [term for term, _ in resolved]
    verification: list[MerkleHash] = []
    if terms:
        lengths = [count * HASH_LEN for _, count in resolved]
        digests = get_kernels().blake3_keyed_many(record.chunk_hashes, lengths, VERIFICATION_KEY)
        verification = hashes_from_digests(digests)
    return FileEntry(record.file_hash, terms, verification, record.sha256)


def _file_records_len(entry: FileEntry) -> int:
    return RECORD_LEN * (1 + 2 * len(entry.terms) + (1 if entry.sha256 is not None else 0))


def _xorb_records_len(entry: XorbEntry) -> int:
    return RECORD_LEN * (1 + len(entry.chunks))


def build_shards(
    files: list[FileEntry], xorbs: list[XorbEntry], *, max_bytes: int = MAX_SHARD_BYTES
) -> list[bytes]:
    """Upload-form shards holding every file and xorb, each at most ``max_bytes``.

    Usually one shard. When splitting, xorb blocks come first, so every shard that lists a
    file comes after (or is) the shard registering the session xorbs its terms use.
    """
    overhead = 3 * RECORD_LEN  # header + two bookends
    shards: list[Shard] = []
    current = Shard()
    size = overhead
    items: list[tuple[int, FileEntry | XorbEntry]] = [(_xorb_records_len(x), x) for x in xorbs]
    items += [(_file_records_len(f), f) for f in files]
    for length, item in items:
        if overhead + length > max_bytes:
            raise ValueError("a single file or xorb entry does not fit in one shard")
        if size + length > max_bytes:
            shards.append(current)
            current, size = Shard(), overhead
        if isinstance(item, XorbEntry):
            current.xorbs.append(item)
        else:
            current.files.append(item)
        size += length
    if current.files or current.xorbs:
        shards.append(current)
    return [serialize_shard(shard) for shard in shards]


__all__ = ["FileRecord", "PendingTerm", "build_shards", "file_entry", "resolve_terms"]
