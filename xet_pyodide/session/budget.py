"""A byte budget bounding how much data the upload pipeline holds in memory."""

from __future__ import annotations

import asyncio


class ByteBudget:
    """Counts held bytes against ``limit``; :meth:`wait_for_release` lets writers wait.

    Acquiring never blocks by itself: the writer decides what to do when
    :meth:`would_exceed` says so (wait for an upload to finish, seal a xorb, or overdraw when
    nothing can be freed — the pipeline must never deadlock on its own buffers).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._released = asyncio.Event()

    def would_exceed(self, n: int) -> bool:
        return self.used > 0 and self.used + n > self.limit

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def release(self, n: int) -> None:
        if n:
            self.used -= n
            self._released.set()

    async def wait_for_release(self) -> None:
        """Return after the next :meth:`release`."""
        self._released.clear()
        await self._released.wait()


__all__ = ["ByteBudget"]
