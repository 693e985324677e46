"""The session's chunk-and-hash stage on a :class:`~xet_pyodide.io.workers.WorkerPool`.

Each block goes through three steps, as a *job* (an asyncio task):

1. **scan** — the block and the 63 bytes before it are copied into a slot of the shared buffer
   and the workers compute its gear candidates in parallel slices (each slice scanned from
   state 0 with a 63-byte overlap: position independent, see
   :func:`xet_pyodide.core.chunking.scan_block`) — or, for Blob blocks read while more
   follow, one worker reads and scans the whole block (the parallelism is across blocks);
2. **cut** — in stream order (a job waits for the previous one), the candidates go through the
   file's :class:`~xet_pyodide.core.chunk_cutter.ChunkCutter`, the same bookkeeping (boundary
   rules, carry, last chunk) as :class:`~xet_pyodide.session.hasher.InProcessChunkHasher`,
   hence identical chunks;
3. **hash** — the chunks lying inside the block are hashed by the workers straight from the
   slot (byte-balanced groups, one kernel call each); the chunk straddling the previous block
   is assembled here and hashed on this thread (one chunk, ≤ 128 KiB).

Jobs are pipelined one block deep: ``update(block k)`` starts job *k* and returns the chunks
of block *k - 1*, so the workers scan and hash block *k* while the caller deduplicates,
compresses and packs block *k - 1* (the :class:`~xet_pyodide.session.hasher.ChunkHasher`
contract allows returning chunks later; :meth:`PooledChunkHasher.finish` returns the rest).
Blocks under :data:`LOCAL_BELOW` bytes are processed on this thread (a round trip would cost
more), still in order.

Blobs skip this thread's copies: :meth:`PooledChunkHasher.read_blob` (uploads) has the
workers read each block from the ``Blob`` straight into a slot and scan it, several blocks
ahead; this thread copies the block out of the slot once (the session needs the chunk bytes)
and :meth:`~PooledChunkHasher.update` reuses the slot and the scan. Given a
:class:`~xet_pyodide.io.pool_sha.Sha256Chain`, it also has the workers chain the file's
SHA-256 from the slots (:mod:`xet_pyodide.io.pool_sha`).
:meth:`PooledChunkHasher.hash_blob` (``hashFile()``) never brings the data into Python:
the workers read, scan and hash, with as many blocks in flight as the pool has free slots,
and this thread only applies the boundary rules.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..core.chunk_cutter import ChunkBatch, ChunkCutter, Cut
from ..core.chunking import scan_block
from ..core.hashes import DATA_KEY
from ..kernels import get_kernels
from .blob import blob_size, read_blob, read_slice
from .pool_sha import Sha256Chain
from .workers import Slot, WorkerPool, retrieve_exception

#: Blocks smaller than this stay on the calling thread.
LOCAL_BELOW = 512 * 1024
#: Blocks a hasher keeps in flight beyond the one it returns.
LAG = 1
#: Blob blocks :meth:`PooledChunkHasher.read_blob` has the workers read and scan ahead of
#: the one it yields (each holds a slot of the shared buffer).
READ_AHEAD = 2
#: :meth:`PooledChunkHasher.read_blob` reads blocks smaller than this on the calling thread
#: (the session gathers writes under 1 MiB into new buffers, which would not be recognised).
PREPARED_MIN = 1 << 20

Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class _Result:
    sizes: list[int] = field(default_factory=list)
    hashes: bytes = b""
    chunks: list[memoryview] | None = None  # None for blocks that never entered Python


@dataclass(slots=True)
class _Prepared:
    """A Blob block the workers are reading into ``slot`` and scanning."""

    length: int
    slot: Slot
    scan: asyncio.Future[list[int]]
    data: bytes | None = None  # its bytes in Python, once copied out of the slot
    sha_free: asyncio.Future[None] | None = None  # the SHA-256 chain is done with the slot


@dataclass(slots=True)
class _Job:
    length: int
    view: memoryview | None  # the block's bytes, if they are in Python
    slot: Slot | None  # where the block sits in the shared buffer, if it went to the pool
    prefix: bytes  # the up to 63 stream bytes before the block
    scan: asyncio.Future[list[int]] | None
    sha_free: asyncio.Future[None] | None = None  # (see _Prepared)


class PoolHasherFactory:
    """A session's ``chunk_hasher_factory`` whose hashers run on ``pool``: each call gives a
    fresh per-file :class:`PooledChunkHasher`. It names its :attr:`pool`, so the download side
    can hash on the same workers (:func:`~xet_pyodide.io.pool_spans.span_hasher_for`)."""

    __slots__ = ("pool",)

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def __call__(self) -> PooledChunkHasher:
        return PooledChunkHasher(self.pool)


class PooledChunkHasher:
    """:class:`~xet_pyodide.session.hasher.ChunkHasher` on a worker pool (see module doc)."""

    def __init__(self, pool: WorkerPool, *, local_below: int = LOCAL_BELOW) -> None:
        self._pool = pool
        self._local_below = local_below
        # Boundary rules, carry and last chunk as in InProcessChunkHasher. Its tail is that of
        # the blocks *submitted* (prefixes of the next scans), ahead of the cuts.
        self._cutter = ChunkCutter()
        self._jobs: deque[asyncio.Task[_Result]] = deque()
        self._cut_done: asyncio.Future[None] | None = None
        self._prepared: deque[_Prepared] = deque()

    # ------------------------------------------------------------------ ChunkHasher

    async def update(self, block: Buffer) -> ChunkBatch:
        view = memoryview(block).cast("B")
        if self._prepared:
            first = self._prepared[0]
            if view.obj is first.data and len(view) == first.length:
                self._prepared.popleft()
                self._cutter.remember_tail(view)
                job = _Job(first.length, view, first.slot, b"", first.scan, first.sha_free)
                self._enqueue(job)
                return _batch(await self._collect(LAG))
            self._drop_prepared()  # not the block read_blob yielded: scan it the usual way
        step = self._pool.slot_bytes
        for start in range(0, len(view), step):
            await self._submit(view[start : start + step])
        return _batch(await self._collect(LAG))

    async def finish(self) -> ChunkBatch:
        self._drop_prepared()
        return _batch([*await self._collect(0), self._last_chunk()])

    # ------------------------------------------------------------------ Blobs

    async def read_blob(
        self, blob: Any, *, block_size: int, sha256: Sha256Chain | None = None
    ) -> AsyncIterator[bytes]:
        """Yield a JS ``Blob``'s bytes in blocks of at most ``block_size`` (capped at the
        pool's slot size) for an upload: the workers read each block from the Blob straight
        into a slot and scan it, :data:`READ_AHEAD` blocks ahead; this thread only copies it
        out of the slot once. Pass every yielded block, whole and in order, to :meth:`update`
        (which then reuses the scan instead of copying the block back); close the iterator
        (``contextlib.aclosing``) if you stop early.

        ``sha256``: a chain (made on this pool) that gets the file's SHA-256 from the slots:
        each block is a link, the short last block read here is added as bytes, and the chain
        is closed after the last block (aborted if the iteration stops early). A slot is
        reused only once both its chunks and its link are done. A failed link fails the
        iteration at the next block, as a failed read does."""
        pool = self._pool
        step = max(1, min(block_size, pool.slot_bytes))
        stop = blob_size(blob)
        ahead: deque[_Prepared] = deque()
        pos = 0
        complete = False
        try:
            while pos < stop or ahead:
                while pos < stop and len(ahead) <= READ_AHEAD:
                    end = min(pos + step, stop)
                    if end - pos < PREPARED_MIN:
                        break
                    # Wait for a slot only when nothing is read ahead (the jobs of yielded
                    # blocks free theirs without us): several uploads never deadlock.
                    slot = await pool.acquire() if not ahead else pool.try_acquire()
                    if slot is None:
                        break
                    # whole blocks while more follow (READ_AHEAD keeps both workers busy)
                    scan = pool.read_scan(slot, blob, pos, end - pos, whole=end < stop)
                    prepared = _Prepared(end - pos, slot, scan)
                    if sha256 is not None:
                        prepared.sha_free = sha256.add_slot(slot.data, end - pos, scan)
                    ahead.append(prepared)
                    pos = end
                if not ahead:  # a short last block: read it here
                    end = min(pos + step, stop)
                    data = await read_slice(blob, pos, end)
                    pos = end
                    if sha256 is not None:
                        _raise_failed(sha256)
                        sha256.add_bytes(data)
                    yield data
                    continue
                prepared = ahead[0]
                await prepared.scan  # the bytes are in the slot (on failure: finally below)
                if sha256 is not None:
                    _raise_failed(sha256)
                ahead.popleft()
                prepared.data = pool.read(prepared.slot.data, prepared.length)
                self._prepared.append(prepared)
                yield prepared.data
            complete = True
            if sha256 is not None:
                sha256.close()
        finally:  # stopped early: free the slots of blocks no update() will take
            for prepared in ahead:
                _release_after_scan(pool, prepared)
            self._drop_prepared()
            if sha256 is not None and not complete:
                sha256.abort()

    async def hash_blob(
        self, blob: Any, *, block_size: int, sha256: Sha256Chain | None = None
    ) -> tuple[list[int], bytes]:
        """Chunk sizes and hashes of a whole JS ``Blob`` (``hashFile``): the workers read,
        scan and hash it; this thread only applies the boundary rules (and hashes the chunks
        that straddle two blocks). As many blocks are in flight as the pool has free slots.
        ``sha256``: a chain the workers feed from the same slots (every block is a link; see
        :meth:`read_blob`), closed at the end, aborted on failure."""
        pool = self._pool
        step = max(1, min(block_size, pool.slot_bytes))
        stop = blob_size(blob)
        results: list[_Result] = []
        complete = False
        try:
            for pos in range(0, stop, step):
                length = min(step, stop - pos)
                slot = await pool.acquire()
                scan = pool.read_scan(slot, blob, pos, length, whole=stop - pos > step)
                job = _Job(length, None, slot, b"", scan)
                if sha256 is not None:
                    job.sha_free = sha256.add_slot(slot.data, length, scan)
                self._enqueue(job)
                while self._jobs and self._jobs[0].done():
                    results.append(self._jobs.popleft().result())
                if sha256 is not None:
                    _raise_failed(sha256)
            found = [*results, *await self._collect(0), self._last_chunk()]
            complete = True
        finally:
            if sha256 is not None and complete:
                sha256.close()
            elif sha256 is not None:
                sha256.abort()
        return _sizes_and_hashes(found)

    def _drop_prepared(self) -> None:
        while self._prepared:
            _release_after_scan(self._pool, self._prepared.popleft())

    # ------------------------------------------------------------------ jobs

    async def _submit(self, view: memoryview) -> None:
        length = len(view)
        if length == 0:
            return
        pool = self._pool
        prefix = self._cutter.tail
        slot = scan = None
        if length >= self._local_below:
            slot = await pool.acquire()
            pool.write(slot.data - len(prefix), prefix)
            pool.write(slot.data, view)
            scan = pool.scan(slot, len(prefix), length)
        self._cutter.remember_tail(view)
        self._enqueue(_Job(length, view, slot, prefix, scan))

    def _enqueue(self, job: _Job) -> None:
        """Start ``job``; its cut waits for the previous job's (stream order)."""
        previous, self._cut_done = self._cut_done, asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._run(job, previous, self._cut_done))
        task.add_done_callback(retrieve_exception)
        self._jobs.append(task)

    async def _collect(self, keep: int) -> list[_Result]:
        results = []
        while len(self._jobs) > keep:
            results.append(await self._jobs.popleft())
        return results

    async def _run(
        self, job: _Job, previous: asyncio.Future[None] | None, cut_done: asyncio.Future[None]
    ) -> _Result:
        try:
            try:
                if job.scan is not None:
                    candidates = await job.scan
                else:
                    assert job.view is not None
                    candidates = scan_block(job.view, job.prefix)
                if previous is not None:
                    await previous
                cut = self._cutter.cut(job.length, candidates, partial(self._bytes, job))
            except BaseException as exc:
                cut_done.set_exception(exc)
                cut_done.exception()  # retrieved: the next job (if any) re-raises it
                raise
            cut_done.set_result(None)
            return await self._hash(job, cut)
        finally:
            if job.slot is not None:
                _release(self._pool, job.slot, job.sha_free)

    def _bytes(self, job: _Job, start: int, end: int) -> bytes | memoryview:
        if job.view is not None:
            return job.view[start:end]
        assert job.slot is not None
        return self._pool.read(job.slot.data + start, end - start)

    async def _hash(self, job: _Job, cut: Cut) -> _Result:
        """Hash what ``cut`` completed: the straddling chunk here, the inner chunks on the
        workers if the block is in a slot (else here)."""
        kernels = get_kernels()
        result = _Result()
        digests = []
        straddler, start, lengths = cut.straddler, cut.start, cut.lengths
        if straddler is not None:
            result.sizes.append(len(straddler))
            digests.append(kernels.blake3_keyed(straddler, DATA_KEY))
        if lengths:
            if job.slot is not None:
                digests.append(await self._pool.hash(job.slot, start, lengths))
            else:
                assert job.view is not None
                inner = job.view[start : cut.inner_end]
                digests.append(kernels.blake3_keyed_many(inner, lengths, DATA_KEY))
            result.sizes.extend(lengths)
        result.hashes = b"".join(digests)
        if job.view is not None:
            chunks = [memoryview(straddler)] if straddler is not None else []
            result.chunks = chunks + cut.inner_chunks(job.view)
        return result

    def _last_chunk(self) -> _Result:
        last = self._cutter.finish()
        if last is None:
            return _Result(chunks=[])
        digest = get_kernels().blake3_keyed(last, DATA_KEY)
        return _Result([len(last)], digest, [memoryview(last)])


