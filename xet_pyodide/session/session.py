"""``XetSession``: the front door for uploads and downloads.

Async-first (Pyodide has no threads): every network wait is an ``await`` on the running event
loop, CPU work runs in bounded blocks between them.

A session owns what uploads and downloads share — the transport, the token source, the
:class:`~xet_pyodide.io.cas.CasClient` (``session.cas``) and the dedup indexes — and one
batch of uploads at a time: files started with :meth:`XetSession.start_upload` /
:meth:`XetSession.upload_bytes` since the last :meth:`XetSession.finalize` are registered by
the next ``finalize()`` (xet-core's word for the step; "commit" is left to repository
commits). Downloads (``download_bytes``, ``download_stream``, ``download_to_file``) come
from :class:`~xet_pyodide.session.download.DownloadMixin`.
"""

from __future__ import annotations

import inspect
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..io.cas import CasClient
from ..io.digest import sha256_in_background
from ..io.http import HttpClient
from ..io.resume_dir import DirectoryResumeBackend
from ..io.retry import RetryNotice, RetryPolicy
from ..io.runtime import default_resume_backend, default_transport
from ..io.tokens import TokenSource, coerce_token_info
from ..io.transport import Transport
from .config import SessionConfig
from .dedup import GlobalDedupIndex
from .download import DownloadMixin
from .hasher import ChunkHasher, InProcessChunkHasher
from .packing import Location
from .pipeline import UploadPipeline
from .progress import ProgressReporter
from .results import CommitResult, FileResult
from .resume import ResumeBackend, UploadResume
from .upload import COMPUTE, FileUpload

Buffer = bytes | bytearray | memoryview


def _check_endpoint(endpoint: Any) -> str:
    """The CAS endpoint, which must be an absolute http(s) URL: anything else would be taken
    relative to the page by ``fetch`` and fail later with a confusing HTTP error."""
    from urllib.parse import urlsplit

    text = str(endpoint).strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"the CAS endpoint must be an absolute http(s) URL such as "
            f"'https://cas-server.example', got {text!r}"
        )
    return text


def _resume_backend(option: Any) -> ResumeBackend | None:
    if option is False:
        return None
    if option is None or option is True:
        backend = default_resume_backend()
        if backend is None and option is True:
            raise ValueError("no default upload resume store here: pass a ResumeBackend")
        return backend
    if isinstance(option, (str, os.PathLike)):
        return DirectoryResumeBackend(option)
    if isinstance(option, ResumeBackend):
        return option
    raise TypeError(f"resume= must be None, a bool, a directory or a ResumeBackend, not {option!r}")


