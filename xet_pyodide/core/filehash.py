"""File hashing: the Xet file hash (plus size and SHA-256) of a byte stream.

:class:`FileHasher` is sans-I/O: ``update`` it with blocks in order, then ``finish``.
:func:`hash_files` is the convenience that reads local files in bounded blocks with it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .chunking import Chunker
from .hashes import MerkleHash, file_hash, hash_chunks

#: Read size of :func:`hash_files`; memory use is about this plus one chunk.
DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileHashInfo:
    """What hashing one file yields. ``sha256`` is the ordinary hex digest."""

    path: str
    hash: MerkleHash
    size: int
    sha256: str

    def to_json(self) -> dict[str, str | int]:
        return {
            "path": self.path,
            "hash": self.hash.hex(),
            "size": self.size,
            "sha256": self.sha256,
        }


class FileHasher:
    """Incremental Xet file hash. Keeps only the chunk hashes and sizes, not the data."""

    def __init__(self, *, sha256: bool = True) -> None:
        self._chunker = Chunker()
        self._sha = hashlib.sha256() if sha256 else None
        self.chunk_hashes: list[MerkleHash] = []
        self.chunk_sizes: list[int] = []
        self._size = 0
        self._result: MerkleHash | None = None

    @property
    def size(self) -> int:
        return self._size

    def update(self, block: bytes | bytearray | memoryview) -> None:
        if self._result is not None:
            raise ValueError("FileHasher already finished")
        self._size += len(block)
        if self._sha is not None:
            self._sha.update(block)
        self._add_chunks(self._chunker.feed(block))

    def finish(self) -> MerkleHash:
        """The file hash (32 zero bytes for an empty stream). Idempotent."""
        if self._result is None:
            self._add_chunks(self._chunker.finish())
            self._result = file_hash(list(zip(self.chunk_hashes, self.chunk_sizes, strict=True)))
        return self._result

    def sha256_hex(self) -> str:
        if self._sha is None:
            raise ValueError("this FileHasher does not compute SHA-256")
        return self._sha.hexdigest()

    def _add_chunks(self, chunks: list[bytes]) -> None:
        if chunks:
            self.chunk_hashes += hash_chunks(chunks)
            self.chunk_sizes += [len(c) for c in chunks]


def hash_bytes(data: bytes | bytearray | memoryview) -> MerkleHash:
    """Xet file hash of an in-memory file."""
    hasher = FileHasher(sha256=False)
    hasher.update(data)
    return hasher.finish()


def hash_files(
    paths: Iterable[str | os.PathLike[str]], *, block_size: int = DEFAULT_BLOCK_SIZE
) -> list[FileHashInfo]:
    """Hash local files (streamed in ``block_size`` reads). Raises ``OSError`` if one can't
    be read."""
    results = []
    for path in paths:
        hasher = FileHasher()
        with open(path, "rb") as f:
            while block := f.read(block_size):
                hasher.update(block)
        results.append(
            FileHashInfo(os.fspath(path), hasher.finish(), hasher.size, hasher.sha256_hex())
        )
    return results


__all__ = ["DEFAULT_BLOCK_SIZE", "FileHashInfo", "FileHasher", "hash_bytes", "hash_files"]
