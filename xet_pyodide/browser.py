"""The Python side of the JavaScript front door (``web/xet_pyodide.js``), Pyodide only.

``loadXet()`` in JS calls :func:`start` once; it returns a :class:`BrowserXet` (the hashing
worker pool, or none) whose methods the JS classes call. Every JS-facing method takes JS
values as they come (``File``/``Blob``, ``Uint8Array``, option objects, callbacks, token
objects — the session accepts JS token shapes directly) and returns an envelope
(:func:`xet_pyodide.io.jsbridge.envelope`) with camelCase results.

The work itself is the ordinary :class:`~xet_pyodide.session.XetSession`; this module only
adapts shapes. Anything touching ``js`` directly lives in :mod:`xet_pyodide.io`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from .browser_hub import BrowserHub
from .core.hashes import MerkleHash, file_hash
from .io.blob import (
    BLOB_BLOCK,
    DownloadReader,
    blob_name,
    blob_size,
    describe_js_value,
    download_to_blob,
    open_download_stream,
    read_blob,
    require_blob,
)
from .io.body_worker import set_body_worker_url
from .io.digest import sha256_in_background
from .io.jsbridge import abortable, camel_keys, envelope, error_envelope, notify, option
from .io.jsinterop import to_js_value
from .io.pool_hasher import PooledChunkHasher, PoolHasherFactory, blob_blocks, upload_chain
from .io.resume_browser import resume_option
from .io.workers import WorkerPool, isolation_available, start_pool
from .kernels import load_kernels
from .session import COMPUTE, SKIP, InProcessChunkHasher, SessionConfig, XetSession
from .session.hasher import ChunkBatch, ChunkHasher
from .session.results import CommitResult, FileResult

MIB = 1 << 20
#: A page's upload pipeline bound (``SessionConfig.max_buffered_bytes``; CPython uses 256 MiB).
#: Every buffered byte lives in the page's WebAssembly heap, which never shrinks. Xorbs leave
#: the bound when their upload starts (the transport holds them as Blobs): 128 MiB lets the
#: session pack the next xorbs meanwhile, for ~0.65-0.75 GiB peak renderer memory in
#: bench/browser.py --memory.
BROWSER_BUFFERED_BYTES = 128 * MIB
#: Xorb uploads in flight at once (each up to 64 MiB; the body's JS copy is a Blob).
BROWSER_CONCURRENT_UPLOADS = 4


def file_json(result: FileResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "fileHash": result.hash,
        "fileSize": result.size,
        "sha256": result.sha256,
    }


def finalize_json(result: CommitResult) -> dict[str, Any]:
    return {
        "files": [file_json(f) for f in result.files],
        "metrics": camel_keys(result.metrics.to_dict()),
    }


def sha256_option(value: Any) -> Any:
    """JS ``sha256`` option → the session's ``sha256=``: ``false``/``"skip"`` skip it,
    ``true``/absent compute it (``None``), a hex string / ``Uint8Array`` / ``Promise`` of a
    digest is used as given."""
    if value is None or value is True:
        return None
    if value is False:
        return SKIP
    return value


class ProgressRouter:
    """The session's one progress callback, fanned out to the JS listeners of the session,
    of each ``uploadFile`` call and of ``finalize``."""

    def __init__(self, session_listener: Any = None) -> None:
        self.session_listener = session_listener
        self.file_listeners: dict[int, Any] = {}
        self.finalize_listener: Any = None

    async def __call__(self, event: dict[str, Any]) -> None:
        common: dict[str, Any] = {
            "phase": event["phase"],
            "bytesProcessed": event["bytes_processed"],
            "bytesTotal": event["bytes_total"],
            "bytesTransferred": event["bytes_transferred"],
            "bytesResumed": event.get("bytes_resumed", 0),
        }
        if "shard_verified" in event:
            common["shardVerified"] = event["shard_verified"]
            common["shardTotal"] = event["shard_total"]
        common["retries"] = event.get("retries", 0)
        if "retry" in event:
            common["retry"] = camel_keys(event["retry"])
        files = event["files"]
        for index, listener in list(self.file_listeners.items()):
            if index < len(files):
                f = files[index]
                payload = {
                    **common,
                    "name": f["name"],
                    "fileSize": f["size"],
                    "fileBytesProcessed": f["bytes_processed"],
                    "fileBytesPacked": f.get("bytes_packed", 0),
                    "fileBytesUploaded": f.get("bytes_uploaded", 0),
                }
                if f.get("abandoned"):
                    payload["fileAbandoned"] = True  # the file's last event
                await notify(listener, payload)
        full = {**common, "files": camel_keys(files)}
        for listener in (self.session_listener, self.finalize_listener):
            if listener is not None:
                await notify(listener, full)


class BrowserSession:
    """What a JS ``XetSession`` wraps (see ``web/xet_pyodide.js``)."""

    def __init__(
        self, xet: BrowserXet, endpoint: Any, token_info: Any, refresher: Any, options: Any
    ) -> None:
        self._xet = xet
        self.router = ProgressRouter(option(options, "onProgress"))
        self.block_size = int(option(options, "blockSize", BLOB_BLOCK))
        config = SessionConfig(
            block_size=self.block_size,
            max_buffered_bytes=int(option(options, "maxBufferedBytes", BROWSER_BUFFERED_BYTES)),
            max_concurrent_xorb_uploads=int(
                option(options, "maxConcurrentUploads", BROWSER_CONCURRENT_UPLOADS)
            ),
        )
        self.session = XetSession(
            str(endpoint) if endpoint else None,
            token_info,
            refresher,
            config=config,
            progress=self.router,
            chunk_hasher_factory=xet.hasher_factory,
            # downloads: "browser" (Cache API, the default), "memory" or "none"/false
            chunk_cache=option(options, "chunkCache"),
            resume=resume_option(option(options, "resume")),
            resume_scope=str(option(options, "resumeScope", "") or ""),
        )

    async def _upload_blob(self, blob: Any, options: Any) -> dict[str, Any]:
        require_blob(blob, "uploadFile")
        name = option(options, "name") or blob_name(blob)
        sha = sha256_option(option(options, "sha256"))
        chain = None
        pool = self._xet.pool
        if sha is None and pool is not None:
            if self._xet.sha256_worker:
                sha = pool.sha256_blob(blob)  # the side worker reads and digests the Blob
            else:
                chain = upload_chain(pool)  # chained by the workers from the pool's slots
                sha = chain.digest if chain is not None else None
        try:
            upload = self.session.start_upload(name, blob_size(blob), sha)
        except BaseException:
            if isinstance(sha, asyncio.Future):
                sha.cancel()  # refused (e.g. a finalize() in progress): stop the digest
            raise
        self._listen(upload.file_id, options)
        # With the pool, the workers read and scan the Blob (PooledChunkHasher.read_blob).
        blocks = blob_blocks(upload.hasher, blob, self.block_size, chain)
        try:
            async with contextlib.aclosing(blocks):
                async for block in blocks:
                    await upload.write(block)
            return file_json(await upload.finish())
        except BaseException:
            # finalize() goes on without this file; abandoning also stops the digest
            await upload.abandon()
            raise
        finally:
            self.router.file_listeners.pop(upload.file_id, None)

    async def _upload_bytes(self, data: Any, options: Any) -> dict[str, Any]:
        if not (hasattr(data, "to_bytes") or isinstance(data, (bytes, bytearray, memoryview))):
            raise TypeError(
                "uploadBytes expects a Uint8Array, another typed array or an ArrayBuffer, got "
                f"{describe_js_value(data)} (a File or Blob goes to uploadFile)"
            )
        sha = sha256_option(option(options, "sha256"))
        if sha is None:  # WebCrypto on the JS buffer, in parallel with our chunking
            sha = sha256_in_background(data) or COMPUTE
        raw = data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)
        upload = self.session.start_upload(option(options, "name"), len(raw), sha)
        self._listen(upload.file_id, options)
        try:
            view = memoryview(raw)
            for start in range(0, len(view), self.block_size):
                await upload.write(view[start : start + self.block_size])
            return file_json(await upload.finish())
        except BaseException:
            await upload.abandon()  # finalize() goes on without this file
            raise
        finally:
            self.router.file_listeners.pop(upload.file_id, None)

    def _listen(self, file_id: int, options: Any) -> None:
        listener = option(options, "onProgress")
        if listener is not None:
            self.router.file_listeners[file_id] = listener

    async def _finalize(self, options: Any) -> dict[str, Any]:
        self.router.finalize_listener = option(options, "onProgress")
        try:
            return finalize_json(await self.session.finalize())
        finally:
            self.router.finalize_listener = None

    # ---------------------------------------------------------------- JS entry points

    def upload_file(self, blob: Any, options: Any = None) -> Awaitable[Any]:
        return envelope(abortable(self._upload_blob(blob, options), option(options, "signal")))

    def upload_bytes(self, data: Any, options: Any = None) -> Awaitable[Any]:
        return envelope(abortable(self._upload_bytes(data, options), option(options, "signal")))

    def finalize(self, options: Any = None) -> Awaitable[Any]:
        # An abort drops the batch while its xorbs upload; once the shard is being sent it is
        # ignored (the outcome would be unknown), so an AbortError always means "nothing
        # registered".
        work = abortable(
            self._finalize(options),
            option(options, "signal"),
            cancellable=lambda: self.session.finalize_cancellable,
        )
        return envelope(work)

    def abort(self) -> Awaitable[Any]:
        return envelope(self.session.abort())

    def close(self) -> Awaitable[Any]:
        return envelope(self.session.aclose())

    def download_to_blob(self, file_hash: Any, size: Any, options: Any = None) -> Awaitable[Any]:
        work = download_to_blob(self.session, str(file_hash), int(size), options)
        return envelope(abortable(work, option(options, "signal")))

    def open_download(self, file_hash: Any, size: Any, options: Any = None) -> Awaitable[Any]:
        return envelope(open_download_stream(self.session, str(file_hash), int(size), options))

    def read_download(self, reader: DownloadReader) -> Awaitable[Any]:
        return envelope(reader.read())

    def cancel_download(self, reader: DownloadReader) -> Awaitable[Any]:
        return envelope(reader.cancel())


class BrowserXet:
    """One loaded instance: the worker pool (or none) and factories for sessions.

    ``sha256_worker``: Blobs' SHA-256 on the pool's side worker (``WorkerPool.sha256_blob``),
    which reads each Blob a second time, instead of chained by the pool's workers from the
    blocks they read anyway (``io/pool_sha``). Off by default at every core count: both are
    one sequential SHA-256 stream (~0.48 GB/s in Chromium), so the side worker cannot finish
    a digest sooner and only adds the second read (docs/browser.md). Always off without a
    pool.
    """

    def __init__(self, pool: WorkerPool | None, sha256_worker: bool = False) -> None:
        self.pool = pool
        self.sha256_worker = bool(sha256_worker) and pool is not None
        #: ``xet.hub`` (Hub repositories: uploads, downloads, listings).
        self.hub = BrowserHub(
            self,
            max_buffered_bytes=BROWSER_BUFFERED_BYTES,
            max_concurrent_uploads=BROWSER_CONCURRENT_UPLOADS,
        )

    @property
    def hasher_factory(self) -> Callable[[], ChunkHasher]:
        return PoolHasherFactory(self.pool) if self.pool is not None else InProcessChunkHasher

    def info(self) -> Any:
        return to_js_value(
            {
                "workers": self.pool.size if self.pool else 0,
                "sha256Worker": self.sha256_worker,
                "crossOriginIsolated": isolation_available(),
            }
        )

    def session(self, endpoint: Any, token_info: Any, refresher: Any, options: Any = None) -> Any:
        """A :class:`BrowserSession` (a ``PyProxy`` for the JS ``XetSession``), or an error
        envelope."""
        try:
            return BrowserSession(self, endpoint, token_info, refresher, options)
        except Exception as exc:
            return error_envelope(exc)

    def hash_file(self, blob: Any, options: Any = None) -> Awaitable[Any]:
        return envelope(abortable(self._hash_blob(blob, options), option(options, "signal")))

    async def _hash_blob(self, blob: Any, options: Any) -> dict[str, Any]:
        """Xet file hash of a ``Blob`` without uploading (``sha256: true`` adds its SHA-256:
        chained by the pool's workers from the blocks they read, or on the pool's side worker
        with ``sha256Worker``; without a pool here, in the same pass)."""
        require_blob(blob, "hashFile")
        block_size = int(option(options, "blockSize", BLOB_BLOCK))
        want_sha = option(options, "sha256", False) is True
        sha = None
        digest = ""
        sizes: list[int] = []
        hashes = bytearray()
        size = 0
        chain = None
        if self.pool is not None and want_sha and not self.sha256_worker:
            chain = upload_chain(self.pool)
        if self.pool is not None and (self.sha256_worker or not want_sha or chain is not None):
            # the workers read, scan and hash the Blob, and chain its SHA-256 (or the side
            # worker digests it)
            size = blob_size(blob)
            side = None
            if chain is not None:
                side = chain.digest
            elif want_sha:
                side = self.pool.sha256_blob(blob)
            try:
                hasher = PooledChunkHasher(self.pool)
                found = await hasher.hash_blob(blob, block_size=block_size, sha256=chain)
                _extend(sizes, hashes, found)
                digest = (await side).hex() if side is not None else ""
            finally:
                if side is not None:
                    side.cancel()
        else:
            sha = hashlib.sha256() if want_sha else None
            generic = self.hasher_factory()
            async for block in read_blob(blob, block_size=block_size):
                size += len(block)
                if sha is not None:
                    sha.update(block)
                _extend(sizes, hashes, _unpack(await generic.update(memoryview(block))))
            _extend(sizes, hashes, _unpack(await generic.finish()))
        entries = [
            (MerkleHash(bytes(hashes[32 * i : 32 * i + 32])), n) for i, n in enumerate(sizes)
        ]
        return {
            "fileHash": file_hash(entries).hex(),
            "fileSize": size,
            "sha256": sha.hexdigest() if sha is not None else (digest or None),
            "chunks": len(entries),
        }

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _unpack(batch: ChunkBatch) -> tuple[list[int], bytes]:
    return [len(c) for c in batch.chunks], batch.hashes


def _extend(sizes: list[int], hashes: bytearray, part: tuple[list[int], bytes]) -> None:
    sizes.extend(part[0])
    hashes += part[1]


async def start(worker_url: str, workers: Any = None, sha256_worker: Any = None) -> BrowserXet:
    """Load the kernels and start the worker pool (``workers``: a count, or None for
    ``navigator.hardwareConcurrency``; 0 disables the pool). ``sha256_worker``: see
    :class:`BrowserXet`."""
    await load_kernels()
    set_body_worker_url(worker_url)  # xorb bodies held and sent by workers of their own
    pool = await start_pool(worker_url, None if workers is None else int(workers))
    return BrowserXet(pool, bool(sha256_worker))


__all__ = ["BrowserSession", "BrowserXet", "ProgressRouter", "finalize_json", "start"]
