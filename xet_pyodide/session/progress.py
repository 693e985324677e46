"""Progress events: a throttled stream of dicts handed to a user callback.

The callback may be a Python callable (sync or async) or, under Pyodide, a JavaScript
function (it then receives a JS object). Events look like::

    {"phase": "processing" | "uploading_xorbs" | "uploading_shard" | "validating_shard" | "done",
     "bytes_processed": int,        # bytes of file data chunked and deduplicated so far
     "bytes_total": int | None,     # sum of the files' sizes when all are known
     "bytes_transferred": int,      # xorb bytes sent so far
     "files": [{"name": str | None, "bytes_processed": int, "size": int | None}, ...],
     # while validating the shard, when the server reports it:
     "shard_verified": int, "shard_total": int}

Events are at least ``interval`` seconds apart, except phase changes and the final event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..io.jsinterop import invoke_callback

PHASES = ("processing", "uploading_xorbs", "uploading_shard", "validating_shard", "done")


class FileProgress:
    __slots__ = ("bytes_processed", "name", "size")

    def __init__(self, name: str | None, size: int | None) -> None:
        self.name = name
        self.size = size
        self.bytes_processed = 0


class ProgressReporter:
    """Collects counters; emits events through ``callback`` (``None`` = counters only)."""

    def __init__(
        self,
        callback: Any = None,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback
        self.interval = interval
        self.clock = clock
        self.phase = "processing"
        self.bytes_transferred = 0
        self.files: list[FileProgress] = []
        self.shard_progress: tuple[int, int] | None = None
        self._last_emit: float | None = None
        self.events_emitted = 0

    def add_file(self, name: str | None, size: int | None) -> FileProgress:
        progress = FileProgress(name, size)
        self.files.append(progress)
        return progress

    def event(self) -> dict[str, Any]:
        sizes = [f.size for f in self.files]
        total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
        event: dict[str, Any] = {
            "phase": self.phase,
            "bytes_processed": sum(f.bytes_processed for f in self.files),
            "bytes_total": total,
            "bytes_transferred": self.bytes_transferred,
            "files": [
                {"name": f.name, "bytes_processed": f.bytes_processed, "size": f.size}
                for f in self.files
            ],
        }
        if self.phase == "validating_shard" and self.shard_progress is not None:
            event["shard_verified"], event["shard_total"] = self.shard_progress
        return event

    async def set_phase(self, phase: str) -> None:
        """Enter ``phase`` and always emit (unless it is the current phase)."""
        if phase not in PHASES:
            raise ValueError(f"unknown progress phase {phase!r}")
        if phase == self.phase and self._last_emit is not None:
            return
        self.phase = phase
        await self._emit()

    async def tick(self) -> None:
        """Emit if the last event is at least ``interval`` old."""
        if self.callback is None:
            return
        now = self.clock()
        if self._last_emit is None or now - self._last_emit >= self.interval:
            await self._emit()

    async def _emit(self) -> None:
        if self.callback is None:
            return
        self._last_emit = self.clock()
        self.events_emitted += 1
        await invoke_callback(self.callback, self.event())


__all__ = ["PHASES", "FileProgress", "ProgressReporter"]
