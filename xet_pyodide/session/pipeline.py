"""State shared by the files of one batch of uploads, and its ``finalize()``.

An :class:`UploadPipeline` lives from the first ``start_upload`` of a batch until
``finalize()`` returns: it owns the packer, the xorb upload queue, the byte budget and the
metrics. The dedup indexes outlive it (they belong to the session), so a later batch of the
same session still deduplicates against earlier ones.

Finalize order (protocol §8): seal the remaining drafts → wait for every xorb upload → build
the shard(s) → upload them. If any xorb failed, no shard is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ..core.hashes import MerkleHash
from ..errors import XetAbortedError, XetResumeStaleError, XetServerError
from ..io.cas import CasClient
from ..kernels import load_kernels
from .budget import ByteBudget
from .config import SessionConfig
from .dedup import DedupQueries, GlobalDedupIndex
from .hasher import ChunkHasher, InProcessChunkHasher
from .packing import Location, Packer, SealedXorb, XorbDraft, resolve
from .progress import ProgressReporter
from .results import CommitResult, UploadMetrics
from .resume import ResumedXorb, UploadResume, exists_all, xorbs_named_in
from .shards import FileRecord, build_shards, file_entry
from .upload import FileUpload
from .xorb_uploads import XorbUploader


class UploadPipeline:
    """See module docstring."""

    def __init__(
        self,
        cas: CasClient,
        config: SessionConfig,
        *,
        session_index: dict[bytes, Location],
        global_index: GlobalDedupIndex,
        progress: ProgressReporter,
        hasher_factory: Callable[[], ChunkHasher] = InProcessChunkHasher,
        clock: Callable[[], float] = time.time,
        resume: UploadResume | None = None,
    ) -> None:
        self.cas = cas
        #: The session's upload resume journal (None: resuming is off).
        self.resume = resume
        self.config = config
        self.session_index = session_index
        self.global_index = global_index
        self.progress = progress
        self.clock = clock
        self.metrics = UploadMetrics()
        self.budget = ByteBudget(config.max_buffered_bytes)
        self.uploader = XorbUploader(
            cas,
            self.budget,
            max_concurrent=config.max_concurrent_xorb_uploads,
            on_progress=self._on_xorb_uploaded,
        )
        self.packer = Packer(
            self.uploader.submit,
            max_xorb_bytes=config.max_xorb_bytes,
            checksum=cas.use_grants,  # grant uploads send the body's CRC-64
        )
        self.queries = DedupQueries(
            cas,
            global_index,
            enabled=config.global_dedup,
            max_concurrent=config.max_concurrent_dedup_queries,
            spacing=config.dedup_query_spacing,
        )
        self._hasher_factory = hasher_factory
        self.files: list[FileUpload] = []
        self._finished: list[FileUpload] = []
        self.committed = False
        #: Set by :meth:`finalize` once nothing but the shard upload is left, before the
        #: "uploading_shard" phase is announced: from then on, cancelling the commit could
        #: leave it registered or not (glue that cancels on a user's request lets it finish,
        #: so a listener seeing that phase already sees the commit as past its point of no
        #: return).
        self.sending_shards = False
        #: Set by :meth:`abort` (the session's ``abort()`` or ``aclose()``).
        self.aborted = False
        self._kernels_ready = False

    # ------------------------------------------------------------------ files

    def start_file(self, name: str | None, size: int | None, sha256: Any) -> FileUpload:
        if self.committed:
            raise RuntimeError("this batch of uploads was finalized or aborted; start a new one")
        upload = FileUpload(self, len(self.files), name, size, sha256, self._hasher_factory())
        self.files.append(upload)
        return upload

    def file_finished(self, upload: FileUpload) -> None:
        self._finished.append(upload)

    async def ensure_kernels(self) -> None:
        """Load the wasm kernels asynchronously once (a browser main thread may refuse the
        synchronous compilation that ``get_kernels()`` would otherwise do)."""
        if not self._kernels_ready:
            await load_kernels()
            if self.resume is not None:
                # Before any chunk is placed: chunks of xorbs an interrupted upload left on
                # the server are then found like this session's own.
                await self.resume.load_into(self.cas, self.session_index)
            self._kernels_ready = True

    def check_failed(self) -> None:
        """Raise the first xorb upload error, if any (stop feeding a failing commit)."""
        if self.uploader.error is not None:
            raise self.uploader.error

    def check_open(self, name: str | None) -> None:
        """Refuse more data for a file once this commit is over: aborted (the session's
        ``abort()`` or ``aclose()`` during the upload) or committed."""
        if self.committed:
            label = repr(name) if name else "this file"
            why = "its session was closed or aborted" if self.aborted else "finalize() already ran"
            raise XetAbortedError(f"the upload of {label} was stopped: {why}")

    async def reserve(self, n: int) -> None:
        """Account ``n`` more buffered bytes, waiting for uploads to free room when needed."""
        budget = self.budget
        while budget.would_exceed(n):
            self.check_failed()
            if self.uploader.in_flight:
                await budget.wait_for_release()
            elif not self.packer.seal_largest():
                break  # only pending window data is held: overdraw rather than deadlock
        budget.take(n)

    def _on_xorb_uploaded(self, xorb: SealedXorb) -> None:
        if self.resume is not None:
            self.resume.acknowledged(xorb)
        body = xorb.body
        self.progress.bytes_transferred += len(body) if body is not None else 0
        files = self.progress.files
        for file_id, n in xorb.file_bytes.items():
            if 0 <= file_id < len(files):
                files[file_id].bytes_uploaded += n

    # ------------------------------------------------------------------ finalize

    def check_ready(self) -> None:
        """Raise if an upload is neither finished nor abandoned (nothing is changed)."""
        unfinished = [f.name for f in self.files if not f.finished and not f.abandoned]
        if unfinished:
            raise RuntimeError(f"finish or abandon these uploads before finalize(): {unfinished}")

    async def finalize(self) -> CommitResult:
        self.check_ready()
        self.committed = True
        progress = self.progress
        succeeded = False
        try:
            self.packer.seal_all()
            await progress.set_phase("uploading_xorbs")
            await self.uploader.wait_all()
            records = [f.record for f in self.files if f.record is not None]
            # Xorbs of an interrupted upload that our terms use are listed like our own: the
            # shard is what registers them (they may never have been registered).
            resumed = _resumed_xorbs(records)
            shards = build_shards(
                [file_entry(r) for r in records],
                [x.shard_entry() for x in self.packer.sealed] + [x.shard_entry() for x in resumed],
            )
            if self.resume is not None:
                await self.resume.flush()
            # A cancellation requested while this task ran (an abort listener called from a
            # progress event) is only delivered at a suspension point: take one now, so that it
            # cannot land after the point of no return below.
            await asyncio.sleep(0)
            self.sending_shards = bool(shards)  # before the phase is announced (see __init__)
            if records:
                await progress.set_phase("uploading_shard")
            for body in shards:
                try:
                    result = await self.cas.upload_shard(body, self._on_shard_event)
                except XetServerError as exc:
                    await self._check_resumed_refused(exc, resumed)
                    raise
                self.metrics.shard_bytes_uploaded += result.bytes_sent
                self.metrics.shards_uploaded += 1
            succeeded = True
            if self.resume is not None:
                # Registered now: the journal only keeps what a later upload could not find.
                registered = [x.hash for x in self.packer.sealed]
                await self.resume.forget(registered + [x.hash for x in resumed if x.hash])
        finally:
            await self.queries.aclose()
            await self.uploader.aclose()
            self._settle_drafts(succeeded)
        metrics = self.metrics
        metrics.total_bytes = sum(f.result.size for f in self.files if f.result is not None)
        metrics.xorb_bytes_uploaded = self.uploader.bytes_sent
        metrics.xorbs_uploaded = len(self.uploader.uploaded)
        metrics.global_dedup_queries = self.queries.issued
        if self.resume is not None:
            metrics.resumed_xorbs = self.resume.loaded_xorbs
            metrics.resume_missing_xorbs = self.resume.missing_xorbs
        metrics.peak_buffered_bytes = self.budget.peak
        await progress.set_phase("done")
        return CommitResult([f.result for f in self.files if f.result is not None], metrics)

    async def _check_resumed_refused(self, exc: XetServerError, resumed: list[ResumedXorb]) -> None:
        """A shard refused because it names resumed xorbs the server lost (it answered the
        existence check, then lost them; or the check was off): forget them — journal and
        session index — and raise :class:`XetResumeStaleError` (uploading again works)."""
        named = xorbs_named_in(str(exc))
        if not any(x.hash is not None and x.hash.hex() in named for x in resumed):
            return
        # The server names the first missing xorb only: check the other resumed ones too.
        found = await exists_all(self.cas, resumed)
        missing = [
            x
            for x, exists in zip(resumed, found, strict=True)
            if exists is not True or (x.hash is not None and x.hash.hex() in named)
        ]
        hashes: list[MerkleHash] = [x.hash for x in missing if x.hash is not None]
        if self.resume is not None:
            await self.resume.forget(hashes)
        gone = {id(x) for x in missing}
        index = self.session_index
        for key in [k for k, loc in index.items() if id(loc[0]) in gone]:
            del index[key]
        raise XetResumeStaleError(
            f"the shard was refused: {len(missing)} xorb(s) recorded by an earlier upload "
            "are not on the server any more; they were dropped from the resume state, "
            f"upload again ({exc})",
            xorbs=[h.hex() for h in hashes],
            status=exc.status,
            request_id=exc.request_id,
            server_message=exc.server_message,
        ) from exc

    async def _on_shard_event(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "validating":
            return
        verified, total = frame.get("verified"), frame.get("total")
        if isinstance(verified, int) and isinstance(total, int):
            self.progress.shard_progress = (verified, total)
        if self.progress.phase != "validating_shard":
            await self.progress.set_phase("validating_shard")
        else:
            await self.progress.tick()

    async def abort(self) -> None:
        """Stop background work (queries, uploads) without sending a shard."""
        self.committed = True
        self.aborted = True
        await self.queries.aclose()
        await self.uploader.aclose()
        self._settle_drafts(False)

    def _settle_drafts(self, registered: bool) -> None:
        """After the commit: its xorbs are usable by later commits only if the shard was
        accepted. Otherwise forget every session-dedup entry pointing at them."""
        if registered:
            for draft in self.packer.drafts:
                draft.registered = True
            return
        index = self.session_index
        for key in [k for k, loc in index.items() if _unregistered(loc)]:
            del index[key]


def _resumed_xorbs(records: list[FileRecord]) -> list[ResumedXorb]:
    """The resumed xorbs the files' terms use, once each."""
    seen: dict[int, ResumedXorb] = {}
    for record in records:
        for term in record.terms:
            if isinstance(term.ref, ResumedXorb):
                seen.setdefault(id(term.ref), term.ref)
    return list(seen.values())


def _unregistered(location: Location) -> bool:
    ref, _ = resolve(*location)
    return isinstance(ref, XorbDraft) and not ref.registered


__all__ = ["UploadPipeline"]
