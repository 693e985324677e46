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

:class:`~xet_pyodide.core.chunk_cutter.ChunkCutter` is the per-file bookkeeping every hasher
shares (boundary rules, the bytes carried over to the next block, the final chunk, the 63-byte
tail): the pool's hasher (:mod:`xet_pyodide.io.pool_hasher`) uses it too, so both cut a stream
the same way. :class:`ChunkBatch`, the answer of every hasher, lives beside it (re-exported
here).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..core.chunk_cutter import ChunkBatch, ChunkCutter
from ..core.hashes import DATA_KEY
from ..kernels import get_kernels

Buffer = bytes | bytearray | memoryview


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


__all__ = ["ChunkBatch", "ChunkHasher", "InProcessChunkHasher"]
