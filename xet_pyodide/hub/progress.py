"""One progress stream for a Hub upload, from the preupload call to the commit.

Events (dicts; camelCase keys in JavaScript)::

    {"phase": "preuploading" | "hashing" | "processing" | "uploading_xorbs"
              | "uploading_shard" | "validating_shard" | "committing" | "done",
     "bytes_total": int,          # bytes of the files that will be sent (Xet or inline)
     "bytes_processed": int,      # of those, chunked and deduplicated, or read for inline
     "bytes_transferred": int,    # xorb bytes sent to the CAS so far
     "bytes_resumed": int,        # bytes found in xorbs an earlier, interrupted upload left
                                  # on the server (xet_pyodide.session.resume): not sent again
     "files": [{"path", "size", "mode": None | "lfs" | "regular" | "unchanged" | "ignored",
                "bytes_processed", "bytes_packed", "bytes_uploaded"}],
                                  # bytes_packed: serialized xorb bytes of the file's new
                                  # chunks; bytes_uploaded: of those, stored by the CAS
     "retries": int,              # retried requests so far (the Hub's and the session's)
     "retry": {...}}              # only in an event announcing a retry, before its wait: of
                                  # a Hub call (preupload, listing, …) or of the upload
                                  # session (see xet_pyodide.session.progress: what,
                                  # attempt, max_attempts, delay, reason)

``hashing`` only appears when the repository already holds a large file at a path being
uploaded: its SHA-256 is read first, and an unchanged file is not uploaded at all. The
``processing`` … ``validating_shard`` phases are the upload session's (see
:mod:`xet_pyodide.session.progress`); ``committing`` starts when the commit is sent.
"""

from __future__ import annotations

from typing import Any

from ..io.retry import RetryNotice
from ..session.throttle import ThrottledProgress

PHASES = (
    "preuploading",
    "hashing",
    "processing",
    "uploading_xorbs",
    "uploading_shard",
    "validating_shard",
    "committing",
    "done",
)
#: Modes whose bytes are sent (the others are skipped).
SENT = ("lfs", "regular")


class HubProgress(ThrottledProgress):
    PHASES = PHASES
    KIND = "hub upload"

    def __init__(self, callback: Any, files: list[tuple[str, int]], **kwargs: Any) -> None:
        super().__init__(callback, **kwargs)
        self.files = [
            {"path": p, "size": n, "mode": None, "bytes_processed": 0, "bytes_packed": 0,
             "bytes_uploaded": 0}
            for p, n in files
        ]
        self._by_path = {f["path"]: f for f in self.files}
        #: Paths in the order their Xet uploads started (the session's file order).
        self._session_paths: list[str] = []
        self.bytes_transferred = 0
        self.bytes_resumed = 0
        self._session_retries = 0
        self._hub_retries = 0

    @property
    def retries(self) -> int:
        return self._session_retries + self._hub_retries

    async def announce_retry(self, notice: RetryNotice) -> None:
        """A Hub call of this upload is retried: emit an event carrying ``retry``, now."""
        self._hub_retries += 1
        await self.emit_retry(notice.to_dict())

    def set_mode(self, path: str, mode: str) -> None:
        self._by_path[path]["mode"] = mode

    def processed(self, path: str, n: int) -> None:
        self._by_path[path]["bytes_processed"] = n

    def session_file(self, path: str) -> None:
        """The next Xet upload of the session is ``path``."""
        self._session_paths.append(path)

    async def session_event(self, event: dict[str, Any]) -> None:
        """The upload session's progress callback: its counters become ours."""
        self.bytes_transferred = event["bytes_transferred"]
        self.bytes_resumed = event.get("bytes_resumed", self.bytes_resumed)
        for path, f in zip(self._session_paths, event["files"], strict=False):
            mine = self._by_path[path]
            mine["bytes_processed"] = f["bytes_processed"]
            mine["bytes_packed"] = f.get("bytes_packed", 0)
            mine["bytes_uploaded"] = f["bytes_uploaded"]
        self._session_retries = event.get("retries", self._session_retries)
        phase = event["phase"]
        if "retry" in event:
            await self.emit_retry(event["retry"])
        elif phase in PHASES and phase not in ("done", self.phase):
            await self.set_phase(phase)
        else:
            await self.tick()

    def event(self) -> dict[str, Any]:
        counted = [f for f in self.files if f["mode"] in SENT or f["mode"] is None]
        return {
            "phase": self.phase,
            "bytes_total": sum(f["size"] for f in counted),
            "bytes_processed": sum(f["bytes_processed"] for f in counted),
            "bytes_transferred": self.bytes_transferred,
            "bytes_resumed": self.bytes_resumed,
            "files": [dict(f) for f in self.files],
            "retries": self.retries,
            **({"retry": self._retry} if self._retry is not None else {}),
        }


__all__ = ["PHASES", "HubProgress"]
