"""One file's way through the upload pipeline: chunk → hash → dedup → pack.

:class:`FileUpload` is the streaming handle returned by ``XetSession.start_upload``. Written
blocks are chunked and hashed (one :class:`~.hasher.ChunkHasher` per file), the SHA-256 is
updated in the same pass, eligible chunks trigger background global-dedup queries, and the
chunks wait in a *dedup window* so that answers arriving a little later can still be used.
When the window is full, its older half is committed: each chunk is matched against this
session's chunks (continuing the previous match when possible), then against what the
global-dedup answers taught us, and packed into a new xorb only if both miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import accumulate
from typing import Protocol

from ..core.hashes import HASH_LEN, MerkleHash, file_hash
from .budget import ByteBudget
from .config import SessionConfig
from .dedup import DedupQueries, FileQueries, GlobalDedupIndex, GlobalXorb, eligible_positions
from .hasher import ChunkBatch, ChunkHasher
from .packing import Location, Packer, resolve
from .progress import ProgressReporter
from .results import FileResult, UploadMetrics
from .resume import ResumedXorb
from .sha256 import COMPUTE, SKIP, Sha256Mode, Sha256Tracker, parse_sha256
from .shards import FileRecord, PendingTerm

Buffer = bytes | bytearray | memoryview


class UploadContext(Protocol):
    """What a :class:`FileUpload` uses of the batch it belongs to — implemented by
    :class:`~xet_pyodide.session.pipeline.UploadPipeline` (stated here so that this module does
    not import the pipeline, which imports it)."""

    config: SessionConfig
    progress: ProgressReporter
    packer: Packer
    budget: ByteBudget
    queries: DedupQueries
    session_index: dict[bytes, Location]
    global_index: GlobalDedupIndex
    metrics: UploadMetrics
    clock: Callable[[], float]

    async def ensure_kernels(self) -> None: ...

    def check_open(self, name: str | None) -> None: ...

    def check_failed(self) -> None: ...

    async def reserve(self, n: int) -> None: ...

    def file_finished(self, upload: FileUpload) -> None: ...


#: Writes smaller than this are gathered into one block before processing.
SMALL_WRITE = 1 << 20


def _immutable(data: Buffer) -> bool:
    """Bytes, or a view of bytes: safe to keep views of without copying."""
    return isinstance(data, bytes) or (isinstance(data, memoryview) and isinstance(data.obj, bytes))


class _Pending:
    """Chunks written but not yet committed (parallel lists, file order)."""

    __slots__ = ("data", "hashes", "nbytes", "offsets")

    def __init__(self) -> None:
        self.data: list[memoryview] = []
        self.hashes: list[bytes] = []
        self.offsets: list[int] = []
        self.nbytes = 0


class FileUpload:
    """Streaming upload of one file. ``await write(block)`` repeatedly, then ``await finish()``.

    Blocks are not copied when they are ``bytes`` (or views of ``bytes``); other buffers are
    copied once, because the pipeline keeps views of written data until it is packed.
    """

    def __init__(
        self,
        pipeline: UploadContext,
        file_id: int,
        name: str | None,
        size: int | None,
        sha256: object,
        hasher: ChunkHasher,
    ) -> None:
        self._pipeline = pipeline
        self.file_id = file_id
        self.name = name
        self.declared_size = size
        self._sha = Sha256Tracker(sha256)
        self._hasher = hasher
        self._pending = _Pending()
        self._queries = FileQueries()
        self._hashes = bytearray()
        self._sizes: list[int] = []
        self._terms: list[PendingTerm] = []
        self._last: Location | None = None  # location of the previous committed chunk
        self._written = 0
        self._staging = bytearray()
        self._chunked = 0  # bytes of complete chunks
        self._placed = 0  # bytes of chunks placed (packed or deduplicated): out of the bound
        #: The upload failed or was cancelled (:meth:`abandon`): the commit leaves it out.
        self.abandoned = False
        self._progress = pipeline.progress.add_file(name, size)
        self.result: FileResult | None = None
        self.record: FileRecord | None = None
        self._lock = asyncio.Lock()

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def hasher(self) -> ChunkHasher:
        """This file's chunk hasher (a front door may feed it blocks it prepared itself)."""
        return self._hasher

    async def write(self, data: Buffer) -> None:
        """Add the next bytes of the file."""
        async with self._lock:
            if self.result is not None:
                raise ValueError(f"upload of {self.name!r} is already finished")
            self._check_not_abandoned()
            await self._pipeline.ensure_kernels()
            view = memoryview(data).cast("B")
            small = min(SMALL_WRITE, self._pipeline.config.block_size)
            if len(view) < small:
                # Gather small writes: each pass through the pipeline costs kernel calls.
                self._staging += view
                if len(self._staging) >= small:
                    await self._flush_staging()
                return
            await self._flush_staging()
            block = view if _immutable(data) else memoryview(bytes(view))
            step = self._pipeline.config.block_size
            for start in range(0, len(block), step):
                await self._write_piece(block[start : start + step])

    async def _flush_staging(self) -> None:
        if self._staging:
            block, self._staging = bytes(self._staging), bytearray()
            await self._write_piece(memoryview(block))

    async def finish(self) -> FileResult:
        """End of the file: commit what is pending, return its hash, size and sha256."""
        async with self._lock:
            if self.result is not None:
                return self.result
            self._check_not_abandoned()
            self._pipeline.check_open(self.name)
            await self._pipeline.ensure_kernels()
            self._pipeline.check_failed()
            await self._flush_staging()
            if self.declared_size is not None and self.declared_size != self._written:
                raise ValueError(
                    f"{self.name!r}: {self._written} bytes written, {self.declared_size} declared"
                )
            self._accept(await self._hasher.finish())
            await self._commit(final=True)
            self._progress.bytes_processed = self._chunked
            self._pipeline.packer.finish_file(self.file_id)
            self.result, self.record = self._build_result(*await self._sha.finish(self._written))
            self._pipeline.file_finished(self)
            await self._pipeline.progress.emit_now()  # listeners see the file complete
            return self.result

    async def abandon(self) -> None:
        """Give up on this file after its upload failed or was cancelled; a no-op once it
        finished (or was abandoned).

        The commit then leaves the file out (no file entry in the shard, not in the
        results) instead of refusing to run, so the session's other files can still be
        committed. Chunks the file already packed stay in their xorbs: other files may have
        deduplicated against them, and the shard lists every chunk of every xorb. The bytes
        the file held in the pipeline's buffer bound (written but not placed yet) are
        released; a SHA-256 computed elsewhere is no longer awaited."""
        async with self._lock:
            if self.result is not None or self.abandoned:
                return
            self.abandoned = True
            pipeline = self._pipeline
            pipeline.budget.release(self._written - self._placed)
            self._placed = self._written
            self._pending = _Pending()
            self._staging = bytearray()
            self._sha.discard()
            pipeline.packer.finish_file(self.file_id)
            self._progress.abandoned = True
            await pipeline.progress.emit_now()

    def _check_not_abandoned(self) -> None:
        if self.abandoned:
            raise RuntimeError(f"the upload of {self.name!r} was abandoned after a failure")

    # ------------------------------------------------------------------ processing

    async def _write_piece(self, piece: memoryview) -> None:
        pipeline = self._pipeline
        pipeline.check_open(self.name)
        pipeline.check_failed()
        await pipeline.reserve(len(piece))
        self._sha.update(piece)
        self._written += len(piece)
        self._accept(await self._hasher.update(piece))
        if self._pending.nbytes >= pipeline.config.dedup_window_bytes:
            await self._commit(final=False)
        self._progress.bytes_processed = self._chunked
        await pipeline.progress.tick()
        await asyncio.sleep(0)  # let uploads and dedup answers progress

    def _accept(self, batch: ChunkBatch) -> None:
        # Per batch, not per chunk: the lists grow by whole batches, and only the chunks
        # eligible for a global-dedup query (1 in 1,024, found by a scan) are looked at.
        pending = self._pending
        queries = self._pipeline.queries
        session_index = self._pipeline.session_index
        chunks, hashes = batch.chunks, batch.hashes
        raws = batch.hash_list()
        sizes = [len(chunk) for chunk in chunks]
        offsets = list(accumulate(sizes, initial=self._chunked))
        first = len(self._sizes)
        for k in eligible_positions(hashes, first):
            if raws[k] not in session_index:
                queries.consider(self._queries, raws[k], first + k, offsets[k])
        pending.data += chunks
        pending.hashes += raws
        pending.offsets += offsets[:-1]
        pending.nbytes += offsets[-1] - self._chunked
        self._sizes += sizes
        self._chunked = offsets[-1]
        self._hashes += hashes

    async def _commit(self, *, final: bool) -> None:
        """Decide the fate of the older pending chunks (all of them when ``final``)."""
        pending = self._pending
        count = len(pending.data)
        if not final:
            keep, kept = self._pipeline.config.dedup_window_bytes // 2, 0
            while count > 0 and kept + len(pending.data[count - 1]) <= keep:
                kept += len(pending.data[count - 1])
                count -= 1
        if count == 0:
            return
        limit = pending.offsets[count] if count < len(pending.offsets) else self._chunked
        await self._pipeline.queries.wait_until(self._queries, limit)
        data, hashes = pending.data[:count], pending.hashes[:count]
        del pending.data[:count], pending.hashes[:count], pending.offsets[:count]
        pending.nbytes -= sum(len(c) for c in data)
        self._place(data, hashes)

    def _place(self, data: list[memoryview], hashes: list[bytes]) -> None:
        pipeline = self._pipeline
        session_index = pipeline.session_index
        global_index = pipeline.global_index
        protected = global_index.protect(b"".join(hashes)) if global_index else None
        metrics = pipeline.metrics
        file_id, stage = self.file_id, pipeline.packer.stage
        for i, (chunk, raw) in enumerate(zip(data, hashes, strict=True)):
            size = len(chunk)
            location, source = self._continue_match(raw, protected, i)
            if location is None:
                location = session_index.get(raw)
                source = "session"
                if (
                    location is not None
                    and isinstance(location[0], GlobalXorb)
                    and not location[0].usable(pipeline.clock())
                ):
                    location = None
            if location is None and protected is not None:
                location = global_index.lookup(protected, i)
                source = "global"
            if location is None:
                location = stage(file_id, chunk, raw)
                metrics.new_bytes += size
                metrics.new_chunks += 1
            elif source == "global":
                metrics.deduped_bytes_global += size
                metrics.deduped_chunks_global += 1
            else:
                metrics.deduped_bytes += size
                metrics.deduped_chunks += 1
                if isinstance(location[0], ResumedXorb):
                    metrics.bytes_resumed += size
                    pipeline.progress.bytes_resumed += size
            session_index.setdefault(raw, location)
            pipeline.budget.release(size)
            self._placed += size
            self._append_term(location, size)
        # the new chunks' records, one kernel call per ~512 KiB of chunks (Packer.stage)
        packed = pipeline.packer.flush_file(file_id)
        self._progress.bytes_packed += packed
        pipeline.budget.take(packed)

    def _continue_match(self, raw: bytes, protected: object, i: int) -> tuple[Location | None, str]:
        """If the previous chunk was found in a xorb and our chunk is that xorb's next one,
        use it: long terms instead of scattered single-chunk hits."""
        if self._last is None:
            return None, ""
        ref, index = resolve(*self._last)
        if isinstance(ref, GlobalXorb):
            if protected is not None and self._pipeline.global_index.continues(
                ref,
                index + 1,
                protected,
                i,  # type: ignore[arg-type]
            ):
                return (ref, index + 1), "global"
            return None, ""
        if ref.chunk_hash_raw(index + 1) == raw:
            return (ref, index + 1), "session"
        return None, ""

    def _append_term(self, location: Location, size: int) -> None:
        ref, index = location
        last = self._terms[-1] if self._terms else None
        if last is not None and last.ref is ref and last.end == index:
            last.end += 1
            last.size += size
        else:
            self._terms.append(PendingTerm(ref, index, index + 1, size))
        self._last = location

    def _build_result(
        self, hexdigest: str | None, stored: bytes | None
    ) -> tuple[FileResult, FileRecord]:
        n = len(self._sizes)
        hashes = bytes(self._hashes)
        entries = [
            (MerkleHash(hashes[i * HASH_LEN : (i + 1) * HASH_LEN]), self._sizes[i])
            for i in range(n)
        ]
        fhash = file_hash(entries)
        result = FileResult(self.name, fhash.hex(), self._written, hexdigest)
        record = FileRecord(fhash, hashes, self._sizes, self._terms, stored)
        return result, record


__all__ = ["COMPUTE", "SKIP", "FileUpload", "Sha256Mode", "parse_sha256"]
