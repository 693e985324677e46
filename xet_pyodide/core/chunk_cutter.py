"""Cutting a file's byte stream into chunks block by block: the bookkeeping every chunk hasher
shares, in-process (:class:`xet_pyodide.session.hasher.InProcessChunkHasher`) or on a worker
pool (:mod:`xet_pyodide.io.pool_hasher`), so both cut a stream the same way.

:class:`ChunkCutter` applies the boundary rules (:class:`~.chunking.BoundaryFinder`) to each
block's gear candidates, keeps the bytes carried over to the next block and the 63-byte tail a
position-independent scan of the next block needs; :class:`Cut` is what one block completes;
:class:`ChunkBatch` is what a hasher answers: complete chunks and their hashes. Sans-I/O: no
hashing, no kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from .chunking import GEAR_WINDOW_PREFIX, BoundaryFinder
from .hashes import HASH_LEN

Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class ChunkBatch:
    """Complete chunks in stream order and their raw chunk hashes (32 bytes each, concatenated)."""

    chunks: list[memoryview] = field(default_factory=list)
    hashes: bytes = b""

    def __len__(self) -> int:
        return len(self.chunks)

    def hash_list(self) -> list[bytes]:
        """The raw hashes, one ``bytes`` of 32 per chunk."""
        return [self.hashes[k : k + HASH_LEN] for k in range(0, len(self.hashes), HASH_LEN)]


@dataclass(slots=True)
class Cut:
    """What one block completes: ``straddler`` is the chunk that began in an earlier block and
    ends in this one (its bytes assembled), then come the chunks lying wholly inside the block,
    back to back from offset ``start``, with sizes ``lengths``."""

    straddler: bytes | None = None
    start: int = 0
    lengths: list[int] = field(default_factory=list)

    @property
    def inner_end(self) -> int:
        """Block offset just after the last inner chunk."""
        return self.start + sum(self.lengths)

    def inner_chunks(self, block: memoryview) -> list[memoryview]:
        """The inner chunks as views of ``block`` (no copy)."""
        chunks = []
        pos = self.start
        for n in self.lengths:
            chunks.append(block[pos : pos + n])
            pos += n
        return chunks


class ChunkCutter:
    """Per-file stream bookkeeping shared by the chunk hashers.

    It owns the file's :class:`~.chunking.BoundaryFinder`, the bytes after the
    last boundary (the *carry*, completed by a later block or flushed by :meth:`finish`) and
    the last 63 bytes of the stream (:attr:`tail`, the history a position-independent scan of
    the next block needs). It never hashes; callers hash what :meth:`cut` returns their own way.

    The tail and the cut are advanced separately because a pipelined hasher submits (and
    needs the tail of) a block before it can cut the previous one.
    """

    __slots__ = ("_carry", "_finder", "_tail")

    def __init__(self) -> None:
        self._finder = BoundaryFinder()
        self._carry = bytearray()  # bytes of the unfinished chunk (after the last boundary)
        self._tail = b""  # last (up to) 63 bytes remembered

    @property
    def position(self) -> int:
        """Bytes cut so far."""
        return self._finder.position

    @property
    def tail(self) -> bytes:
        """The last (up to) 63 bytes passed to :meth:`remember_tail`."""
        return self._tail

    def remember_tail(self, block: memoryview) -> None:
        """Record that ``block`` follows the stream so far (for :attr:`tail`)."""
        if len(block) >= GEAR_WINDOW_PREFIX:
            self._tail = bytes(block[-GEAR_WINDOW_PREFIX:])
        else:
            self._tail = (self._tail + bytes(block))[-GEAR_WINDOW_PREFIX:]

    def cut(
        self, length: int, candidates: Sequence[int], read: Callable[[int, int], Buffer]
    ) -> Cut:
        """Apply the boundary rules to the next block of the stream.

        ``candidates`` are the block's gear candidates (offsets from its start, sorted);
        ``read(start, end)`` returns the block's bytes ``[start, end)``. Only the bytes that
        join the carry are read, so a block that sits elsewhere (a worker pool's shared buffer)
        is not copied whole.
        """
        block_start = self._finder.position
        ends = [e - block_start for e in self._finder.push(length, candidates)]
        if not ends:
            self._carry += read(0, length)
            return Cut()
        cut = Cut()
        if self._carry:  # the first chunk began in an earlier block
            self._carry += read(0, ends[0])
            cut.straddler, self._carry = bytes(self._carry), bytearray()
            cut.start = ends[0]
            ends = ends[1:]
        cut.lengths = [b - a for a, b in pairwise([cut.start, *ends])]
        pos = ends[-1] if ends else cut.start
        if pos < length:
            self._carry += read(pos, length)
        return cut

    def finish(self) -> bytes | None:
        """End of stream: the last chunk (the carry), or None if nothing is left."""
        ends = self._finder.finish()
        if not ends or not self._carry:
            return None
        last, self._carry = bytes(self._carry), bytearray()
        return last


__all__ = ["ChunkBatch", "ChunkCutter", "Cut"]
