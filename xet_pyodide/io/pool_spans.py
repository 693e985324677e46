"""Download verification hashing on a :class:`~xet_pyodide.io.workers.WorkerPool` (Pyodide).

A download hashes every decoded chunk (keyed BLAKE3) to recompute the file hash. On the page's
thread that competes with decoding and with the JS glue; :class:`PoolSpanHasher` hands it to
the pool's workers instead: the chunks are copied into a slot of the shared buffer (at most
one slot's worth per round, cut at chunk boundaries) and the workers hash them in parallel
groups, while this thread goes on decoding the next range. Small spans stay on this thread
(a round trip costs more than hashing them).
"""

from __future__ import annotations

from typing import Any

from ..core.hashes import DATA_KEY
from ..kernels import get_kernels

#: Spans smaller than this are hashed on the calling thread.
LOCAL_BELOW = 1 << 20


class PoolSpanHasher:
    """``hash_spans(data, lengths)`` (see :class:`~xet_pyodide.session.hasher.
    InProcessChunkHasher`) on a worker pool."""

    def __init__(self, pool: Any, *, local_below: int = LOCAL_BELOW) -> None:
        self._pool = pool
        self._local_below = local_below

    async def hash_spans(self, data: memoryview, lengths: list[int]) -> bytes:
        view = memoryview(data).cast("B")
        if len(view) < self._local_below:
            return get_kernels().blake3_keyed_many(view, lengths, DATA_KEY)
        pool = self._pool
        slot = await pool.acquire()
        try:
            out = bytearray()
            first = pos = 0
            while first < len(lengths):
                last, size = first, 0
                while last < len(lengths) and size + lengths[last] <= slot.data_cap:
                    size += lengths[last]
                    last += 1
                if last == first:  # cannot happen with chunks <= 128 KiB and 16 MiB slots
                    raise ValueError("a chunk does not fit a worker slot")
                pool.write(slot.data, view[pos : pos + size])
                out += await pool.hash(slot, 0, lengths[first:last])
                first, pos = last, pos + size
            return bytes(out)
        finally:
            pool.release(slot)


#: Smallest pool that hashes downloads. Measured on 2 cores (bench/download.py): a 2-worker
#: pool made downloads ~10% slower than hashing on the page's thread — the workers compete
#: with the network service and the decoding for the same cores.
MIN_POOL_SIZE = 3


def span_hasher_for(hasher_factory: Any) -> PoolSpanHasher | None:
    """A :class:`PoolSpanHasher` when ``hasher_factory`` names a worker pool (``.pool``: a
    :class:`~xet_pyodide.io.pool_hasher.PoolHasherFactory`, what the browser front door passes
    as ``chunk_hasher_factory``) of at least :data:`MIN_POOL_SIZE` workers, else None."""
    pool = getattr(hasher_factory, "pool", None)
    if pool is None or not all(hasattr(pool, a) for a in ("acquire", "release", "write", "hash")):
        return None
    if getattr(pool, "size", 0) < MIN_POOL_SIZE:
        return None
    return PoolSpanHasher(pool)


__all__ = ["LOCAL_BELOW", "MIN_POOL_SIZE", "PoolSpanHasher", "span_hasher_for"]
