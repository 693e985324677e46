"""Committing files to a Hub repository: preupload, Xet upload, NDJSON commit.

:class:`HubUpload` runs the flow huggingface_hub and @huggingface/hub run, with one upload
session for all large files:

1. **preupload** — the Hub says for each path whether its content goes through Xet (``lfs``)
   or inline in the commit (``regular``: small text files), whether ``.gitignore`` excludes it
   (``shouldIgnore``: skipped) and what the path holds now (``oid``);
2. a file whose content equals that ``oid`` is skipped (for a large file this needs its
   SHA-256 first: one extra read, only for paths the repository already has);
3. the large files go through one :class:`~xet_pyodide.XetSession` (chunking, dedup, xorbs,
   SHA-256 in the same pass) with a Xet write token from the repository's token endpoint,
   refreshed through it; ``finalize()`` uploads the shard;
4. the commit names each large file by SHA-256 and size and carries the small ones inline.

Nothing is committed unless every step before succeeded. Cancelling (``asyncio`` cancellation,
or :meth:`HubUpload.request_abort` from an ``AbortSignal``) before the commit is sent leaves the
repository as it was; once the commit is sent its outcome is the Hub's, so an abort requested
then is ignored (``request_abort`` says so) and a cancelled task cannot know it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import XetAbortedError
from ..session import XetSession
from ..session.results import UploadMetrics
from .api import HubApi
from .payloads import (
    SAMPLE_BYTES,
    CommitInfo,
    InlineAddition,
    LfsAddition,
    Operation,
    UploadMode,
    commit_body,
    git_blob_oid,
)
from .progress import HubProgress
from .repo import RepoId
from .sources import UploadSource

#: Opens the upload session for a Xet write-token endpoint URL.
SessionOpener = Callable[[str, Any, HubApi], Awaitable[XetSession]]


@dataclass(frozen=True, slots=True)
class HubFileResult:
    """One file of an upload. ``mode``: ``lfs`` (uploaded through Xet; ``xet_hash`` set),
    ``regular`` (sent inline), ``unchanged`` (the repository already had this content at this
    path: not sent) or ``ignored`` (excluded by the repository's ``.gitignore``).
    ``uploaded``: whether its content is part of the commit."""

    path: str
    size: int
    mode: str
    uploaded: bool
    sha256: str | None = None
    xet_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class HubUploadResult:
    """``commit_oid``: the new commit, or the branch's head when nothing changed (then
    ``committed`` is false and no commit was made)."""

    commit_oid: str
    commit_url: str
    committed: bool
    files: list[HubFileResult] = field(default_factory=list)
    pull_request_url: str | None = None
    metrics: UploadMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit_oid": self.commit_oid,
            "commit_url": self.commit_url,
            "committed": self.committed,
            "pull_request_url": self.pull_request_url,
            "files": [f.to_dict() for f in self.files],
            "metrics": self.metrics.to_dict() if self.metrics else None,
        }


@dataclass(frozen=True, slots=True)
class CommitOptions:
    """What the commit says: ``branch`` it goes on, ``title`` (default ``Upload N files``),
    ``description``, ``parent_commit`` (the commit is refused with a conflict if the branch
    moved past it)."""

    branch: str = "main"
    title: str | None = None
    description: str = ""
    parent_commit: str | None = None


class HubUpload:
    """One upload-and-commit (see module docstring); :meth:`run` once. ``open_session(token
    URL, progress callback, Hub API)`` opens the upload session (its Xet tokens fetched
    through that API, which announces retries in this upload's progress);
    ``finalized(session)`` is told once its shard was accepted (before the commit; e.g.
    :class:`~.client.UploadMemory`)."""

    def __init__(
        self,
        api: HubApi,
        repo: RepoId,
        sources: list[UploadSource],
        options: CommitOptions,
        open_session: SessionOpener,
        progress: Any = None,
        finalized: Callable[[XetSession], None] | None = None,
    ) -> None:
        paths = [s.path for s in sources]
        if len(set(paths)) != len(paths):
            raise ValueError("the same path appears twice among the files to upload")
        if not sources:
            raise ValueError("no files to upload")
        self.progress = HubProgress(progress, [(s.path, s.size) for s in sources])
        #: The Hub API as this upload uses it: its retries are announced in the progress.
        self.api = api.announcing(self.progress.announce_retry)
        self.repo = repo
        self.sources = sources
        self.options = options
        self._open_session = open_session
        self._finalized = finalized
        self.session: XetSession | None = None
        self.committing = False
        self.abort_requested = False

    def request_abort(self) -> bool:
        """Note that the caller wants to stop; True if the work may be cancelled right now.
        False while the shard is being sent (its outcome would be unknown: the commit is
        skipped once it is through) and once the commit is sent (the abort is ignored)."""
        self.abort_requested = True
        if self.committing:
            return False
        return self.session is None or self.session.finalize_cancellable

    async def run(self) -> HubUploadResult:
        branch = self.options.branch
        modes = await self._preupload()
        results: dict[str, HubFileResult] = {}
        inline: list[InlineAddition] = []
        large: list[tuple[UploadSource, str | None]] = []
        for source in self.sources:
            mode = modes[source.path]
            if mode.should_ignore:
                results[source.path] = HubFileResult(source.path, source.size, "ignored", False)
            elif mode.mode == "regular" or source.size == 0:
                content = await source.read_all()
                results[source.path] = _regular(source.path, content, mode)
                self.progress.processed(source.path, len(content))
                if results[source.path].uploaded:
                    inline.append(InlineAddition(source.path, content))
            else:
                large.append((source, mode.oid))
        for path, result in results.items():
            self.progress.set_mode(path, result.mode)
        operations: list[Operation] = []
        metrics = None
        try:
            todo = await self._skip_unchanged(large, results)
            if todo:
                metrics = await self._upload_large(todo, results)
            operations = [
                LfsAddition(r.path, r.sha256 or "", r.size)
                for r in (results[s.path] for s, _ in todo)
            ]
        finally:
            if self.session is not None:
                await self.session.aclose()
        operations += inline
        if self.abort_requested:
            raise XetAbortedError("aborted before the commit: the repository is unchanged")
        files = [results[s.path] for s in self.sources]
        if not operations:  # nothing changed: no commit, like huggingface_hub
            head = await self.api.revision_sha(self.repo, branch)
            await self.progress.set_phase("done")
            return HubUploadResult(head, self._commit_url(head), False, files, metrics=metrics)
        info = await self._commit(operations)
        await self.progress.set_phase("done")
        return HubUploadResult(
            info.oid, info.url or self._commit_url(info.oid), True, files,
            info.pull_request_url, metrics,
        )  # fmt: skip

    async def _preupload(self) -> dict[str, UploadMode]:
        await self.progress.set_phase("preuploading")
        heads = [(s.path, s.size, await s.head(SAMPLE_BYTES)) for s in self.sources]
        return await self.api.preupload(self.repo, self.options.branch, heads)

    async def _skip_unchanged(
        self, large: list[tuple[UploadSource, str | None]], results: dict[str, HubFileResult]
    ) -> list[tuple[UploadSource, str | None]]:
        """The large files to upload, with their SHA-256 when it had to be read to compare
        with what the repository holds; the unchanged ones go to ``results``."""
        todo: list[tuple[UploadSource, str | None]] = []
        for source, remote in large:
            if remote is None:
                todo.append((source, None))
                continue
            await self.progress.set_phase("hashing")
            sha = await source.sha256()
            if sha == remote:
                results[source.path] = HubFileResult(
                    source.path, source.size, "unchanged", False, sha
                )
                self.progress.set_mode(source.path, "unchanged")
                continue
            todo.append((source, sha))
        return todo

    async def _upload_large(
        self, todo: list[tuple[UploadSource, str | None]], results: dict[str, HubFileResult]
    ) -> UploadMetrics:
        token_url = self.api.token_url(self.repo, "write", self.options.branch)
        self.session = session = await self._open_session(
            token_url, self.progress.session_event, self.api
        )
        for source, _ in todo:
            self.progress.set_mode(source.path, "lfs")
        for source, sha in todo:
            self.progress.session_file(source.path)
            digest = sha or source.upload_sha256()
            try:
                upload = session.start_upload(source.path, source.size, digest)
            except BaseException:
                if isinstance(digest, asyncio.Future):
                    digest.cancel()  # refused: stop a digest computed elsewhere
                raise
            try:
                await source.feed(upload)
                done = await upload.finish()
            except BaseException:
                await upload.abandon()
                raise
            results[source.path] = HubFileResult(
                source.path, done.size, "lfs", True, done.sha256, done.hash
            )
        metrics = (await session.finalize()).metrics
        if self._finalized is not None:
            self._finalized(session)
        return metrics

    async def _commit(self, operations: list[Operation]) -> CommitInfo:
        options = self.options
        title = options.title or f"Upload {len(operations)} file" + (
            "s" if len(operations) != 1 else ""
        )
        payload = commit_body(title, operations, options.description, options.parent_commit)
        self.committing = True
        await self.progress.set_phase("committing")
        return await self.api.commit(self.repo, options.branch, payload)

    def _commit_url(self, oid: str) -> str:
        return f"{self.api.endpoint}{self.repo.web_path}/commit/{oid}"


def _regular(path: str, content: bytes, mode: UploadMode) -> HubFileResult:
    sha = hashlib.sha256(content).hexdigest()
    unchanged = mode.oid is not None and mode.oid in (git_blob_oid(content), sha)
    return HubFileResult(path, len(content), "unchanged" if unchanged else "regular",
                         not unchanged, sha)  # fmt: skip


__all__ = ["CommitOptions", "HubFileResult", "HubUpload", "HubUploadResult", "SessionOpener"]