def _release_after_scan(pool: WorkerPool, prepared: _Prepared) -> None:
    """Give an unused prepared block's slot back once the workers are done writing to it."""

    def release(future: asyncio.Future[list[int]]) -> None:
        retrieve_exception(future)
        _release(pool, prepared.slot, prepared.sha_free)

    prepared.scan.add_done_callback(release)


#: A ``Blob`` upload's SHA-256, when it is ours to compute (``sha256=COMPUTE``) and the side
#: worker is off, is chained by the pool's workers from the blocks they read into the shared
#: buffer (:func:`upload_chain`) instead of computed with hashlib on this thread. ``False``
#: puts it back on this thread (hashlib, or ``session.sha256.HASHER``), for measuring one
#: against the other (``bench/peers.py --sha256-hasher``; docs/browser.md, "Measuring CPU").
POOL_SHA256 = True


def upload_chain(pool: WorkerPool) -> Sha256Chain | None:
    """A :class:`~xet_pyodide.io.pool_sha.Sha256Chain` on ``pool`` for one ``Blob`` upload
    (pass its ``digest`` as ``sha256=``, then the chain to :func:`blob_blocks`), or None when
    :data:`POOL_SHA256` is off."""
    return Sha256Chain(pool) if POOL_SHA256 else None


def blob_blocks(
    hasher: Any, blob: Any, block_size: int, chain: Sha256Chain | None = None
) -> AsyncIterator[bytes]:
    """An upload's blocks of ``blob`` for ``upload.write``: read by the pool's workers into
    the shared buffer when ``hasher`` is a :class:`PooledChunkHasher` (which then reuses
    them, and feeds ``chain`` from the slots), else read here (``chain`` fed here)."""
    if isinstance(hasher, PooledChunkHasher):
        return hasher.read_blob(blob, block_size=block_size, sha256=chain)
    blocks = read_blob(blob, block_size=block_size)
    return blocks if chain is None else _feeding(blocks, chain)


