"""Fetching one range of a download plan: cache → network (streamed or whole) → decoded.

:class:`RangeFetcher` is the half of :class:`~xet_pyodide.session.download_pipeline.RangeDownload`
that loads a single fetch range (a :class:`FetchUnit`): from the chunk cache, else from its
presigned URL — retrying broken bodies with backoff, fetching a fresh reconstruction when the
URL is refused (403), fetching undecodable bodies again — and hashes its chunks when the
download needs them (while the body is still arriving, when it is streamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

from ..core.hashes import DATA_KEY, MerkleHash
from ..core.reconstruction import FetchRange
from ..core.xorb import RECORD_HEADER_LEN
from ..errors import XetFormatError, XetIntegrityError, XetProtocolError
from ..io.cache import ChunkCache
from ..io.cas import CasClient, PresignedUrlRejected, XorbBodyInterrupted
from ..io.http import HttpClient
from ..io.worker_decode import WORKER_DECODE, WorkerDecode
from .download_decode import BlobRange, DecodedRange, RawRange, RecordDecoder, decode_records
from .download_progress import DownloadProgress, DownloadStats

#: Attempts at a range whose records do not decode (corrupted in transit) before giving up.
MAX_DECODE_ATTEMPTS = 3
#: Fresh reconstructions a single range may ask for after 403s on its URL.
MAX_URL_REFRESHES = 3
#: Streamed ranges: decoded chunks are hashed in batches of about this many bytes while the
#: rest of the body is still arriving.
HASH_BATCH_BYTES = 4 << 20
#: Ranges that decode to more than this are kept compressed (:class:`RawRange`) and decoded
#: a batch of about ``RAW_PIECE_BYTES`` at a time as the output reaches them.
RAW_ABOVE = 96 << 20
RAW_PIECE_BYTES = 8 << 20
#: Decoded bytes a pool worker gathers before making them a Blob (``DECODED_SEGMENT`` of
#: ``web/xet_worker.mjs``): what a range decoded in a worker holds in the renderer.
WORKER_SEGMENT_BYTES = 32 << 20


class SpanHasher(Protocol):
    """What verification needs from a chunk hasher (``InProcessChunkHasher``, a worker pool's
    hasher): keyed BLAKE3 (data key) of consecutive chunks laid out back to back.

    A hasher with a true ``in_process`` attribute hashes on the calling thread with the
    kernels; decoding then hashes in the same kernel call instead (one copy of the decoded
    bytes into the kernels less, no call per batch)."""

    async def hash_spans(self, data: memoryview, lengths: list[int]) -> Any: ...


class FetchUnit:
    """One fetch range of the plan and the task fetching it."""

    __slots__ = (
        "cost",
        "decoded",
        "decoded_hint",
        "fetch",
        "gen",
        "kept_raw",
        "needed",
        "refreshes",
        "task",
    )

    def __init__(
        self, fetch: FetchRange, decoded_hint: int, holds_raw: bool, worker_blobs: bool = False
    ) -> None:
        self.fetch = fetch
        self.decoded_hint = decoded_hint
        #: Kept compressed and decoded piecewise (see RAW_ABOVE).
        self.kept_raw = decoded_hint > RAW_ABOVE
        #: Bytes held while in flight: the decoded range (or one piece of it), plus the
        #: fetched bytes when they are kept whole (not decoded block by block as they arrive,
        #: or stored in the cache). A range a pool worker decodes into Blobs
        #: (``worker_blobs``) holds no byte of this heap: it counts the worker's segment
        #: (decoded bytes not yet made into a Blob, at most WORKER_SEGMENT_BYTES).
        raw = fetch.num_bytes if holds_raw or self.kept_raw else 0
        if self.kept_raw:
            self.cost = raw + RAW_PIECE_BYTES
        elif worker_blobs:
            self.cost = min(decoded_hint, WORKER_SEGMENT_BYTES)
        else:
            self.cost = raw + decoded_hint
        self.task: asyncio.Future[DecodedRange | RawRange] | None = None
        self.decoded: DecodedRange | RawRange | None = None
        self.needed = False
        self.gen = 0
        self.refreshes = 0


class RangeFetcher:
    """Loading of :class:`FetchUnit` s; the attributes are set by ``RangeDownload``."""

    _cas: CasClient
    _xorb_http: HttpClient | None
    _cache: ChunkCache | None
    _hasher: SpanHasher
    _streamed: bool
    #: Bodies read by the pool's workers are decoded there into Blobs (downloadToBlob with
    #: worker-read bodies and no chunk cache: see :meth:`_worker_attempt`).
    _worker_blobs: bool
    _stats: DownloadStats
    _progress: DownloadProgress
    full: bool
    _file_hash: MerkleHash
    _first: int
    _last: int
    _next_term: int
    _term_offsets: list[int]
    _refresh_lock: asyncio.Lock
    _url_gen: int
    _fresh: dict[tuple[MerkleHash, int, int], FetchRange]

    # ------------------------------------------------------------------ one range

    async def _load(self, unit: FetchUnit) -> DecodedRange | RawRange:
        decoded = await self._from_cache(unit)
        if decoded is None:
            decoded = await self._from_network(unit)
        if isinstance(decoded, RawRange):
            return decoded  # hashed piecewise by _raw_pieces
        if self._needs_hashes(unit):
            if decoded.hashes is None:  # (streamed ranges are hashed as they arrive)
                await self._hash_chunks(decoded)
            if not self.full and decoded.is_whole_xorb(unit.fetch.xorb):
                self._stats.xorbs_verified += 1
        return decoded

    async def _from_cache(self, unit: FetchUnit) -> DecodedRange | RawRange | None:
        if self._cache is None:
            return None
        fetch = unit.fetch
        raw = await self._cache.get(*fetch.key)
        if raw is None:
            return None
        started = time.perf_counter()
        try:
            decoded = self._decode_whole(unit, raw)
        except XetFormatError:
            await self._cache.invalidate(*fetch.key)
            return None
        finally:
            self._stats.decode_seconds += time.perf_counter() - started
        self._stats.cache_hits += 1
        self._stats.bytes_from_cache += len(raw)
        return decoded

    def _decode_whole(self, unit: FetchUnit, raw: Any) -> DecodedRange | RawRange:
        if unit.kept_raw:
            return RawRange(bytes(raw), unit.fetch.num_chunks)
        return decode_records(
            raw, unit.fetch.num_chunks, unit.decoded_hint, self._fused_key(unit)
        )

    def _fused_key(self, unit: FetchUnit) -> bytes | None:
        """The key decoding hashes with, when it should hash too: the unit's chunks are
        needed and the hasher would run the same kernels on this thread anyway."""
        if self._needs_hashes(unit) and getattr(self._hasher, "in_process", False):
            return DATA_KEY
        return None

    async def _from_network(self, unit: FetchUnit) -> DecodedRange | RawRange:
        """Fetch and decode, retrying broken bodies (backoff) and undecodable ones."""
        retry = self._cas.http.retry.start()
        bad_bodies = 0
        while True:
            try:
                decoded, raw = await self._fetch_decode(unit)
            except XorbBodyInterrupted:
                if not await retry.backoff():
                    raise
                self._stats.refetches += 1
                continue
            except XetFormatError as exc:
                bad_bodies += 1
                if bad_bodies >= MAX_DECODE_ATTEMPTS:
                    fetch = unit.fetch
                    raise XetIntegrityError(
                        f"xorb {fetch.xorb.hex()[:16]} chunks [{fetch.chunk_start}, "
                        f"{fetch.chunk_end}): the fetched bytes did not decode "
                        f"{MAX_DECODE_ATTEMPTS} times in a row ({exc})"
                    ) from exc
                self._stats.refetches += 1
                continue
            if self._cache is not None and raw is not None:
                await self._cache.put(*unit.fetch.key, raw)
            return decoded

    async def _fetch_decode(self, unit: FetchUnit) -> tuple[DecodedRange | RawRange, bytes | None]:
        """One attempt: GET the range (new URL on 403) and decode it as it arrives. Returns
        the raw bytes too when the cache wants them."""
        while True:
            fetch = unit.fetch
            self._stats.fetch_requests += 1
            try:
                if self._streamed:
                    if unit.kept_raw:
                        return await self._streamed_raw(unit, fetch)
                    if self._worker_blobs:
                        return await self._worker_attempt(unit, fetch)
                    return await self._streamed_attempt(unit, fetch)
                raw = await self._cas.fetch_xorb_range(fetch.url, fetch.byte_start, fetch.byte_end)
                await self._count(len(raw))
                started = time.perf_counter()
                try:
                    decoded = self._decode_whole(unit, raw)
                finally:
                    self._stats.decode_seconds += time.perf_counter() - started
                return decoded, raw
            except PresignedUrlRejected:
                if unit.refreshes >= MAX_URL_REFRESHES:
                    raise
                unit.refreshes += 1
                await self._refresh(unit)

    async def _streamed_attempt(
        self, unit: FetchUnit, fetch: FetchRange
    ) -> tuple[DecodedRange, bytes | None]:
        key = self._fused_key(unit)
        decoder = RecordDecoder(fetch.num_chunks, unit.decoded_hint, key)
        keep: list[bytes] | None = [] if self._cache is not None else None
        digests = bytearray() if self._needs_hashes(unit) and key is None else None
        hashed = 0  # chunks hashed so far (hashing overlaps the rest of the body's arrival)
        blocks = self._cas.open_xorb_range(
            fetch.url, fetch.byte_start, fetch.byte_end, http=self._xorb_http
        )
        async with contextlib.aclosing(blocks):  # type: ignore[type-var]
            async for block in blocks:
                started = time.perf_counter()
                try:
                    decoder.feed(block)
                finally:
                    self._stats.decode_seconds += time.perf_counter() - started
                if keep is not None:
                    keep.append(block)
                await self._count(len(block))
                ready = decoder.chunk_offset(decoder.chunks_done) - decoder.chunk_offset(hashed)
                if digests is not None and ready >= HASH_BATCH_BYTES:
                    hashed = await self._hash_decoded(decoder, hashed, digests)
        if digests is not None:
            await self._hash_decoded(decoder, hashed, digests)
        decoded = decoder.finish()
        if digests is not None:
            decoded.set_hashes(bytes(digests))
        return decoded, (b"".join(keep) if keep is not None else None)

    async def _worker_attempt(self, unit: FetchUnit, fetch: FetchRange) -> tuple[BlobRange, None]:
        """One attempt whose body the pool worker reading it also decodes (and hashes, when
        the download needs the hashes) into a Blob: this thread sees only byte counts and,
        at the end, the Blob, the chunk sizes and digests. Statuses, retries, 403s and
        interrupted bodies go through ``open_xorb_range`` as usual; a body that does not
        decode raises :class:`XetFormatError` like :class:`RecordDecoder` (same kernel)."""
        if fetch.num_chunks * RECORD_HEADER_LEN > fetch.num_bytes:
            # The worker sizes its chunk tables up front (36 bytes per chunk): a range that
            # cannot hold its records is refused before any is allocated (the page's decoder
            # would find too few records in the body).
            raise XetFormatError(
                f"a fetched range of {fetch.num_bytes} bytes cannot hold {fetch.num_chunks} "
                "chunk records"
            )
        request = WorkerDecode(
            fetch.num_chunks, unit.decoded_hint, self._needs_hashes(unit), fetch.num_bytes
        )
        token = WORKER_DECODE.set(request)
        try:
            blocks = self._cas.open_xorb_range(
                fetch.url, fetch.byte_start, fetch.byte_end, http=self._xorb_http
            )
            async with contextlib.aclosing(blocks):  # type: ignore[type-var]
                async for block in blocks:
                    await self._count(len(block))
        finally:
            WORKER_DECODE.reset(token)
            # ``request`` stays reachable after this: every timer armed while it was set
            # (read timeouts: a JS setTimeout under Pyodide, kept until it would fire) holds
            # a copy of the context. Measured: without this, each range's Blobs stayed in
            # Blob storage for minutes, and a page's second 1 GiB download paged it to disk.
            result, request.result = request.result, None
        if result is None:
            raise XetProtocolError("the worker reading a xorb range did not decode it")
        decoded = BlobRange.from_worker(result)
        self._stats.worker_decoded += 1
        return decoded, None

    async def _streamed_raw(self, unit: FetchUnit, fetch: FetchRange) -> tuple[RawRange, bytes]:
        """A range kept compressed, read block by block into one buffer (in a browser, a
        whole-body read would hold a second, JS copy of it until the next garbage collection)."""
        buffer = bytearray(fetch.num_bytes)
        pos = 0
        blocks = self._cas.open_xorb_range(
            fetch.url, fetch.byte_start, fetch.byte_end, http=self._xorb_http
        )
        async with contextlib.aclosing(blocks):  # type: ignore[type-var]
            async for block in blocks:
                buffer[pos : pos + len(block)] = block
                pos += len(block)
                await self._count(len(block))
        raw = bytes(buffer) if self._cache is not None else buffer
        return RawRange(raw, fetch.num_chunks), raw  # type: ignore[return-value]

    async def _hash_decoded(self, decoder: RecordDecoder, first: int, digests: bytearray) -> int:
        """Hash the decoded chunks ``[first, chunks_done)`` into ``digests``; the new count."""
        last = decoder.chunks_done
        if last > first:
            started = time.perf_counter()
            view = decoder.view(decoder.chunk_offset(first), decoder.chunk_offset(last))
            try:
                digests += await self._hasher.hash_spans(view, decoder.sizes(first, last))
            finally:
                view.release()
                self._stats.hash_seconds += time.perf_counter() - started
        return last

    def _needs_hashes(self, unit: FetchUnit) -> bool:
        """Full downloads hash everything; ranged ones only ranges that may be whole xorbs."""
        return self.full or unit.fetch.chunk_start == 0

    async def _count(self, n: int) -> None:
        self._stats.bytes_fetched += n
        self._progress.bytes_fetched += n
        await self._progress.tick()

    async def _hash_chunks(self, decoded: DecodedRange) -> None:
        started = time.perf_counter()
        lengths = decoded.sizes(0, decoded.num_chunks)
        digests = await self._hasher.hash_spans(memoryview(decoded.data), lengths)
        decoded.set_hashes(bytes(digests))
        self._stats.hash_seconds += time.perf_counter() - started

    async def _refresh(self, unit: FetchUnit) -> None:
        """Swap in a fresh URL for ``unit`` from a new reconstruction of the remaining bytes
        (one request serves every unit that failed with the same generation of URLs)."""
        async with self._refresh_lock:
            if unit.gen == self._url_gen:
                i = self._next_term
                first = self._first if i == 0 else self._term_offsets[i]
                await self._new_urls(first)
            fresh = self._fresh.get(unit.fetch.key)
            if fresh is None and self._url_gen:
                await self._new_urls(self._first)  # another plan shape: ask for everything
                fresh = self._fresh.get(unit.fetch.key)
            if fresh is None:
                raise XetProtocolError(
                    "a fresh reconstruction no longer lists chunks "
                    f"[{unit.fetch.chunk_start}, {unit.fetch.chunk_end}) of xorb "
                    f"{unit.fetch.xorb.hex()[:16]}"
                )
            unit.fetch = fresh
            unit.gen = self._url_gen

    async def _new_urls(self, first: int) -> None:
        rec = await self._cas.get_reconstruction(self._file_hash, (first, self._last))
        self._fresh = {f.key: f for f in rec.all_fetches()}
        self._url_gen += 1
        self._stats.url_refreshes += 1


__all__ = [
    "HASH_BATCH_BYTES",
    "MAX_DECODE_ATTEMPTS",
    "MAX_URL_REFRESHES",
    "RAW_ABOVE",
    "RAW_PIECE_BYTES",
    "FetchUnit",
    "RangeFetcher",
    "SpanHasher",
]
