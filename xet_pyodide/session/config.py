"""Tunables of a session, uploads and downloads (defaults suit both the browser and CPython)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..io.transport import default_download_buffer_bytes

MIB = 1024 * 1024


@dataclass(frozen=True)
class SessionConfig:
    """Knobs of :class:`~xet_pyodide.session.XetSession`.

    ``max_buffered_bytes`` bounds the data the upload pipeline holds at once: bytes written
    but not yet deduplicated or packed, packed records of unfinished xorbs, and finished xorbs
    waiting for or in upload. Writers wait when it is reached. Serializing a xorb briefly
    needs one more xorb's worth (≤ 64 MiB) on top.
    """

    max_buffered_bytes: int = 256 * MIB
    #: Size of the slices ``upload_bytes`` feeds through the pipeline.
    block_size: int = 8 * MIB
    #: Written chunks are held this long (bytes) waiting for global-dedup answers before
    #: they are packed; half of the window is committed at a time.
    dedup_window_bytes: int = 16 * MIB
    max_concurrent_xorb_uploads: int = 8
    #: Serialized size limit of the xorbs we build (protocol maximum 64 MiB, what hf_xet uses).
    #: Smaller xorbs mean more, smaller requests: less memory per upload in a browser tab.
    max_xorb_bytes: int = 64 * MIB
    #: Global dedup (§6): queries run in the background with this much concurrency.
    global_dedup: bool = True
    max_concurrent_dedup_queries: int = 4
    #: Besides each file's first chunk, at most one query per this many bytes of a file.
    dedup_query_spacing: int = 4_000_000
    #: Minimum time between two progress events (phase changes and the last event excepted).
    progress_interval: float = 0.1
    #: Downloads: xorb ranges fetched at once (one HTTP request each).
    max_concurrent_downloads: int = 8
    #: Downloads: bytes of fetched and decoded xorb ranges held at once (a stream's memory
    #: bound). Only the range the output is waiting for may overdraw it. Default 256 MiB, 96 MiB
    #: under Pyodide, whose heap never shrinks and whose page holds Blob parts too (the runtime
    #: check lives in :func:`~xet_pyodide.io.transport.default_download_buffer_bytes`).
    download_buffer_bytes: int = field(default_factory=default_download_buffer_bytes)
    #: Downloads: chunk cache kind, "auto" | "memory" | "disk" | "browser" | "none" ("auto":
    #: disk when ``chunk_cache_dir`` is set, the Cache API in a browser, else memory).
    chunk_cache: str = "auto"
    chunk_cache_dir: str | None = None
    #: Size cap of the chunk cache (None: 256 MiB in memory, 4 GiB on disk / in a browser).
    chunk_cache_bytes: int | None = None
    #: Downloads: decode xorb bytes block by block as they arrive (None: when the transport
    #: is a browser's fetch, where it keeps the page's loader busy; httpx reads whole bodies
    #: on its own thread instead).
    download_streamed: bool | None = None
    #: Upload resume (see :mod:`~xet_pyodide.session.resume`): records older than this
    #: (seconds) are dropped, journals untouched this long deleted.
    resume_max_age: float = 7 * 24 * 3600.0
    #: Check (``HEAD``) that the server still has each recorded xorb before relying on it.
    resume_verify: bool = True

    def __post_init__(self) -> None:
        if self.max_buffered_bytes < 2 * self.dedup_window_bytes + self.block_size:
            raise ValueError(
                "max_buffered_bytes must be at least 2 * dedup_window_bytes + block_size"
            )
        if self.block_size <= 0 or self.dedup_window_bytes <= 0:
            raise ValueError("block_size and dedup_window_bytes must be positive")
        if self.max_concurrent_xorb_uploads < 1 or self.max_concurrent_dedup_queries < 1:
            raise ValueError("concurrency limits must be at least 1")
        if self.max_concurrent_downloads < 1 or self.download_buffer_bytes < 1:
            raise ValueError("download concurrency and buffer must be at least 1")
        if self.chunk_cache not in ("auto", "memory", "disk", "browser", "none"):
            raise ValueError(f"unknown chunk_cache kind {self.chunk_cache!r}")


__all__ = ["MIB", "SessionConfig"]
