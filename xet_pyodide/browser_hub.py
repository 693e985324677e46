"""The Python side of ``xet.hub`` in ``web/xet_pyodide.js`` (Pyodide only): Hub repositories
from a web page, through :class:`~xet_pyodide.hub.HubClient`.

``BrowserXet.hub`` (one :class:`BrowserHub` per loaded instance) takes the JS calls' option
objects as they come (``{hubUrl, accessToken, repo, …}``, camelCase) and returns envelopes
(:func:`~xet_pyodide.io.jsbridge.envelope`), like :mod:`xet_pyodide.browser`. Uploads read
``File``/``Blob`` contents with the instance's worker pool, as ``uploadFile`` does, and share
one :class:`~xet_pyodide.hub.client.UploadMemory`; downloads share one chunk cache (the Cache
API by default) across calls.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from .errors import XetHubNotFoundError
from .hub import FileInfo, HubClient
from .hub.client import UploadMemory
from .hub.sources import UploadSource
from .io.blob import (
    BLOB_BLOCK,
    DownloadReader,
    blob_size,
    download_to_blob,
    open_download_stream,
    read_blob,
    read_slice,
    require_blob,
)
from .io.cache import ChunkCache, open_chunk_cache
from .io.jsbridge import abortable, camel_keys, envelope, notify, option
from .io.pool_hasher import blob_blocks, upload_chain
from .io.pool_sha import Sha256Chain
from .io.resume_browser import resume_option
from .io.workers import WorkerPool
from .session import COMPUTE, ChunkHasher, FileUpload, SessionConfig


class PageXet(Protocol):
    """What the hub side uses of the page's ``xet`` object — implemented by
    :class:`xet_pyodide.browser.BrowserXet`, which creates the :class:`BrowserHub` (stated here
    so that this module does not import it back)."""

    pool: WorkerPool | None
    sha256_worker: bool

    @property
    def hasher_factory(self) -> Callable[[], ChunkHasher]: ...


class BlobSource(UploadSource):
    """A ``File``/``Blob`` to commit, read by the pool's workers when there is a pool."""

    def __init__(self, path: str, blob: Any, xet: PageXet, block_size: int) -> None:
        self.path = path
        self.blob = require_blob(blob, "uploadFiles")
        self.size = blob_size(blob)
        self._xet = xet
        self._block = block_size
        self._chain: Sha256Chain | None = None  # made by upload_sha256(), fed by feed()

    async def head(self, n: int) -> bytes:
        return await read_slice(self.blob, 0, min(n, self.size))

    async def read_all(self) -> bytes:
        return await read_slice(self.blob, 0, self.size)

    async def sha256(self) -> str:
        pool = self._xet.pool
        if pool is not None:  # the side worker reads and digests the Blob
            return (await pool.sha256_blob(self.blob)).hex()
        digest = hashlib.sha256()
        async for block in read_blob(self.blob, block_size=self._block):
            digest.update(block)
        return digest.hexdigest()

    def upload_sha256(self) -> Any:
        pool = self._xet.pool
        if pool is not None and self._xet.sha256_worker:
            return pool.sha256_blob(self.blob)
        if pool is not None:  # chained by the workers from the pool's slots (feed below)
            self._chain = upload_chain(pool)
            if self._chain is not None:
                return self._chain.digest
        return COMPUTE

    async def feed(self, upload: FileUpload) -> None:
        # With the pool, the workers read and scan the Blob (PooledChunkHasher.read_blob),
        # and chain its SHA-256 when upload_sha256() asked for it.
        chain, self._chain = self._chain, None
        blocks = blob_blocks(upload.hasher, self.blob, self._block, chain)
        async with contextlib.aclosing(blocks):
            async for block in blocks:
                await upload.write(block)


class _FileDownload:
    """One resolved file in the shape :func:`~xet_pyodide.io.blob.download_to_blob` and
    :func:`~xet_pyodide.io.blob.open_download_stream` read a session."""

    def __init__(self, client: HubClient, info: FileInfo) -> None:
        self.client = client
        self.info = info

    def download_pieces(
        self,
        _file_hash: Any,
        _size: Any,
        *,
        byte_range: Any = None,
        progress: Any = None,
        blob_pieces: bool = False,
    ) -> AsyncIterator[Any]:
        return self.client.download_pieces(
            self.info, byte_range=byte_range, progress=progress, blob_pieces=blob_pieces
        )


