"""Downloads on :class:`~xet_pyodide.session.XetSession` (mixed into the session class).

Three ways to get the bytes of a file (or of ``byte_range = (start, end_inclusive)``):

* ``await session.download_bytes(file_hash, size)`` → ``bytes``;
* ``session.download_stream(file_hash, size, block_size=...)`` → async iterator of ``bytes``
  blocks in file order (every block ``block_size`` bytes except the last); memory stays
  within ``SessionConfig.download_buffer_bytes`` plus one block;
* ``await session.download_to_file(file_hash, size, path)`` → :class:`DownloadStats` (written
  to ``path + ".xet-part"`` and renamed into place only when complete and verified);
* ``session.download_pieces(...)`` → the uncopied pieces (for the browser glue).

``file_hash`` is a xet-hex string or a :class:`~xet_pyodide.core.hashes.MerkleHash`; ``size``
is the file's size (it comes with the hash: Hub ``X-Xet-Hash`` + ``Content-Length``, or an
upload result). ``progress`` is a callback (see :mod:`.download_progress`).

Integrity: a full download recomputes every chunk hash and the file hash, and raises
:class:`~xet_pyodide.errors.XetIntegrityError` on a mismatch. ``download_bytes`` and
``download_to_file`` then return nothing (and retry once from the network when cached bytes
were involved); a stream raises it instead of yielding its last block, so a consumer has seen
at most the blocks before the last one. See ``docs/download.md`` for the ranged case.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ..core.hashes import MerkleHash
from ..errors import XetIntegrityError, XetRangeError
from ..io.cache import ChunkCache, open_chunk_cache
from ..io.cas import CasClient
from ..io.http import HttpClient
from ..io.pool_spans import span_hasher_for
from ..io.worker_decode import BlobPiece
from .config import SessionConfig
from .download_pipeline import RangeDownload
from .download_progress import DownloadProgress, DownloadStats
from .hasher import InProcessChunkHasher

PART_SUFFIX = ".xet-part"
_UNSET: Any = object()
_T = TypeVar("_T")


def coerce_file_hash(value: Any) -> MerkleHash:
    """A :class:`MerkleHash` from a hash or its xet-hex string."""
    if isinstance(value, MerkleHash):
        return value
    if isinstance(value, str):
        return MerkleHash.from_hex(value.strip())
    raise TypeError(f"a file hash is a xet-hex string or a MerkleHash, not {type(value).__name__}")


def _int(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def resolve_range(size: int, byte_range: Any) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` bytes to produce (None: nothing, a 0-byte file).

    Like HTTP: ``last`` past the end is clamped; ``first`` at or past the end raises
    :class:`XetRangeError`.
    """
    if byte_range is None:
        return (0, size - 1) if size else None
    first, last = (_int(v, "byte_range bounds") for v in byte_range)
    if last < first:
        raise ValueError(f"byte_range ({first}, {last}) ends before it starts")
    if first >= size:
        raise XetRangeError(f"byte_range starts at {first}, the file has {size} bytes")
    return first, min(last, size - 1)


async def cache_for(option: Any, config: SessionConfig) -> ChunkCache | None:
    """The chunk cache a ``chunk_cache=`` option names: a :class:`ChunkCache` as it is,
    ``False``/``"none"`` none, a kind (``"memory"``, ``"disk"``, ``"browser"``, ``"auto"``)
    or None (``config.chunk_cache``) opened with the config's directory and size cap."""
    if isinstance(option, ChunkCache):
        return option
    if option is False or option == "none":
        return None
    kind = option if isinstance(option, str) else config.chunk_cache
    return await open_chunk_cache(kind, config.chunk_cache_dir, config.chunk_cache_bytes)


def _take(pending: deque[memoryview], n: int) -> bytes:
    """Exactly ``n`` bytes from the front of ``pending`` (which holds at least that many)."""
    parts: list[memoryview] = []
    while n:
        head = pending[0]
        if len(head) <= n:
            parts.append(pending.popleft())
            n -= len(head)
        else:
            parts.append(head[:n])
            pending[0] = head[n:]
            n = 0
    return b"".join(parts)


