"""Layer 4: sessions. :class:`XetSession` uploads files (chunk → dedup → xorbs → shard) and
downloads them (reconstruction → ranged fetch → decode → verify)."""

from __future__ import annotations

from .config import SessionConfig
from .hasher import ChunkBatch, ChunkHasher, InProcessChunkHasher
from .results import CommitResult, FileResult, UploadMetrics
from .session import XetSession
from .upload import COMPUTE, SKIP, FileUpload

__all__ = [
    "COMPUTE",
    "SKIP",
    "ChunkBatch",
    "ChunkHasher",
    "CommitResult",
    "FileResult",
    "FileUpload",
    "InProcessChunkHasher",
    "SessionConfig",
    "UploadMetrics",
    "XetSession",
]