class BrowserHub:
    """What ``xet.hub`` calls (see ``web/xet_pyodide.js`` and ``docs/hub.md``)."""

    def __init__(
        self, xet: PageXet, *, max_buffered_bytes: int, max_concurrent_uploads: int
    ) -> None:
        self._xet = xet
        #: the page's upload bounds (``SessionConfig``), as ``xet``'s own sessions use them
        self._max_buffered_bytes = max_buffered_bytes
        self._max_concurrent_uploads = max_concurrent_uploads
        self._cache: ChunkCache | None = None
        #: what this page's uploads registered: a file committed again sends only its changes
        self._memory = UploadMemory()

    async def _client(self, params: Any, *, downloads: bool = False) -> HubClient:
        config = SessionConfig(
            block_size=int(option(params, "blockSize", BLOB_BLOCK)),
            max_buffered_bytes=self._max_buffered_bytes,
            max_concurrent_xorb_uploads=self._max_concurrent_uploads,
        )
        cache = option(params, "chunkCache")
        if cache is None and downloads:  # one cache for every download of this instance
            if self._cache is None:
                self._cache = await open_chunk_cache()  # the Cache API in a page
            cache = self._cache if self._cache is not None else False
        return HubClient(
            option(params, "hubUrl"),
            option(params, "accessToken") or "",
            config=config,
            chunk_hasher_factory=self._xet.hasher_factory,
            chunk_cache=cache,
            memory=self._memory,
            resume=resume_option(option(params, "resume")),
        )

    async def _run(self, params: Any, work: Any, *, downloads: bool = False) -> Any:
        client = await self._client(params, downloads=downloads)
        try:
            return await work(client)
        finally:
            await client.aclose()

    # ---------------------------------------------------------------- uploads

    async def _upload(self, params: Any) -> dict[str, Any]:
        listener = option(params, "onProgress")

        async def progress(event: dict[str, Any]) -> None:
            await notify(listener, camel_keys(event))

        async def work(client: HubClient) -> dict[str, Any]:
            block = client.config.block_size
            sources = [BlobSource(str(f.path), f.content, self._xet, block) for f in params.files]
            upload = client.upload(
                option(params, "repo"), sources,
                branch=option(params, "branch", "main"),
                commit_title=option(params, "commitTitle"),
                commit_description=option(params, "commitDescription", ""),
                parent_commit=option(params, "parentCommit"),
                progress=progress if listener is not None else None,
            )  # fmt: skip
            signal = option(params, "signal")
            result = await abortable(upload.run(), signal, cancellable=upload.request_abort)
            return camel_keys(result.to_dict())

        return await self._run(params, work)

    def upload_files(self, params: Any) -> Awaitable[Any]:
        return envelope(self._upload(params))

    # ---------------------------------------------------------------- downloads

    async def _resolve(self, client: HubClient, params: Any) -> FileInfo | None:
        try:
            return await client.file_info(
                option(params, "repo"), str(option(params, "path")),
                revision=option(params, "revision", "main"),
            )  # fmt: skip
        except XetHubNotFoundError as exc:
            if exc.error_code == "EntryNotFound":
                return None  # as @huggingface/hub's downloadFile: null for a missing file
            raise

    async def _download(self, params: Any) -> Any:
        async def work(client: HubClient) -> Any:
            info = await self._resolve(client, params)
            if info is None:
                return None
            return await download_to_blob(_FileDownload(client, info), "", info.size, params)

        return await self._run(params, work, downloads=True)

    def download_file(self, params: Any) -> Awaitable[Any]:
        return envelope(abortable(self._download(params), option(params, "signal")))

    async def _open(self, params: Any) -> _ClosingReader | None:
        client = await self._client(params, downloads=True)
        try:
            info = await self._resolve(client, params)
            if info is not None:
                download = _FileDownload(client, info)
                reader = await open_download_stream(download, "", info.size, params)
                return _ClosingReader(reader, client)
        except BaseException:
            await client.aclose()
            raise
        await client.aclose()
        return None

    def open_download(self, params: Any) -> Awaitable[Any]:
        return envelope(self._open(params))

    def read_download(self, reader: _ClosingReader) -> Awaitable[Any]:
        return envelope(reader.read())

    def cancel_download(self, reader: _ClosingReader) -> Awaitable[Any]:
        return envelope(reader.cancel())

    # ---------------------------------------------------------------- repositories

    def list_files(self, params: Any) -> Awaitable[Any]:
        async def work(client: HubClient) -> list[Any]:
            entries = client.list_files(
                option(params, "repo"), revision=option(params, "revision", "main"),
                path=option(params, "path", ""), recursive=bool(option(params, "recursive")),
                expand=bool(option(params, "expand")),
            )  # fmt: skip
            return [item async for item in entries]

        return envelope(self._run(params, work))

    def create_repo(self, params: Any) -> Awaitable[Any]:
        async def work(client: HubClient) -> dict[str, str]:
            visibility = option(params, "visibility")
            private = option(params, "private")
            if visibility is not None:
                private = visibility != "public"
            return await client.create_repo(
                option(params, "repo"), private=private, exist_ok=bool(option(params, "existOk"))
            )

        return envelope(self._run(params, work))


class _ClosingReader:
    """A :class:`~xet_pyodide.io.blob.DownloadReader` that closes its client when the stream
    ends, fails or is cancelled."""

    def __init__(self, inner: DownloadReader, client: HubClient) -> None:
        self._inner = inner
        self._client = client

    async def read(self) -> Any:
        try:
            piece = await self._inner.read()
        except BaseException:
            await self._client.aclose()
            raise
        if piece is None:
            await self._client.aclose()
        return piece

    async def cancel(self) -> None:
        try:
            await self._inner.cancel()
        finally:
            await self._client.aclose()


__all__ = ["BlobSource", "BrowserHub"]