class DownloadMixin:
    """Download methods; the host class provides ``cas``, ``config`` and ``clock``."""

    cas: CasClient
    http: HttpClient
    config: SessionConfig
    _hasher_factory: Callable[[], Any]
    _chunk_cache_option: Any = None
    _chunk_cache: Any = _UNSET
    _xorb_client: Any = _UNSET
    #: Statistics of the most recent download started on this session.
    last_download: DownloadStats | None = None

    async def chunk_cache(self) -> ChunkCache | None:
        """The session's chunk cache (opened on first use; None when disabled)."""
        if self._chunk_cache is _UNSET:
            self._chunk_cache = await cache_for(self._chunk_cache_option, self.config)
        return self._chunk_cache

    async def _start(
        self,
        file_hash: Any,
        size: Any,
        byte_range: Any,
        progress: Any,
        worker_blobs: bool = False,
    ) -> tuple[RangeDownload | None, DownloadStats, DownloadProgress]:
        hash_ = coerce_file_hash(file_hash)
        size = _int(size, "size")
        span = resolve_range(size, byte_range)
        total = 0 if span is None else span[1] - span[0] + 1
        stats = DownloadStats(hash_.hex(), total)
        self.last_download = stats
        reporter = DownloadProgress(progress, total, interval=self.config.progress_interval)
        if span is None:
            if hash_ != MerkleHash.ZERO:
                raise XetIntegrityError(f"a 0-byte file has the zero hash, not {hash_.hex()}")
            stats.verified = "file"
            return None, stats, reporter
        job = RangeDownload(
            self.cas,
            await self.chunk_cache(),
            hash_,
            size,
            span[0],
            span[1],
            max_concurrent=self.config.max_concurrent_downloads,
            buffer_bytes=self.config.download_buffer_bytes,
            progress=reporter,
            stats=stats,
            hasher=self._span_hasher(),
            streamed=self._streamed(),
            xorb_http=self._xorb_http(),
            worker_blobs=worker_blobs,
        )
        return job, stats, reporter

    def _xorb_http(self) -> HttpClient | None:
        """A client whose streamed xorb GETs read their bodies in the session's worker pool
        (off this thread) when there is one, else None (the session's own client)."""
        if self._xorb_client is _UNSET:
            client = None
            pool = getattr(self._hasher_factory, "pool", None)  # a PoolHasherFactory
            if pool is not None and hasattr(pool, "streams") and self._streamed():
                from ..io.pool_fetch import worker_stream_transport

                transport = worker_stream_transport(pool, self.http.transport)
                if transport is not None:
                    client = self.http.with_transport(transport)
            self._xorb_client = client
        return self._xorb_client

    async def _output(
        self,
        job: RangeDownload | None,
        stats: DownloadStats,
        reporter: DownloadProgress,
        started: float,
    ) -> AsyncIterator[Any]:
        """The pieces of ``job``, then ``stats.elapsed`` is set. ``job`` None is an empty
        download (0-byte file): nothing to fetch, reported as done at once, no pieces."""
        if job is None:
            await reporter.set_phase("done")
            return
        async with contextlib.aclosing(job.pieces()) as pieces:
            async for piece in pieces:
                yield piece
        stats.elapsed = time.monotonic() - started

    async def _retry_on_cache_corruption(
        self,
        file_hash: Any,
        size: Any,
        byte_range: Any,
        progress: Any,
        consume: Callable[[AsyncIterator[memoryview], DownloadStats, float], Awaitable[_T]],
    ) -> _T:
        """``consume(pieces, stats, started)`` of a new download (``started``: its
        ``time.monotonic()``); run once more from the start when it fails verification and
        cached bytes were involved (the failed check dropped them from the cache, so the
        second run fetches everything from the network)."""
        for attempt in (1, 2):
            started = time.monotonic()
            job, stats, reporter = await self._start(file_hash, size, byte_range, progress)
            try:
                async with contextlib.aclosing(
                    self._output(job, stats, reporter, started)
                ) as pieces:
                    return await consume(pieces, stats, started)
            except XetIntegrityError:
                if attempt == 2 or not stats.cache_hits:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _span_hasher(self) -> Any:
        """What hashes decoded chunks: the worker pool behind the session's chunk hasher when
        there is one (in parallel, off this thread), else the kernels on this thread."""
        pooled = span_hasher_for(self._hasher_factory)
        return pooled if pooled is not None else InProcessChunkHasher()

    def _streamed(self) -> bool:
        option = self.config.download_streamed
        return self.cas.http.transport.browser if option is None else bool(option)

    async def download_stream(
        self,
        file_hash: Any,
        size: Any,
        *,
        byte_range: Any = None,
        progress: Any = None,
        block_size: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Blocks of ``block_size`` bytes (default ``config.block_size``) in file order."""
        block = _int(block_size or self.config.block_size, "block_size")
        started = time.monotonic()
        job, stats, reporter = await self._start(file_hash, size, byte_range, progress)
        pending: deque[memoryview] = deque()
        held = emitted = 0
        async with contextlib.aclosing(self._output(job, stats, reporter, started)) as pieces:
            async for piece in pieces:
                pending.append(piece)
                held += len(piece)
                # Never release the block holding the last byte before verification passed.
                while held >= block and emitted + block < stats.bytes_total:
                    held -= block
                    emitted += block
                    yield _take(pending, block)
        if held:
            yield _take(pending, held)

    async def download_pieces(
        self,
        file_hash: Any,
        size: Any,
        *,
        byte_range: Any = None,
        progress: Any = None,
        blob_pieces: bool = False,
    ) -> AsyncIterator[Any]:
        """The bytes as read-only ``memoryview`` pieces of any size, in file order, not
        copied (for glue that copies them elsewhere anyway, e.g. into JS memory).

        A full download is verified *after* the last piece, before the iterator finishes:
        the data is complete and correct only when iteration ends without an error.

        ``blob_pieces`` (for ``downloadToBlob``): where the pool's workers read the xorb
        bodies and there is no chunk cache, they also decode them into Blobs, and those
        ranges' pieces are :class:`~xet_pyodide.io.worker_decode.BlobPiece` s (JS Blob
        slices) instead of memoryviews.
        """
        started = time.monotonic()
        job, stats, reporter = await self._start(file_hash, size, byte_range, progress, blob_pieces)
        async with contextlib.aclosing(self._output(job, stats, reporter, started)) as pieces:
            async for piece in pieces:
                yield piece if isinstance(piece, BlobPiece) else piece.toreadonly()

    async def download_bytes(
        self, file_hash: Any, size: Any, *, byte_range: Any = None, progress: Any = None
    ) -> bytes:
        """The whole file (or ``byte_range``) in memory. Holds it twice at the very end."""

        async def collect(
            pieces: AsyncIterator[memoryview], stats: DownloadStats, started: float
        ) -> bytes:
            out = bytearray(stats.bytes_total)
            pos = 0
            async for piece in pieces:
                out[pos : pos + len(piece)] = piece
                pos += len(piece)
            return bytes(out)

        return await self._retry_on_cache_corruption(file_hash, size, byte_range, progress, collect)

    async def download_to_file(
        self,
        file_hash: Any,
        size: Any,
        path: str | os.PathLike[str],
        *,
        byte_range: Any = None,
        progress: Any = None,
    ) -> DownloadStats:
        """Write the file (or ``byte_range``) to ``path``, replacing it only on success."""
        target = os.fspath(path)
        part = target + PART_SUFFIX

        async def write(
            pieces: AsyncIterator[memoryview], stats: DownloadStats, started: float
        ) -> DownloadStats:
            try:
                with open(part, "wb") as f:
                    async for piece in pieces:
                        f.write(piece)
            except BaseException:
                _unlink(part)
                raise
            os.replace(part, target)
            stats.elapsed = time.monotonic() - started  # includes the close and the rename
            return stats

        return await self._retry_on_cache_corruption(file_hash, size, byte_range, progress, write)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


__all__ = ["PART_SUFFIX", "DownloadMixin", "cache_for", "coerce_file_hash", "resolve_range"]
