"""Chunk-cache backend on the browser's Cache API (Pyodide only): entries survive page reloads.

Each entry is stored as a ``Response`` under a synthetic URL
``https://xet-chunk-cache.invalid/<name>/<size>`` in the cache named ``xet-chunks`` (the Cache
API only keys by request URL; it never fetches it). Putting the size in the URL lets
:meth:`CacheApiStore.load_index` rebuild the index from ``cache.keys()`` alone. The Cache API
keeps keys in insertion order, which is the LRU order we restore after a reload (recency of
reads within one page is tracked by :class:`~xet_pyodide.io.cache.ChunkCache` itself).

The Cache API exists in secure contexts (``https:``, ``http://localhost``/``127.0.0.1``) of
windows and workers; :func:`cache_api_available` tells. Node has none.
"""

from __future__ import annotations

import contextlib
from typing import Any

import js  # type: ignore[import-not-found]

from ..kernels.api import Buffer
from .jsinterop import js_uint8array_copy

CACHE_NAME = "xet-chunks"
_PREFIX = "https://xet-chunk-cache.invalid/"


def cache_api_available() -> bool:
    """True when ``caches`` (the Cache API) can be used in this JS context."""
    try:
        return bool(getattr(js, "caches", None)) and bool(getattr(js, "isSecureContext", False))
    except Exception:
        return False


class CacheApiStore:
    """:class:`~xet_pyodide.io.cache.CacheStore` over ``caches.open(cache_name)``."""

    def __init__(self, cache_name: str = CACHE_NAME) -> None:
        self.cache_name = cache_name
        self._cache: Any = None
        self._urls: dict[str, str] = {}

    async def _open(self) -> Any:
        if self._cache is None:
            self._cache = await js.caches.open(self.cache_name)
        return self._cache

    async def read(self, name: str) -> bytes | None:
        url = self._urls.get(name)
        if url is None:
            return None
        cache = await self._open()
        resp = await cache.match(url)
        if not resp:
            return None
        buffer = await resp.arrayBuffer()
        return js.Uint8Array.new(buffer).to_bytes()

    async def write(self, name: str, data: Buffer) -> bool:
        view = memoryview(data).cast("B")
        array = js_uint8array_copy(view)
        url = f"{_PREFIX}{name}/{len(view)}"
        cache = await self._open()
        try:
            await cache.put(url, js.Response.new(array))
        except Exception:  # QuotaExceededError and friends: the cache is best-effort
            return False
        old = self._urls.get(name)
        self._urls[name] = url
        if old is not None and old != url:
            with contextlib.suppress(Exception):
                await cache.delete(old)
        return True

    async def delete(self, name: str) -> None:
        url = self._urls.pop(name, None)
        if url is not None:
            cache = await self._open()
            await cache.delete(url)

    async def load_index(self) -> list[tuple[str, int]]:
        cache = await self._open()
        out: list[tuple[str, int]] = []
        for request in await cache.keys():
            url = str(request.url)
            name, _, size = url.removeprefix(_PREFIX).rpartition("/")
            if not url.startswith(_PREFIX) or not size.isdigit():
                continue
            self._urls[name] = url
            out.append((name, int(size)))
        return out

    async def destroy(self) -> None:
        """Delete the whole named cache (all entries)."""
        self._urls.clear()
        self._cache = None
        await js.caches.delete(self.cache_name)


__all__ = ["CACHE_NAME", "CacheApiStore", "cache_api_available"]