class XetSession(DownloadMixin):
    """Upload files to a Xet CAS server, exactly as hf_xet does, and download them.

    ``endpoint``: the CAS URL (``casUrl`` of the token endpoint); may be omitted when
    ``token_info`` carries it. ``token_info``: the initial access token (a ``TokenInfo``, a
    ``(token, exp)`` tuple, a dict/JS object with ``token``/``accessToken`` and ``exp``).
    ``token_refresher``: called (sync or async, or a JS object with ``refreshToken()``) when the
    token is about to expire or was rejected.

    Keyword-only: ``transport`` (default: httpx under CPython, fetch under Pyodide), ``config``
    (:class:`SessionConfig`), ``progress`` (callback receiving event dicts), ``retry``
    (:class:`~xet_pyodide.io.retry.RetryPolicy`), ``custom_headers``, ``session_id``,
    ``chunk_hasher_factory`` (a pluggable chunk-and-hash stage, e.g. a worker pool), ``clock``
    (wall clock, for token and dedup-key expiry), ``chunk_cache`` (downloads: a
    :class:`~xet_pyodide.io.cache.ChunkCache`, a kind such as ``"memory"``, or ``False`` for
    none; default: ``config.chunk_cache``), ``session_index`` (the chunks this session knows
    where to find, by raw hash: a copy of an earlier session's :attr:`session_index` on the
    same CAS makes this one deduplicate against what that one registered, without asking the
    server; default: empty), ``resume`` (upload resume, :mod:`~xet_pyodide.session.resume`:
    ``None`` = the default store — a directory under the user's cache dir in CPython, none
    under Pyodide —, ``False`` = off, a directory path, or a
    :class:`~xet_pyodide.session.resume.ResumeBackend`), ``resume_scope`` (what besides the
    endpoint keys the resume state, e.g. the repository; default ``""``).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        token_info: Any = None,
        token_refresher: Any = None,
        *,
        transport: Transport | None = None,
        config: SessionConfig | None = None,
        progress: Any = None,
        retry: RetryPolicy | None = None,
        custom_headers: Mapping[str, str] | None = None,
        session_id: str | None = None,
        chunk_hasher_factory: Callable[[], ChunkHasher] = InProcessChunkHasher,
        clock: Callable[[], float] = time.time,
        chunk_cache: Any = None,
        session_index: dict[bytes, Location] | None = None,
        resume: Any = None,
        resume_scope: str = "",
    ) -> None:
        info = coerce_token_info(token_info) if token_info is not None else None
        endpoint = endpoint or (info.cas_url if info is not None else None)
        if not endpoint:
            raise ValueError("a CAS endpoint is required (or a token_info carrying casUrl)")
        endpoint = _check_endpoint(endpoint)
        self.config = config or SessionConfig()
        self.transport = transport or default_transport()
        self.tokens = TokenSource(info, token_refresher, clock=clock)
        policy = retry or RetryPolicy()
        self._retry_listener = policy.on_retry
        self.http = HttpClient(
            self.transport,
            self.tokens,
            retry=policy.announcing(self._announce_retry),
            session_id=session_id,
            custom_headers=custom_headers,
        )
        self.cas = CasClient(endpoint, self.http)
        self.progress_callback = progress
        self.clock = clock
        self._hasher_factory = chunk_hasher_factory
        self._session_index: dict[bytes, Location] = {} if session_index is None else session_index
        self._global_index = GlobalDedupIndex(clock)
        self._pipeline: UploadPipeline | None = None
        self._finalizing: UploadPipeline | None = None  # the finalize() running, if any
        self.commits: list[CommitResult] = []
        self._chunk_cache_option = chunk_cache
        backend = _resume_backend(resume)
        #: The upload resume journal of this session (None when resuming is off).
        self.resume: UploadResume | None = None
        if backend is not None:
            self.resume = UploadResume(
                backend,
                endpoint,
                resume_scope,
                max_age=self.config.resume_max_age,
                verify=self.config.resume_verify,
                clock=clock,
            )

    async def _announce_retry(self, notice: RetryNotice) -> None:
        """Every retry of this session's requests: to the caller's own listener (the policy's
        ``on_retry``), then as a progress event of the upload batch running, if any."""
        if self._retry_listener is not None:
            result = self._retry_listener(notice)
            if inspect.isawaitable(result):
                await result
        pipeline = self._finalizing or self._pipeline
        if pipeline is not None:
            await pipeline.progress.announce_retry(notice)

    @property
    def endpoint(self) -> str:
        return self.cas.endpoint

    @property
    def session_index(self) -> dict[bytes, Location]:
        """Chunk hash → where the chunk is, for every chunk of a xorb this session uploaded
        and registered (or was given at construction). After a successful :meth:`finalize`
        everything in it is registered on the server."""
        return self._session_index

    def _current(self) -> UploadPipeline:
        if self._finalizing is not None:
            # Its xorbs are not registered yet: a new upload must not deduplicate against them.
            raise RuntimeError("finalize() is in progress; start new uploads after it returns")
        if self._pipeline is None:
            progress = ProgressReporter(
                self.progress_callback, interval=self.config.progress_interval
            )
            self._pipeline = UploadPipeline(
                self.cas,
                self.config,
                session_index=self._session_index,
                global_index=self._global_index,
                progress=progress,
                hasher_factory=self._hasher_factory,
                clock=self.clock,
                resume=self.resume,
            )
        return self._pipeline

    # ------------------------------------------------------------------ uploads

    def start_upload(
        self, name: str | None = None, size: int | None = None, sha256: Any = COMPUTE
    ) -> FileUpload:
        """Open a streaming upload: ``await up.write(block)`` …, then ``await up.finish()``;
        if the data cannot be completed, ``await up.abandon()`` (the next :meth:`finalize`
        refuses to run while an upload is neither finished nor abandoned)."""
        return self._current().start_file(name, size, sha256)

    async def upload_bytes(
        self, data: Buffer, *, name: str | None = None, sha256: Any = COMPUTE
    ) -> FileResult:
        """Upload one in-memory file (registered at the next :meth:`finalize`).

        Under Pyodide the SHA-256 is computed by WebCrypto in parallel (when the buffer is
        within ``max_buffered_bytes``: it is copied once into JS memory for that).
        """
        view = memoryview(data).cast("B")
        if sha256 is COMPUTE and len(view) <= self.config.max_buffered_bytes:
            sha256 = sha256_in_background(view) or COMPUTE
        upload = self.start_upload(name, len(view), sha256)
        try:
            step = self.config.block_size
            for start in range(0, len(view), step):
                await upload.write(view[start : start + step])
            return await upload.finish()
        except BaseException:
            await upload.abandon()  # finalize() goes on without this file
            raise

    async def upload_file(
        self, path: str, *, name: str | None = None, sha256: Any = COMPUTE
    ) -> FileResult:
        """Upload a file from the (real or Emscripten) file system, read in blocks."""
        import os

        upload = self.start_upload(
            name if name is not None else path, os.path.getsize(path), sha256
        )
        try:
            with open(path, "rb") as f:
                while block := f.read(self.config.block_size):
                    await upload.write(block)
            return await upload.finish()
        except BaseException:
            await upload.abandon()  # finalize() goes on without this file
            raise

    async def finalize(self) -> CommitResult:
        """Upload remaining xorbs, then the shard(s) registering every finished file.

        Returns per-file results and the metrics of this batch. The session stays usable: the
        next upload starts a new batch (still deduplicating against this one).
        """
        pipeline = self._current()
        pipeline.check_ready()  # refused: the batch stays open (finish or abandon, retry)
        self._pipeline = None
        self._finalizing = pipeline
        try:
            result = await pipeline.finalize()
        finally:
            self._finalizing = None
        self.commits.append(result)
        return result

    async def commit(self) -> CommitResult:
        """Deprecated alias of :meth:`finalize` (kept for one release)."""
        warnings.warn(
            "XetSession.commit() is deprecated, use finalize() (the same step)",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.finalize()

    @property
    def finalize_cancellable(self) -> bool:
        """Whether cancelling a running :meth:`finalize` now has a known outcome: true until
        its shard upload starts (a cancellation then drops the batch, nothing is registered);
        false from then on (the shard may reach the server whatever the client does). Glue
        that cancels ``finalize()`` on a user's request (the browser's ``finalize({signal})``)
        lets one past that point finish instead."""
        pipeline = self._finalizing
        return pipeline is None or not pipeline.sending_shards

    async def abort(self) -> None:
        """Drop the files uploaded since the last :meth:`finalize`: background work stops and
        no shard is sent."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            await pipeline.abort()

    async def aclose(self) -> None:
        await self.abort()
        if self.resume is not None:
            await self.resume.flush()  # xorbs acknowledged before the abort stay recorded
        await self.http.aclose()

    async def __aenter__(self) -> XetSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


__all__ = ["XetSession"]
