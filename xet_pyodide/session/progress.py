"""Progress events: a throttled stream of dicts handed to a user callback.

The callback may be a Python callable (sync or async) or, under Pyodide, a JavaScript
function (it then receives a JS object). Events look like::

    {"phase": "processing" | "uploading_xorbs" | "uploading_shard" | "validating_shard" | "done",
     "bytes_processed": int,        # bytes of file data chunked and deduplicated so far
     "bytes_total": int | None,     # sum of the files' sizes when all are known
     "bytes_transferred": int,      # xorb bytes sent so far
     "bytes_resumed": int,          # bytes found in xorbs of an earlier, interrupted upload
     "files": [{"name": str | None, "bytes_processed": int, "size": int | None,
                "bytes_packed": int, "bytes_uploaded": int,
                # only for a file whose upload failed or was cancelled (left out of the
                # totals and of the commit):
                "abandoned": True}, ...],
     # while validating the shard, when the server reports it:
     "shard_verified": int, "shard_total": int,
     "retries": int,                # requests retried so far in this batch
     # only in the event announcing a retry (emitted before its wait):
     "retry": {"what": str, "attempt": int, "max_attempts": int, "delay": float,
               "reason": str}}

``retry``: attempt ``attempt`` of ``max_attempts`` of ``what`` ("xorb upload", "shard
upload", ...) failed because of ``reason`` ("HTTP 503", "server unreachable (...)"; never a
URL), and the next starts in ``delay`` seconds. Without it, a dead server looks like an upload
stuck at 0 % for the whole backoff (about 20 s with the default policy).

Events are at least ``interval`` seconds apart, except phase changes, the end of each file and
the final event.
"""

from __future__ import annotations

from typing import Any

from ..io.retry import RetryNotice
from .throttle import ThrottledProgress

PHASES = ("processing", "uploading_xorbs", "uploading_shard", "validating_shard", "done")


class FileProgress:
    """Counters of one file. ``bytes_packed``: serialized xorb bytes of its new chunks so far;
    ``bytes_uploaded``: how many of those are in xorbs the server has acknowledged (a file
    whose chunks were all deduplicated has nothing to upload)."""

    __slots__ = ("abandoned", "bytes_packed", "bytes_processed", "bytes_uploaded", "name", "size")

    def __init__(self, name: str | None, size: int | None) -> None:
        self.name = name
        self.size = size
        self.bytes_processed = 0
        self.bytes_packed = 0
        self.bytes_uploaded = 0
        self.abandoned = False  # its upload failed or was cancelled (FileUpload.abandon)


class ProgressReporter(ThrottledProgress):
    """Collects upload counters; emits events through ``callback`` (``None`` = counters only)."""

    PHASES = PHASES

    def __init__(self, callback: Any = None, **kwargs: Any) -> None:
        super().__init__(callback, **kwargs)
        self.bytes_transferred = 0
        self.bytes_resumed = 0
        self.files: list[FileProgress] = []
        self.shard_progress: tuple[int, int] | None = None
        self.retries = 0

    async def announce_retry(self, notice: RetryNotice) -> None:
        """Emit an event carrying ``retry`` (see the module docstring), now."""
        self.retries += 1
        await self.emit_retry(notice.to_dict())

    def add_file(self, name: str | None, size: int | None) -> FileProgress:
        progress = FileProgress(name, size)
        self.files.append(progress)
        return progress

    def event(self) -> dict[str, Any]:
        # Abandoned files (failed or cancelled uploads) stay listed, flagged, but leave the
        # totals: the others can still reach 100 %.
        live = [f for f in self.files if not f.abandoned]
        sizes = [f.size for f in live]
        total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
        files = []
        for f in self.files:
            entry: dict[str, Any] = {
                "name": f.name,
                "bytes_processed": f.bytes_processed,
                "size": f.size,
                "bytes_packed": f.bytes_packed,
                "bytes_uploaded": f.bytes_uploaded,
            }
            if f.abandoned:
                entry["abandoned"] = True
            files.append(entry)
        event: dict[str, Any] = {
            "phase": self.phase,
            "bytes_processed": sum(f.bytes_processed for f in live),
            "bytes_total": total,
            "bytes_transferred": self.bytes_transferred,
            "bytes_resumed": self.bytes_resumed,
            "files": files,
        }
        if self.phase == "validating_shard" and self.shard_progress is not None:
            event["shard_verified"], event["shard_total"] = self.shard_progress
        event["retries"] = self.retries
        if self._retry is not None:
            event["retry"] = self._retry
        return event


__all__ = ["PHASES", "FileProgress", "ProgressReporter"]
