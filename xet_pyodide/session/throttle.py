"""Throttled progress events: the emission rules shared by uploads and downloads.

A reporter holds counters, builds its event dict in :meth:`ThrottledProgress.event` and hands
it to a user callback (a Python callable, sync or async, or a JavaScript function under
Pyodide). Events are at least ``interval`` seconds apart, except those forced by a phase change
(:meth:`~ThrottledProgress.set_phase`) or by the caller (:meth:`~ThrottledProgress.emit_now`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from ..io.jsinterop import invoke_callback


class ThrottledProgress:
    """Phase, clock and throttling of a progress reporter (``callback=None``: counters only).
    Subclasses set :attr:`PHASES` (the first is the initial phase) and :attr:`KIND` (for error
    messages) and implement :meth:`event`."""

    PHASES: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = "progress"

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
        self.phase = self.PHASES[0]
        self._last_emit: float | None = None
        self.events_emitted = 0
        #: The retry being announced by the event built right now (see :meth:`emit_retry`).
        self._retry: dict[str, Any] | None = None

    def event(self) -> dict[str, Any]:
        raise NotImplementedError

    async def set_phase(self, phase: str) -> None:
        """Enter ``phase`` and emit (always, unless already there and announced)."""
        if phase not in self.PHASES:
            raise ValueError(f"unknown {self.KIND} phase {phase!r}")
        if phase == self.phase and self._last_emit is not None:
            return
        self.phase = phase
        await self._emit()

    async def emit_now(self) -> None:
        """Emit regardless of the interval."""
        await self._emit()

    async def emit_retry(self, retry: dict[str, Any]) -> None:
        """Emit now an event announcing ``retry`` (a ``RetryNotice.to_dict()``): subclasses
        put ``self._retry``, when set, in their event under ``"retry"``."""
        self._retry = retry
        try:
            await self._emit()
        finally:
            self._retry = None

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


__all__ = ["ThrottledProgress"]