async def _feeding(blocks: AsyncIterator[bytes], chain: Sha256Chain) -> AsyncIterator[bytes]:
    complete = False
    try:
        async for block in blocks:
            chain.add_bytes(block)
            yield block
        complete = True
        chain.close()
    finally:
        if not complete:
            chain.abort()
        await blocks.aclose()  # type: ignore[attr-defined]


def _release(pool: WorkerPool, slot: Slot, sha_free: asyncio.Future[None] | None) -> None:
    """Give ``slot`` back now, or once the SHA-256 chain no longer reads it."""
    if sha_free is None or sha_free.done():
        pool.release(slot)
    else:
        sha_free.add_done_callback(lambda _: pool.release(slot))


def _raise_failed(chain: Sha256Chain) -> None:
    """A failed link fails the upload where a failed read would (typed, at the next block)."""
    error = chain.error
    if error is not None:
        raise error


def _batch(results: list[_Result]) -> ChunkBatch:
    chunks: list[memoryview] = []
    for r in results:
        assert r.chunks is not None, "a JS block's chunks cannot be returned as data"
        chunks.extend(r.chunks)
    return ChunkBatch(chunks, b"".join(r.hashes for r in results))


def _sizes_and_hashes(results: list[_Result]) -> tuple[list[int], bytes]:
    sizes = [n for r in results for n in r.sizes]
    return sizes, b"".join(r.hashes for r in results)


__all__ = [
    "LAG",
    "LOCAL_BELOW",
    "POOL_SHA256",
    "PoolHasherFactory",
    "PooledChunkHasher",
    "blob_blocks",
    "upload_chain",
]
