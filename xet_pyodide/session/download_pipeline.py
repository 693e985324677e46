"""The download engine: reconstruction → bounded parallel fetches → decode → pieces in order.

:class:`RangeDownload` produces the bytes ``[first, last]`` of a file as a sequence of
``memoryview`` pieces in file order (:meth:`RangeDownload.pieces`). Inside:

* one reconstruction (§7.7), planned by :func:`~xet_pyodide.core.reconstruction.plan_download`
  into *units* (fetch ranges, in order of first use);
* a producer task starts units in that order while fewer than ``max_concurrent_downloads``
  are being fetched and their size (:class:`~.download_fetch.FetchUnit`: decoded bytes, plus
  fetched bytes when they are kept whole) fits in ``download_buffer_bytes``; a unit's bytes
  count until its last term has been produced. The unit the output is waiting for may
  overdraw the budget (never a deadlock);
* (:mod:`.download_fetch`) a unit's records come from the chunk cache or from its
  presigned URL (retries and backoff on 5xx/429/dropped connections are the HTTP
  client's; a 403 fetches a fresh reconstruction
  for the remaining bytes and retries with the new URL; records that fail to decode are
  fetched again, twice at most, then :class:`XetIntegrityError` is raised: the server keeps
  sending corrupt bytes); then they are decoded and, when needed, hashed;
* a range that decodes to more than ``RAW_ABOVE`` bytes (compressible data) is kept
  compressed and decoded, hashed and output ``RAW_PIECE_BYTES`` at a time, so the memory bound
  holds whatever the compression ratio;
* full downloads recompute the file hash from the chunk hashes at the end (raising
  :class:`XetIntegrityError` before the generator finishes; the cache entries used are
  dropped). Ranged downloads check a unit against its xorb hash when it is a whole xorb.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Sequence

from ..core.hashes import MerkleHash, file_hash
from ..core.reconstruction import DownloadPlan, FetchRange, PlannedTerm, plan_download
from ..errors import XetFormatError, XetIntegrityError
from ..io.cache import ChunkCache
from ..io.cas import CasClient
from ..io.http import HttpClient
from ..io.worker_decode import BlobPiece
from .budget import ByteBudget
from .download_decode import BlobRange, DecodedRange, RawRange
from .download_fetch import (
    MAX_DECODE_ATTEMPTS,
    MAX_URL_REFRESHES,
    RAW_PIECE_BYTES,
    FetchUnit,
    RangeFetcher,
    SpanHasher,
)
from .download_progress import DownloadProgress, DownloadStats


def _decoded_hints(plan: DownloadPlan) -> list[int]:
    """Per fetch range: the decoded size of the distinct term ranges it serves (its decoded
    size when, as usual, its chunk range is exactly the union of those terms)."""
    decoded = [0] * len(plan.fetches)
    seen: set[tuple[int, int, int]] = set()
    for planned in plan.terms:
        t = planned.term
        ident = (planned.fetch_index, t.chunk_start, t.chunk_end)
        if ident not in seen:
            seen.add(ident)
            decoded[planned.fetch_index] += t.unpacked_length
    return decoded


def _term_chunks(
    unit: FetchUnit, planned: PlannedTerm, offsets: Sequence[int], index: int
) -> tuple[int, int]:
    """Chunks ``[rel, rel_end)`` of ``unit``'s range that term ``index`` covers, after
    checking against ``offsets`` (decoded offsets of the range's chunks) that they decode to
    the length the reconstruction gives."""
    term = planned.term
    rel = term.chunk_start - unit.fetch.chunk_start
    rel_end = rel + term.chunk_end - term.chunk_start
    length = offsets[rel_end] - offsets[rel]
    if length != term.unpacked_length:
        raise XetFormatError(
            f"term {index} decodes to {length} bytes, the reconstruction says "
            f"{term.unpacked_length}"
        )
    return rel, rel_end


class RangeDownload(RangeFetcher):
    """Bytes ``[first, last]`` (inclusive) of the file ``file_hash`` of ``size`` bytes."""

    def __init__(
        self,
        cas: CasClient,
        cache: ChunkCache | None,
        file_hash: MerkleHash,
        size: int,
        first: int,
        last: int,
        *,
        max_concurrent: int,
        buffer_bytes: int,
        progress: DownloadProgress,
        stats: DownloadStats,
        hasher: SpanHasher,
        streamed: bool,
        xorb_http: HttpClient | None = None,
        worker_blobs: bool = False,
    ) -> None:
        self._hasher = hasher
        self._xorb_http = xorb_http
        self._streamed = streamed
        # Only where it is a pure win: worker-read bodies, nothing kept for the cache, and an
        # output that wants Blobs anyway (downloadToBlob).
        self._worker_blobs = worker_blobs and streamed and xorb_http is not None and cache is None
        self._cas = cas
        self._cache = cache
        self._file_hash = file_hash
        self._size = size
        self._first = first
        self._last = last
        self.full = first == 0 and last == size - 1
        self._max_concurrent = max_concurrent
        self._budget = ByteBudget(buffer_bytes)
        self._progress = progress
        self._stats = stats
        self._units: list[FetchUnit] = []
        self._term_offsets: list[int] = []
        self._next_term = 0
        self._active = 0
        self._wake = asyncio.Event()
        self._launched = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self._url_gen = 0
        self._fresh: dict[tuple[MerkleHash, int, int], FetchRange] = {}
        self._producer: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ output

    async def pieces(self) -> AsyncIterator[memoryview | BlobPiece]:
        """The requested bytes in file order. A full download is verified after the last
        piece, before this generator finishes (so hold back the tail until it does). Pieces
        are memoryviews, or :class:`BlobPiece` s (JS Blobs) for ranges a worker decoded
        (only with ``worker_blobs``)."""
        await self._progress.set_phase("downloading")
        rec = await self._cas.get_reconstruction(self._file_hash, (self._first, self._last))
        plan = plan_download(rec, self._last - self._first + 1)
        self._term_offsets = plan.term_file_offsets(self._first)
        hints = _decoded_hints(plan)
        holds_raw = not self._streamed or self._cache is not None
        self._units = [
            FetchUnit(f, h, holds_raw, self._worker_blobs)
            for f, h in zip(plan.fetches, hints, strict=True)
        ]
        self._stats.ranges = len(self._units)
        hashes: list[MerkleHash] = []
        sizes: list[int] = []
        producer = self._producer = asyncio.ensure_future(self._produce())
        try:
            for i, planned in enumerate(plan.terms):
                self._next_term = i
                unit = self._units[planned.fetch_index]
                waited = time.perf_counter()
                decoded = await self._wait(unit)
                self._stats.wait_seconds += time.perf_counter() - waited
                if isinstance(decoded, RawRange):
                    async for piece in self._raw_pieces(unit, decoded, planned, i, hashes, sizes):
                        self._progress.bytes_done += len(piece)
                        yield piece
                        await self._progress.tick()
                    if plan.last_use[planned.fetch_index] == i:
                        self._release(unit)
                    continue
                rel, rel_end = _term_chunks(unit, planned, decoded.offsets, i)
                start = decoded.offsets[rel]
                if self.full and decoded.hashes is not None:
                    hashes += decoded.hashes[rel:rel_end]
                    sizes += decoded.sizes(rel, rel_end)
                piece = decoded.piece(start + planned.skip, start + planned.skip + planned.take)
                if plan.last_use[planned.fetch_index] == i:
                    self._release(unit)
                self._progress.bytes_done += planned.take
                yield piece
                await self._progress.tick()
            self._next_term = len(plan.terms)
            await producer
            if self.full:
                await self._verify(hashes, sizes)
            else:
                self._stats.verified = self._ranged_verdict()
            await self._progress.set_phase("done")
        finally:
            self._stats.peak_buffered_bytes = self._budget.peak
            await self._stop(producer)

    async def _raw_pieces(
        self,
        unit: FetchUnit,
        raw: RawRange,
        planned: PlannedTerm,
        index: int,
        hashes: list[MerkleHash],
        sizes: list[int],
    ) -> AsyncIterator[memoryview]:
        """The output of one term of a range kept compressed: its chunks decoded (and, for a
        full download, hashed) a batch at a time; only the chunks the output needs."""
        offs = raw.unpacked
        rel, rel_end = _term_chunks(unit, planned, offs, index)
        base = offs[rel]
        want_start, want_end = base + planned.skip, base + planned.skip + planned.take
        k = bisect_right(offs, want_start, rel, rel_end) - 1
        while k < rel_end and offs[k] < want_end:
            e = k + 1
            while e < rel_end and offs[e + 1] - offs[k] <= RAW_PIECE_BYTES and offs[e] < want_end:
                e += 1
            started = time.perf_counter()
            try:
                decoded = raw.decode(k, e, self._fused_key(unit) if self.full else None)
            except XetFormatError as exc:
                await self._drop_cached()
                raise XetIntegrityError(
                    f"xorb {unit.fetch.xorb.hex()[:16]}: chunk records do not decode ({exc})"
                ) from exc
            finally:
                self._stats.decode_seconds += time.perf_counter() - started
            if self.full:
                if decoded.hashes is None:
                    await self._hash_chunks(decoded)
                hashes += decoded.hashes or ()
                sizes += decoded.sizes(0, decoded.num_chunks)
            lo, hi = max(want_start, offs[k]) - offs[k], min(want_end, offs[e]) - offs[k]
            yield memoryview(decoded.data)[lo:hi]
            k = e

    async def _verify(self, hashes: list[MerkleHash], sizes: list[int]) -> None:
        await self._progress.set_phase("verifying")
        total = sum(sizes)
        if total > self._size:
            # The chunks run past the size given: a file's last chunk ends exactly at its end,
            # so the caller's size is too small (the hash alone would pass when a single chunk
            # covers both, and the output would be silently cut).
            raise ValueError(
                f"the file {self._file_hash.hex()[:16]} is larger than the size given "
                f"({self._size} bytes; its chunks so far hold {total}): pass its real size"
            )
        actual = file_hash(list(zip(hashes, sizes, strict=True)))
        if actual != self._file_hash:
            await self._drop_cached()
            raise XetIntegrityError(
                f"downloaded data hashes to {actual.hex()}, expected {self._file_hash.hex()} "
                f"(corrupt data, or {self._size} is not the file's size)"
            )
        self._stats.verified = "file"

    async def _drop_cached(self) -> None:
        """Forget every cached range of this download (its bytes failed verification)."""
        if self._cache is not None:
            for unit in self._units:
                await self._cache.invalidate(*unit.fetch.key)

    def _ranged_verdict(self) -> str:
        if self._stats.xorbs_verified == len(self._units):
            return "xorbs"
        return "partial" if self._stats.xorbs_verified else "none"

    async def _stop(self, producer: asyncio.Future[None]) -> None:
        pending = [producer] + [u.task for u in self._units if u.task is not None]
        for task in pending:
            task.cancel()
        # Retrieve every outcome (no "exception was never retrieved" warnings).
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for outcome in [*outcomes, *(u.decoded for u in self._units)]:
            if isinstance(outcome, BlobRange):  # (a stopped download's worker Blobs)
                outcome.drop()

    def _release(self, unit: FetchUnit) -> None:
        if isinstance(unit.decoded, BlobRange):
            unit.decoded.drop()
        unit.decoded = None
        unit.task = None
        self._budget.release(unit.cost)
        self._wake.set()

    # ------------------------------------------------------------------ scheduling

    def _can_start(self, unit: FetchUnit) -> bool:
        if self._active >= self._max_concurrent:
            return False
        return unit.needed or not self._budget.would_exceed(unit.cost)

    async def _produce(self) -> None:
        try:
            for unit in self._units:
                while not self._can_start(unit):
                    self._wake.clear()
                    await self._wake.wait()
                self._budget.take(unit.cost)
                self._active += 1
                unit.task = asyncio.ensure_future(self._run(unit))
                self._launched.set()
        finally:
            self._launched.set()

    async def _wait(self, unit: FetchUnit) -> DecodedRange:
        if unit.decoded is not None:
            return unit.decoded
        while unit.task is None:
            if self._producer is None or self._producer.done():
                raise RuntimeError("download producer stopped before starting a needed range")
            unit.needed = True
            self._wake.set()
            self._launched.clear()
            await self._launched.wait()
        unit.decoded = await unit.task
        return unit.decoded

    async def _run(self, unit: FetchUnit) -> DecodedRange:
        try:
            return await self._load(unit)
        finally:
            self._active -= 1
            self._wake.set()


__all__ = ["MAX_DECODE_ATTEMPTS", "MAX_URL_REFRESHES", "RangeDownload"]
