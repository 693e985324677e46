"""Result types of an upload session (small dataclasses with ``to_dict()`` for JSON/JS)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FileResult:
    """One uploaded file. ``hash`` is the Xet file hash (xet hex); ``sha256`` is the ordinary
    hex digest, or None when it was skipped."""

    name: str | None
    hash: str
    size: int
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class UploadMetrics:
    """Byte counters of a commit.

    ``total_bytes = new_bytes + deduped_bytes + deduped_bytes_global``: every byte of every file
    is either stored in a new xorb, found earlier in this session (``deduped_bytes``) or found
    on the server through a global-dedup query (``deduped_bytes_global``).
    ``xorb_bytes_uploaded``/``shard_bytes_uploaded`` count request bodies actually sent
    (a xorb the server already had costs nothing). ``bytes_resumed`` (part of
    ``deduped_bytes``): bytes found in xorbs an earlier, interrupted upload left on the server
    (upload resume).
    """

    total_bytes: int = 0
    new_bytes: int = 0
    deduped_bytes: int = 0
    deduped_bytes_global: int = 0
    bytes_resumed: int = 0
    xorb_bytes_uploaded: int = 0
    shard_bytes_uploaded: int = 0
    new_chunks: int = 0
    deduped_chunks: int = 0
    deduped_chunks_global: int = 0
    xorbs_uploaded: int = 0
    shards_uploaded: int = 0
    global_dedup_queries: int = 0
    #: Xorbs of the resume state this session could use, and those found missing.
    resumed_xorbs: int = 0
    resume_missing_xorbs: int = 0
    #: Highest number of bytes the upload pipeline held at once (see SessionConfig).
    peak_buffered_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class CommitResult:
    """What :meth:`XetSession.commit` returns: per-file results (in start order) and metrics."""

    files: list[FileResult] = field(default_factory=list)
    metrics: UploadMetrics = field(default_factory=UploadMetrics)

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.to_dict() for f in self.files], "metrics": self.metrics.to_dict()}


__all__ = ["CommitResult", "FileResult", "UploadMetrics"]
