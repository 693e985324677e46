"""Content-defined chunking, exactly as xet-core cuts files.

Two layers:

* :class:`BoundaryFinder` turns *candidate positions* into chunk boundaries. A candidate is an
  offset after whose byte the gear rolling hash has its top 16 bits clear. The finder applies
  the size rules: a cut is allowed once the chunk has ``MIN_CHUNK`` bytes and forced at
  ``MAX_CHUNK``. It never touches the data, so candidates may come from anywhere (the kernel
  on this thread, or a pool of workers scanning blocks in parallel).
* :class:`Chunker` is the streaming front end: feed blocks, get complete chunks.

Why candidates from a continuous scan are enough: xet-core resets the rolling hash to 0 at every
boundary, but the hash only depends on the last 64 bytes, and an admissible cut needs at least
8192 bytes since the reset. So at every position where a cut is *possible*, the continuous hash
and the reset hash agree. The same argument lets a block be scanned on its own, prefixed with
the 63 bytes before it (:func:`scan_block`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from ..kernels import get_kernels

TARGET_CHUNK = 65536
MIN_CHUNK = TARGET_CHUNK // 8
MAX_CHUNK = TARGET_CHUNK * 2

#: Bytes of history the gear hash depends on, minus the current byte.
GEAR_WINDOW_PREFIX = 63

Buffer = bytes | bytearray | memoryview


def scan_block(block: Buffer, previous_tail: Buffer = b"") -> list[int]:
    """Candidates of ``block`` computed without the rolling state of earlier blocks.

    ``previous_tail`` is the stream's bytes just before ``block`` (at least the last 63 of them,
    or everything before the block if the stream is shorter). Scans ``tail + block`` from state
    0 and returns candidate offsets relative to ``block`` — identical to what a continuous scan
    would report. This is the unit of work a worker pool can run in parallel.
    """
    prefix = bytes(previous_tail[-GEAR_WINDOW_PREFIX:]) if previous_tail else b""
    data = b"".join((prefix, block)) if prefix else block
    candidates, _ = get_kernels().gear_scan(data, 0)
    skip = len(prefix)
    if not skip:
        return candidates
    start = bisect_left(candidates, skip)
    return [c - skip for c in candidates[start:]]


class BoundaryFinder:
    """Applies the min/max chunk-size rules to candidate positions of a stream.

    Push the stream's blocks in order as ``(length, candidates)``; each call returns the chunk
    boundaries (absolute, exclusive end offsets) that became final. Memory is O(1): nothing of
    the data is kept.
    """

    __slots__ = ("_chunk_start", "_position")

    def __init__(self) -> None:
        self._chunk_start = 0  # absolute offset where the current chunk starts
        self._position = 0  # absolute offset of the end of the data pushed so far

    @property
    def position(self) -> int:
        """Total number of bytes pushed."""
        return self._position

    @property
    def chunk_start(self) -> int:
        """Absolute offset of the first byte not yet assigned to a complete chunk."""
        return self._chunk_start

    def push(self, length: int, candidates: Sequence[int]) -> list[int]:
        """Consume the next ``length`` bytes, given their sorted relative candidate offsets."""
        base = self._position
        end_of_block = base + length
        ends: list[int] = []
        start = self._chunk_start
        ci = 0
        n = len(candidates)
        while True:
            # Candidate c means "cut after byte base + c", i.e. a chunk ending at base + c + 1.
            ci = bisect_left(candidates, start + MIN_CHUNK - 1 - base, ci, n)
            forced = start + MAX_CHUNK
            if ci < n and base + candidates[ci] + 1 <= forced:
                cut = base + candidates[ci] + 1
                ci += 1
            elif forced <= end_of_block:
                cut = forced
            else:
                break
            ends.append(cut)
            start = cut
        self._chunk_start = start
        self._position = end_of_block
        return ends

    def finish(self) -> list[int]:
        """End of stream: the remainder (if any) is the last chunk."""
        if self._position > self._chunk_start:
            self._chunk_start = self._position
            return [self._position]
        return []


class Chunker:
    """Streaming chunker: ``feed`` blocks of any size, receive complete chunks as ``bytes``.

    The output does not depend on how the input is split into feeds. Only the bytes of the
    current unfinished chunk are retained (< ``MAX_CHUNK`` between calls).
    """

    def __init__(self) -> None:
        self._finder = BoundaryFinder()
        self._pending = bytearray()  # data of the unfinished chunk
        self._state: int | None = 0  # gear state after the last byte; None = unknown
        self._tail = b""  # last 63 bytes of the stream (used when the state is unknown)

    @property
    def position(self) -> int:
        """Number of bytes fed so far."""
        return self._finder.position

    def feed(self, block: Buffer, candidates: Sequence[int] | None = None) -> list[bytes]:
        """Add the next block; return the chunks it completed.

        ``candidates`` may carry the block's candidates computed elsewhere (see
        :func:`scan_block`); otherwise the kernel scans the block here.
        """
        if not len(block):
            return []
        if candidates is None:
            candidates = self._scan(block)
        else:
            self._state = None
        self._remember_tail(block)
        ends = self._finder.push(len(block), candidates)
        return self._cut(block, ends)

    def finish(self) -> list[bytes]:
        """End of input: returns the final chunk, if any bytes are left."""
        self._finder.finish()
        if not self._pending:
            return []
        last = bytes(self._pending)
        self._pending = bytearray()
        return [last]

    def _scan(self, block: Buffer) -> list[int]:
        if self._state is None:
            return scan_block(block, self._tail)
        candidates, self._state = get_kernels().gear_scan(block, self._state)
        return candidates

    def _remember_tail(self, block: Buffer) -> None:
        if len(block) >= GEAR_WINDOW_PREFIX:
            self._tail = bytes(block[-GEAR_WINDOW_PREFIX:])
        else:
            self._tail = (self._tail + bytes(block))[-GEAR_WINDOW_PREFIX:]

    def _cut(self, block: Buffer, ends: list[int]) -> list[bytes]:
        pending = self._pending
        block_start = self._finder.position - len(block)
        if not ends:
            pending += block
            return []
        view = memoryview(block).cast("B")
        chunks: list[bytes] = []
        pos = 0  # offset into block already consumed
        for end in ends:
            rel = end - block_start
            if pending:
                pending += view[pos:rel]
                chunks.append(bytes(pending))
                pending.clear()
            else:
                chunks.append(bytes(view[pos:rel]))
            pos = rel
        pending += view[pos:]
        return chunks


def chunk_boundaries(data: Buffer) -> list[int]:
    """Exclusive end offsets of the chunks of ``data`` (a whole file in memory)."""
    finder = BoundaryFinder()
    candidates, _ = get_kernels().gear_scan(data, 0)
    return finder.push(len(data), candidates) + finder.finish()


def chunk_data(data: Buffer) -> list[bytes]:
    """The chunks of ``data`` (a whole file in memory)."""
    view = memoryview(data).cast("B")
    out: list[bytes] = []
    start = 0
    for end in chunk_boundaries(view):
        out.append(bytes(view[start:end]))
        start = end
    return out


__all__ = [
    "MAX_CHUNK",
    "MIN_CHUNK",
    "TARGET_CHUNK",
    "BoundaryFinder",
    "Chunker",
    "chunk_boundaries",
    "chunk_data",
    "scan_block",
]
