"""What the download fetcher and the worker pool's transport share when a pool worker decodes
the body it reads (:mod:`.pool_fetch`, op ``fetch`` with ``decode`` of
``web/xet_worker.mjs``). Plain Python, importable outside Pyodide: the session layer sets
:data:`WORKER_DECODE` around one xorb range GET; only the worker transport reads it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class WorkerDecode:
    """A request that the worker reading a xorb range's body decode it (see module
    docstring): ``chunks`` records expected, ``hint`` their decoded size, ``hash`` whether to
    hash them (keyed BLAKE3, data key), ``length`` the body's expected length."""

    chunks: int
    hint: int
    hash: bool
    length: int
    #: The worker's answer once the body decoded: a JS ``{blobs, sizes, digests}``.
    result: Any = None


#: The :class:`WorkerDecode` for the streamed GETs of the current task (None: bodies as data).
WORKER_DECODE: ContextVar[WorkerDecode | None] = ContextVar("xet_worker_decode", default=None)


class BodyBytes:
    """Stands for ``n`` body bytes that a worker read and decoded itself (no data here)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class BlobPiece:
    """A piece of a download that is JS ``Blob`` s (parts of a worker-decoded range, in
    order) rather than bytes in memory; ``len()`` is their total size."""

    __slots__ = ("blobs", "size")

    def __init__(self, blobs: list[Any], size: int) -> None:
        self.blobs = blobs
        self.size = size

    def __len__(self) -> int:
        return self.size


__all__ = ["WORKER_DECODE", "BlobPiece", "BodyBytes", "WorkerDecode"]
