"""Download progress events and per-download statistics.

The callback (Python sync/async callable, or a JavaScript function under Pyodide) receives::

    {"phase": "downloading" | "verifying" | "done",
     "bytes_done": int,       # output bytes produced so far (in file order)
     "bytes_total": int,      # output bytes this download produces
     "bytes_fetched": int}    # xorb bytes fetched from the network so far (not the cache)

Events are at least ``interval`` seconds apart, except phase changes and the final event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .throttle import ThrottledProgress

DOWNLOAD_PHASES = ("downloading", "verifying", "done")


@dataclass
class DownloadStats:
    """What one download did. ``verified``: ``"file"`` (the file hash was recomputed and
    matched), ``"xorbs"`` (ranged: every fetched range was a whole xorb whose hash matched),
    ``"partial"`` (ranged: some were), ``"none"`` (ranged: none was; 0-byte files: trivially
    ``"file"``)."""

    file_hash: str
    bytes_total: int
    bytes_fetched: int = 0
    bytes_from_cache: int = 0
    fetch_requests: int = 0
    cache_hits: int = 0
    ranges: int = 0
    url_refreshes: int = 0
    refetches: int = 0
    xorbs_verified: int = 0
    verified: str = "none"
    elapsed: float = 0.0
    #: Where the time went (seconds of this thread's CPU work, not wall time): decoding
    #: records (including the chunk hashing done in the same kernel call when hashing runs on
    #: this thread), hashing chunks separately (with a worker pool of ≥ 3: handing batches
    #: to it and waiting), and the output waiting for data.
    decode_seconds: float = 0.0
    hash_seconds: float = 0.0
    wait_seconds: float = 0.0
    #: Most bytes (estimated: fetched + decoded) held at once by ranges in flight.
    peak_buffered_bytes: int = 0
    #: Ranges decoded (and hashed) by the pool worker that read their body, into Blobs
    #: (``downloadToBlob`` with a worker pool and no chunk cache).
    worker_decoded: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DownloadProgress(ThrottledProgress):
    """Throttled progress events for one download (``callback=None``: counters only)."""

    PHASES = DOWNLOAD_PHASES
    KIND = "download"

    def __init__(
        self,
        callback: Any,
        bytes_total: int,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(callback, interval=interval, clock=clock)
        self.bytes_total = bytes_total
        self.bytes_done = 0
        self.bytes_fetched = 0

    def event(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "bytes_fetched": self.bytes_fetched,
        }


__all__ = ["DOWNLOAD_PHASES", "DownloadProgress", "DownloadStats"]
