"""The chunk-and-hash stage: bytes in, complete chunks and their hashes out.

:class:`ChunkHasher` is the pluggable interface; :class:`InProcessChunkHasher` runs it with
the kernels on the calling thread. A browser worker pool can subclass it and override the two
async hooks — :meth:`InProcessChunkHasher.find_candidates` (gear candidates of a block; a pool
scans ``tail + block`` from state 0 in parallel slices, see
:func:`xet_pyodide.core.chunking.scan_block`) and :meth:`InProcessChunkHasher.hash_spans`
(keyed BLAKE3 of consecutive chunks) — and keep the boundary logic here, so results are
identical by construction.

Chunks come back as ``memoryview`` slices of the caller's block whenever a chunk lies inside
one block (no copy); only a chunk straddling two blocks is assembled into new bytes.

:class:`ChunkCutter` is the per-file bookkeeping every hasher shares (boundary rules, the
bytes carried over to the next block, the final chunk, the 63-byte tail): the pool's hasher
(:mod:`xet_pyodide.io.pool_hasher`) uses it too, so both cut a stream the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol, runtime_checkable

from ..core.chunking import GEAR_WINDOW_PREFIX, BoundaryFinder
from ..core.hashes import DATA_KEY, HASH_LEN
from ..kernels import get_kernels

Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class ChunkBatch:
    """Complete chunks in stream order and their raw chunk hashes (32 bytes each, concatenated)."""

    chunks: list[memoryview] = field(default_factory=list)
    hashes: bytes = b""

    def __len__(self) -> int:
        return len(self.chunks)

    def hash_at(self, i: int) -> bytes:
        return self.hashes[i * HASH_LEN : (i + 1) * HASH_LEN]


@runtime_checkable
class ChunkHasher(Protocol):
    """One instance per file. ``update`` with the file's blocks in order, then ``finish``.

    Blocks must not be modified afterwards (chunks may be views into them).
    """

    async def update(self, block: memoryview) -> ChunkBatch: ...

    async def finish(self) -> ChunkBatch: ...


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

    It owns the file's :class:`~xet_pyodide.core.chunking.BoundaryFinder`, the bytes after the
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


class InProcessChunkHasher:
    """Default :class:`ChunkHasher`: kernels on this thread, one hash call per run of chunks."""

    def __init__(self) -> None:
        self._cutter = ChunkCutter()
        self._state = 0  # rolling gear state after the last byte (continuous scan)

    @property
    def position(self) -> int:
        return self._cutter.position

    @property
    def tail(self) -> bytes:
        """The last (up to) 63 bytes fed so far: the prefix a parallel scan of the next block
        needs."""
        return self._cutter.tail

    async def find_candidates(self, block: memoryview) -> list[int]:
        """Gear-hash candidate offsets of ``block`` (relative, sorted). Override for a pool:
        scan ``self.tail + block`` from state 0 and drop offsets below ``len(self.tail)``."""
        candidates, self._state = get_kernels().gear_scan(block, self._state)
        return candidates

    #: Hashes on the calling thread with the kernels (see ``download_fetch.SpanHasher``).
    in_process = True

    async def hash_spans(self, data: memoryview, lengths: list[int]) -> bytes:
        """Chunk hashes of consecutive chunks laid out back to back in ``data``."""
        return get_kernels().blake3_keyed_many(data, lengths, DATA_KEY)

    async def update(self, block: Buffer) -> ChunkBatch:
        view = memoryview(block).cast("B")
        if not len(view):
            return ChunkBatch()
        candidates = await self.find_candidates(view)  # may use the tail before this block
        cut = self._cutter.cut(len(view), candidates, lambda a, b: view[a:b])
        self._cutter.remember_tail(view)
        chunks: list[memoryview] = []
        digests: list[bytes] = []
        if cut.straddler is not None:
            straddling = memoryview(cut.straddler)
            chunks.append(straddling)
            digests.append(await self.hash_spans(straddling, [len(straddling)]))
        if cut.lengths:
            chunks += cut.inner_chunks(view)
            digests.append(await self.hash_spans(view[cut.start : cut.inner_end], cut.lengths))
        return ChunkBatch(chunks, b"".join(digests))

    async def finish(self) -> ChunkBatch:
        last = self._cutter.finish()
        if last is None:
            return ChunkBatch()
        view = memoryview(last)
        return ChunkBatch([view], await self.hash_spans(view, [len(view)]))


__all__ = ["ChunkBatch", "ChunkCutter", "ChunkHasher", "Cut", "InProcessChunkHasher"]
