"""From "where is each chunk of this file" to the file's shard entry.

After dedup and xorb packing every chunk of a file lives at some ``(xorb hash, chunk index)``.
:func:`merge_terms` turns that per-chunk list into terms, merging runs of consecutive chunks of
one xorb as hf_xet does; :func:`build_file_entry` adds the file hash, the per-term verification
hashes (computed from the file's own, plain chunk hashes) and the sha256.
"""

from __future__ import annotations

from collections.abc import Sequence

from .hashes import MerkleHash, file_hash, verification_hash
from .shard_model import FileEntry, FileTerm

#: A chunk's location: (xorb hash, chunk index in that xorb).
ChunkLocation = tuple[MerkleHash, int]


def merge_terms(
    locations: Sequence[ChunkLocation], sizes: Sequence[int]
) -> list[tuple[FileTerm, int]]:
    """Terms for chunks at ``locations`` (file order) with uncompressed ``sizes``.

    Returns ``(term, first file chunk index of the term)`` pairs so callers can relate terms
    back to the file's chunks.
    """
    if len(locations) != len(sizes):
        raise ValueError("one location per chunk size expected")
    out: list[tuple[FileTerm, int]] = []
    run_start = 0
    for i in range(1, len(locations) + 1):
        if i < len(locations):
            (prev_xorb, prev_index), (xorb, index) = locations[i - 1], locations[i]
            if xorb == prev_xorb and index == prev_index + 1:
                continue
        first_xorb, first_index = locations[run_start]
        term = FileTerm(
            first_xorb, first_index, first_index + (i - run_start), sum(sizes[run_start:i])
        )
        out.append((term, run_start))
        run_start = i
    return out


def build_file_entry(
    chunk_hashes: Sequence[MerkleHash],
    chunk_sizes: Sequence[int],
    locations: Sequence[ChunkLocation],
    sha256: bytes | None = None,
    *,
    with_verification: bool = True,
) -> FileEntry:
    """The shard entry of a file whose chunks (hashes, sizes) are stored at ``locations``.

    ``sha256`` is the ordinary digest (pass ``bytes(32)`` for an empty file to mimic hf_xet).
    """
    entries = list(zip(chunk_hashes, chunk_sizes, strict=True))
    merged = merge_terms(locations, chunk_sizes)
    terms = [term for term, _ in merged]
    verification = None
    if with_verification:
        verification = [
            verification_hash(chunk_hashes[first : first + term.chunk_end - term.chunk_start])
            for term, first in merged
        ]
    return FileEntry(file_hash(entries), terms, verification, sha256)


__all__ = ["ChunkLocation", "build_file_entry", "merge_terms"]
