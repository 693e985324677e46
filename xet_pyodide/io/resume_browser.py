"""A resume store living in JavaScript (Pyodide only): the page's IndexedDB journals.

``web/xet_resume.mjs`` implements the store (``read``, ``append``, ``replace``, ``remove``,
``sweep``, each returning a Promise); this adapter gives it the
:class:`~xet_pyodide.session.resume.ResumeBackend` shape, copying bytes across the boundary.
"""

from __future__ import annotations

from typing import Any

from .jsinterop import js_uint8array_copy


class JsResumeBackend:
    """Wraps a JS object with the store's five async methods."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def read(self, name: str) -> bytes | None:
        value = await self.store.read(name)
        if value is None:
            return None
        return bytes(value.to_bytes())

    async def append(self, name: str, data: bytes) -> None:
        await self.store.append(name, js_uint8array_copy(data))

    async def replace(self, name: str, data: bytes) -> None:
        await self.store.replace(name, js_uint8array_copy(data))

    async def remove(self, name: str) -> None:
        await self.store.remove(name)

    async def sweep(self, max_age: float, now: float) -> int:
        return int(await self.store.sweep(max_age, now))


__all__ = ["JsResumeBackend"]
