"""``HubClient``: repositories on a Hugging Face Hub, through Xet, in CPython and Pyodide.

    async with HubClient("https://huggingface.co", token) as hub:   # or HF_ENDPOINT / HF_TOKEN
        await hub.create_repo("me/my-model", exist_ok=True)
        result = await hub.upload_files("me/my-model", [("weights.bin", data),
                                                        ("config.json", "local/config.json")])
        data = await hub.download_file("me/my-model", "weights.bin")     # verified
        async for entry in hub.list_files("me/my-model", recursive=True): ...

Uploads: :mod:`.upload`. Downloads resolve the file (:meth:`HubApi.file_info`); a Xet file is
then downloaded by a :class:`~xet_pyodide.XetSession` with a read token from the file's
``xet-auth`` link (refreshed through it), verified against its Xet hash and kept in the
client's chunk cache (a repeat download fetches nothing); other files come from the resolve
URL, a full download checked against the ETag (git blob id or sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import XetIntegrityError, XetResponseError
from ..io.cache import ChunkCache
from ..io.retry import RetryPolicy
from ..io.runtime import default_transport
from ..io.tokens import TokenInfo, coerce_token_info
from ..io.transport import Transport
from ..session import InProcessChunkHasher, SessionConfig, XetSession
from ..session.download import cache_for, resolve_range
from ..session.download_progress import DownloadStats
from ..session.hasher import ChunkHasher
from .api import FileInfo, HubApi
from .payloads import git_blob_oid
from .repo import parse_repo
from .sources import as_source
from .upload import CommitOptions, HubUpload, HubUploadResult

#: The Hub the Hub's own tools talk to unless ``HF_ENDPOINT`` says otherwise.
DEFAULT_ENDPOINT = "https://huggingface.co"


def default_endpoint() -> str:
    """``HF_ENDPOINT`` if set, else the public Hub (as huggingface_hub decides)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def default_token() -> str | None:
    """``HF_TOKEN`` if set (huggingface_hub also reads a saved login; we do not)."""
    return os.environ.get("HF_TOKEN") or None


class BorrowedTransport:
    """A transport shared by the client's sessions: everything delegates to the client's,
    except :meth:`aclose` (a session closing must not close it for the others)."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.browser = inner.browser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aclose(self) -> None:
        """The owner closes the transport."""


class UploadMemory:
    """Where the chunks of earlier uploads are, per CAS: what hf_xet's local shard cache gives
    it. A new upload session starts from a copy, so a file committed again with changes sends
    only the changed chunks without depending on the server's global-dedup answers (which
    only find xorbs through sampled chunks). Only registered chunks are kept (copied after a
    successful ``finalize()``); at most ``max_chunks`` (the oldest are forgotten first)."""

    def __init__(self, max_chunks: int = 1 << 17) -> None:
        self.max_chunks = max_chunks
        self._by_cas: dict[str, dict[bytes, Any]] = {}

    def index_for(self, cas_url: str) -> dict[bytes, Any]:
        """A copy to start a session on ``cas_url`` with."""
        return dict(self._by_cas.get(cas_url, {}))

    def remember(self, session: XetSession) -> None:
        known = self._by_cas.setdefault(session.endpoint, {})
        known.update(session.session_index)
        for stale in list(known)[: max(0, len(known) - self.max_chunks)]:
            del known[stale]


class HubTokenRefresher:
    """The token refresher of a session: GETs a repository's Xet token endpoint (``…/xet-
    {read|write}-token/{rev}``, or a file's ``xet-auth`` link) with the Hub token."""

    def __init__(self, api: HubApi, url: str) -> None:
        self.api = api
        self.url = url
        self.calls = 0

    async def __call__(self) -> TokenInfo:
        self.calls += 1
        resp = await self.api.call("GET", self.url, "Xet token")
        try:
            data = json.loads(resp.body)
        except ValueError:
            raise XetResponseError("the token endpoint did not answer JSON", url=self.url) from None
        return coerce_token_info(data)


