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
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


class InProcessChunkHasher:
    """Default :class:`ChunkHasher`: kernels on this thread, one hash call per run of chunks."""

    def __init__(self) -> None:
        self._finder = BoundaryFinder()
        self._state = 0  # rolling gear state after the last byte (continuous scan)
        self._carry = bytearray()  # bytes of the unfinished chunk
        self._tail = b""  # last 63 bytes of the stream, for position-independent scans

    @property
    def position(self) -> int:
        return self._finder.position

    @property
    def tail(self) -> bytes:
        """The last (up to) 63 bytes fed so far: the prefix a parallel scan of the next block
        needs."""
        return self._tail

    async def find_candidates(self, block: memoryview) -> list[int]:
        """Gear-hash candidate offsets of ``block`` (relative, sorted). Override for a pool:
        scan ``self.tail + block`` from state 0 and drop offsets below ``len(self.tail)``."""
        candidates, self._state = get_kernels().gear_scan(block, self._state)
        return candidates

    async def hash_spans(self, data: memoryview, lengths: list[int]) -> bytes:
        """Chunk hashes of consecutive chunks laid out back to back in ``data``."""
        return get_kernels().blake3_keyed_many(data, lengths, DATA_KEY)

    async def update(self, block: Buffer) -> ChunkBatch:
        view = memoryview(block).cast("B")
        if not len(view):
            return ChunkBatch()
        candidates = await self.find_candidates(view)
        start = self._finder.position
        ends = self._finder.push(len(view), candidates)
        self._remember_tail(view)
        return await self._cut(view, start, ends)

    async def finish(self) -> ChunkBatch:
        ends = self._finder.finish()
        if not ends or not self._carry:
            return ChunkBatch()
        last = memoryview(bytes(self._carry))
        self._carry = bytearray()
        return ChunkBatch([last], await self.hash_spans(last, [len(last)]))

    def _remember_tail(self, view: memoryview) -> None:
        if len(view) >= GEAR_WINDOW_PREFIX:
            self._tail = bytes(view[-GEAR_WINDOW_PREFIX:])
        else:
            self._tail = (self._tail + bytes(view))[-GEAR_WINDOW_PREFIX:]

    async def _cut(self, view: memoryview, block_start: int, ends: list[int]) -> ChunkBatch:
        if not ends:
            self._carry += view
            return ChunkBatch()
        chunks: list[memoryview] = []
        digests: list[bytes] = []
        pos = 0
        if self._carry:  # the first chunk straddles the previous block(s) and this one
            first_end = ends[0] - block_start
            self._carry += view[:first_end]
            straddling = memoryview(bytes(self._carry))
            self._carry = bytearray()
            chunks.append(straddling)
            digests.append(await self.hash_spans(straddling, [len(straddling)]))
            pos = first_end
            ends = ends[1:]
        if ends:
            lengths = []
            run_start = pos
            for end in ends:
                rel = end - block_start
                chunks.append(view[pos:rel])
                lengths.append(rel - pos)
                pos = rel
            digests.append(await self.hash_spans(view[run_start:pos], lengths))
        if pos < len(view):
            self._carry += view[pos:]
        return ChunkBatch(chunks, b"".join(digests))


__all__ = ["ChunkBatch", "ChunkHasher", "InProcessChunkHasher"]