class HubClient:
    """The Hub at ``hub_url`` (default: ``HF_ENDPOINT``, else ``https://huggingface.co``) with
    ``token`` (default: ``HF_TOKEN``; None for public repositories only).

    Keyword-only: ``transport`` (shared by all requests), ``config`` (the sessions'
    :class:`~xet_pyodide.SessionConfig`), ``chunk_hasher_factory`` (e.g. a browser's worker
    pool), ``chunk_cache`` (downloads: a :class:`~xet_pyodide.io.cache.ChunkCache`, a kind
    such as ``"memory"``/``"disk"``, or ``False``; default ``config.chunk_cache``), ``retry``,
    ``memory`` (an :class:`UploadMemory` to share between clients; default: one per client),
    ``resume`` (upload resume store of the upload sessions, as ``XetSession(resume=…)``; each
    repository's Xet token URL is its scope, so repositories never share resume state).
    """

    def __init__(
        self,
        hub_url: str | None = None,
        token: str | None = None,
        *,
        transport: Transport | None = None,
        config: SessionConfig | None = None,
        chunk_hasher_factory: Callable[[], ChunkHasher] = InProcessChunkHasher,
        chunk_cache: Any = None,
        retry: RetryPolicy | None = None,
        memory: UploadMemory | None = None,
        resume: Any = None,
    ) -> None:
        self._resume = resume
        self.transport = transport or default_transport()
        self.memory = memory if memory is not None else UploadMemory()
        self.api = HubApi(
            hub_url or default_endpoint(),
            token if token is not None else default_token(),
            self.transport,
            retry=retry,
        )
        self.config = config or SessionConfig()
        self._hasher_factory = chunk_hasher_factory
        self._retry = retry
        self._cache_option = chunk_cache
        self._cache: ChunkCache | None | bool = False  # False: not opened yet

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    # ------------------------------------------------------------------ repositories

    async def create_repo(
        self,
        repo: Any,
        *,
        repo_type: str | None = None,
        private: bool | None = None,
        exist_ok: bool = False,
    ) -> dict[str, str]:
        """Create a repository; ``{"repoUrl", "id"}``. ``exist_ok``: an existing one is fine
        (otherwise a :class:`~xet_pyodide.errors.XetHubConflictError`)."""
        return await self.api.create_repo(
            parse_repo(repo, repo_type), private=private, exist_ok=exist_ok
        )

    async def list_files(
        self,
        repo: Any,
        *,
        repo_type: str | None = None,
        revision: str = "main",
        path: str = "",
        recursive: bool = False,
        expand: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Tree entries as the Hub lists them (``{type, path, size, oid, lfs?, xetHash?,
        lastCommit? (expand)}``); directories too, all levels with ``recursive``."""
        async for item in self.api.list_files(
            parse_repo(repo, repo_type), revision, path, recursive=recursive, expand=expand
        ):
            yield item

    # ------------------------------------------------------------------ uploads

    def upload(
        self,
        repo: Any,
        files: list[Any],
        *,
        repo_type: str | None = None,
        branch: str = "main",
        commit_title: str | None = None,
        commit_description: str = "",
        parent_commit: str | None = None,
        progress: Any = None,
    ) -> HubUpload:
        """The :class:`~xet_pyodide.hub.upload.HubUpload` behind :meth:`upload_files` (for
        glue that needs its ``request_abort``)."""
        options = CommitOptions(branch, commit_title, commit_description, parent_commit)
        sources = [as_source(f) for f in files]
        return HubUpload(
            self.api, parse_repo(repo, repo_type), sources, options, self._upload_session,
            progress, finalized=self.memory.remember,
        )  # fmt: skip

    async def upload_files(self, repo: Any, files: list[Any], **options: Any) -> HubUploadResult:
        """Commit ``files`` to ``repo`` on ``branch`` (one commit). A file is an
        :class:`~xet_pyodide.hub.sources.UploadSource`, ``(path_in_repo, bytes | local
        path)`` or ``{"path", "content" | "local_path"}``. Options: ``repo_type``, ``branch``
        (default ``main``), ``commit_title``, ``commit_description``, ``parent_commit``,
        ``progress`` (callback; see :mod:`xet_pyodide.hub.progress`)."""
        return await self.upload(repo, files, **options).run()

    async def _upload_session(self, token_url: str, progress: Any, api: HubApi) -> XetSession:
        """The upload session of one :class:`HubUpload`; its Xet tokens come through that
        upload's ``api`` (whose retries its progress announces)."""
        refresher = HubTokenRefresher(api, token_url)
        token = await refresher()
        known = self.memory.index_for(token.cas_url or "")
        return self._session(
            token,
            refresher,
            progress=progress,
            session_index=known,
            resume=self._resume,
            resume_scope=token_url,
        )

    def _session(self, token: TokenInfo, refresher: Any, **kwargs: Any) -> XetSession:
        if not token.cas_url:
            raise XetResponseError("the Xet token endpoint named no casUrl")
        return XetSession(
            token.cas_url, token, refresher,
            transport=BorrowedTransport(self.transport),  # type: ignore[arg-type]
            config=self.config, chunk_hasher_factory=self._hasher_factory, retry=self._retry,
            **kwargs,
        )  # fmt: skip

    # ------------------------------------------------------------------ downloads

    async def file_info(self, repo: Any, path: str, *, repo_type: str | None = None,
                        revision: str = "main") -> FileInfo:  # fmt: skip
        """Size, ETag, commit and (for a Xet file) hash and links of ``path`` at ``revision``;
        :class:`~xet_pyodide.errors.XetHubNotFoundError` if there is no such file."""
        return await self.api.file_info(parse_repo(repo, repo_type), path, revision)

    async def chunk_cache(self) -> ChunkCache | None:
        """The downloads' chunk cache, opened on first use (shared by every download)."""
        if self._cache is False:
            self._cache = await cache_for(self._cache_option, self.config)
        return self._cache  # type: ignore[return-value]

    @contextlib.asynccontextmanager
    async def read_session(self, info: FileInfo) -> AsyncIterator[XetSession]:
        """A session reading ``info``'s Xet file: read token from its ``xet-auth`` link."""
        assert info.auth_url is not None
        refresher = HubTokenRefresher(self.api, info.auth_url)
        token = await refresher()
        cache = await self.chunk_cache()
        session = self._session(token, refresher, chunk_cache=False if cache is None else cache)
        try:
            yield session
        finally:
            await session.aclose()

    async def download_pieces(
        self,
        info: FileInfo,
        *,
        byte_range: Any = None,
        progress: Any = None,
        blob_pieces: bool = False,
    ) -> AsyncIterator[Any]:
        """The bytes of a resolved file (or ``byte_range``, inclusive) as pieces; a full
        download is verified before the iterator ends (see
        :meth:`XetSession.download_pieces`, also for ``blob_pieces``)."""
        if info.xet_hash is None:
            yield memoryview(await self._plain_bytes(info, byte_range))
            return
        async with self.read_session(info) as session:
            pieces = session.download_pieces(
                info.xet_hash,
                info.size,
                byte_range=byte_range,
                progress=progress,
                blob_pieces=blob_pieces,
            )
            async with contextlib.aclosing(pieces):
                async for piece in pieces:
                    yield piece

    async def download_file(
        self, repo: Any, path: str, *, repo_type: str | None = None, revision: str = "main",
        byte_range: Any = None, progress: Any = None,
    ) -> bytes:  # fmt: skip
        """The file (or ``byte_range = (start, end_inclusive)``) in memory, verified."""
        info = await self.file_info(repo, path, repo_type=repo_type, revision=revision)
        if info.xet_hash is None:
            return await self._plain_bytes(info, byte_range)
        async with self.read_session(info) as session:
            return await session.download_bytes(
                info.xet_hash, info.size, byte_range=byte_range, progress=progress
            )

    async def download_stream(
        self, repo: Any, path: str, *, repo_type: str | None = None, revision: str = "main",
        byte_range: Any = None, progress: Any = None, block_size: int | None = None,
    ) -> AsyncIterator[bytes]:  # fmt: skip
        """The file (or ``byte_range``) as blocks of ``block_size`` bytes, in order; for a
        full download the last block only comes once the whole file was verified."""
        info = await self.file_info(repo, path, repo_type=repo_type, revision=revision)
        if info.xet_hash is None:
            data = await self._plain_bytes(info, byte_range)
            step = block_size or self.config.block_size
            for start in range(0, len(data), step):
                yield data[start : start + step]
            return
        async with self.read_session(info) as session:
            blocks = session.download_stream(
                info.xet_hash, info.size, byte_range=byte_range, progress=progress,
                block_size=block_size,
            )  # fmt: skip
            async with contextlib.aclosing(blocks):
                async for block in blocks:
                    yield block

    async def download_to_file(
        self, repo: Any, path: str, out: str | os.PathLike[str], *, repo_type: str | None = None,
        revision: str = "main", byte_range: Any = None, progress: Any = None,
    ) -> DownloadStats:  # fmt: skip
        """Write the file to ``out`` (replaced only once complete and verified)."""
        info = await self.file_info(repo, path, repo_type=repo_type, revision=revision)
        return await self.save_file(info, out, byte_range=byte_range, progress=progress)

    async def save_file(
        self, info: FileInfo, out: str | os.PathLike[str], *, byte_range: Any = None,
        progress: Any = None,
    ) -> DownloadStats:  # fmt: skip
        """:meth:`download_to_file` of a file already resolved (:meth:`file_info`)."""
        if info.xet_hash is not None:
            async with self.read_session(info) as session:
                return await session.download_to_file(
                    info.xet_hash, info.size, out, byte_range=byte_range, progress=progress
                )
        data = await self._plain_bytes(info, byte_range)
        part = os.fspath(out) + ".part"
        with open(part, "wb") as f:
            f.write(data)
        os.replace(part, out)
        stats = DownloadStats(info.etag or "", len(data), bytes_fetched=len(data))
        stats.verified = "file" if byte_range is None else "none"
        return stats

    async def _plain_bytes(self, info: FileInfo, byte_range: Any) -> bytes:
        """A non-Xet file from its resolve URL; a full download checked against the ETag."""
        span = resolve_range(info.size, byte_range)
        if span is None:
            return b""
        full = span == (0, info.size - 1)
        data = await self.api.get_content(info, None if full else span)
        if len(data) != span[1] - span[0] + 1:
            raise XetIntegrityError(
                f"{info.path}: {len(data)} bytes came, {span[1] - span[0] + 1} expected"
            )
        if full:
            _check_etag(info, data)
        return data

    async def aclose(self) -> None:
        await self.api.aclose()

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _check_etag(info: FileInfo, data: bytes) -> None:
    """A regular file's ETag is its git blob id, a large (non-Xet) file's its sha256."""
    etag = (info.etag or "").lower()
    if len(etag) == 40:
        actual = git_blob_oid(data)
    elif len(etag) == 64:
        actual = hashlib.sha256(data).hexdigest()
    else:
        return  # nothing to check against (the server sent no content id)
    if actual != etag:
        raise XetIntegrityError(f"{info.path}: the content does not match its ETag {etag}")


__all__ = [
    "DEFAULT_ENDPOINT",
    "BorrowedTransport",
    "HubClient",
    "HubTokenRefresher",
    "UploadMemory",
    "default_endpoint",
    "default_token",
]
