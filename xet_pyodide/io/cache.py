"""Chunk cache: xorb bytes already fetched, keyed by xorb hash + chunk range, LRU by bytes.

An entry is the run of chunk records of chunks ``[start, end)`` of one xorb, exactly as a
presigned URL served them (compressed, so the cache holds more; a hit goes through the same
decoding and verification as fresh bytes). A lookup for ``[s, e)`` is answered by any entry
of that xorb whose range contains it (the records are sliced out by walking their headers), so
a ranged download can reuse what a full download stored. Storing a range drops the entries
it contains.

:class:`ChunkCache` holds the index and the LRU policy; a backend (:class:`CacheStore`) only
stores blobs by key. Backends here: :class:`MemoryStore` and :class:`DiskStore` (CPython, or
the Emscripten file system); the browser's Cache API lives in :mod:`.cache_browser`. The cache
is best-effort: a backend failure is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from ..core.hashes import MerkleHash
from ..kernels.records import HEADER, RECORD_HEADER_LEN

Buffer = bytes | bytearray | memoryview
#: (xorb hash, first chunk, end chunk)
CacheKey = tuple[MerkleHash, int, int]

_NAME_RE = re.compile(r"^([0-9a-f]{64})\.(\d+)-(\d+)$")


def key_name(key: CacheKey) -> str:
    """Stable text form of a key: ``<xorb xet hex>.<start>-<end>``."""
    return f"{key[0].hex()}.{key[1]}-{key[2]}"


def parse_key_name(name: str) -> CacheKey | None:
    m = _NAME_RE.match(name)
    if not m:
        return None
    start, end = int(m.group(2)), int(m.group(3))
    if end <= start:
        return None
    return MerkleHash.from_hex(m.group(1)), start, end


def slice_records(data: Buffer, first_chunk: int, start: int, end: int) -> memoryview | None:
    """The records of chunks ``[start, end)`` inside records of ``[first_chunk, ...)``; None if
    ``data`` does not hold that many well-formed headers."""
    view = memoryview(data).cast("B")
    pos, index, begin = 0, first_chunk, -1
    while index < end:
        if index == start:
            begin = pos
        if pos + RECORD_HEADER_LEN > len(view):
            return None
        word0, _ = HEADER.unpack_from(view, pos)
        pos += RECORD_HEADER_LEN + (word0 >> 8)
        index += 1
    if pos > len(view) or begin < 0:
        return None
    return view[begin:pos]


class CacheStore(Protocol):
    """Blob storage under string names. ``load_index`` lists what survived a restart."""

    async def read(self, name: str) -> bytes | None: ...

    async def write(self, name: str, data: Buffer) -> bool: ...

    async def delete(self, name: str) -> None: ...

    async def load_index(self) -> list[tuple[str, int]]:
        """``(name, size)`` of stored blobs, least recently used first."""
        ...


class ChunkCache:
    """Size-capped LRU over a :class:`CacheStore`. Counters: ``hits``, ``misses``,
    ``bytes_stored``, ``evictions``."""

    def __init__(self, store: CacheStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._lru: OrderedDict[CacheKey, int] = OrderedDict()
        self._by_xorb: dict[MerkleHash, set[tuple[int, int]]] = {}
        self.total_bytes = 0
        self.hits = 0
        self.misses = 0
        self.bytes_stored = 0
        self.evictions = 0
        self._loaded = False

    async def open(self) -> ChunkCache:
        """Read the backend's index (entries that survived a restart). Idempotent."""
        if not self._loaded:
            self._loaded = True
            for name, size in await self.store.load_index():
                key = parse_key_name(name)
                if key is not None:
                    self._add(key, size)
            await self._shrink(0)
        return self

    def __len__(self) -> int:
        return len(self._lru)

    def keys(self) -> list[CacheKey]:
        return list(self._lru)

    def _add(self, key: CacheKey, size: int) -> None:
        self._lru[key] = size
        self._lru.move_to_end(key)
        self._by_xorb.setdefault(key[0], set()).add((key[1], key[2]))
        self.total_bytes += size

    def _forget(self, key: CacheKey) -> None:
        size = self._lru.pop(key, None)
        if size is None:
            return
        self.total_bytes -= size
        ranges = self._by_xorb.get(key[0])
        if ranges is not None:
            ranges.discard((key[1], key[2]))
            if not ranges:
                del self._by_xorb[key[0]]

    def _containing(self, xorb: MerkleHash, start: int, end: int) -> CacheKey | None:
        best: CacheKey | None = None
        for s, e in self._by_xorb.get(xorb, ()):
            if s <= start and end <= e and (best is None or e - s < best[2] - best[1]):
                best = (xorb, s, e)
        return best

    async def get(self, xorb: MerkleHash, start: int, end: int) -> memoryview | None:
        """Records of chunks ``[start, end)`` of ``xorb``, or None."""
        key = self._containing(xorb, start, end)
        if key is None:
            self.misses += 1
            return None
        data = None
        with contextlib.suppress(Exception):
            data = await self.store.read(key_name(key))
        records = slice_records(data, key[1], start, end) if data is not None else None
        if records is None:  # gone or damaged behind our back
            await self.evict(key)
            self.misses += 1
            return None
        self._lru.move_to_end(key)
        self.hits += 1
        return records

    async def put(self, xorb: MerkleHash, start: int, end: int, data: Buffer) -> None:
        """Store the records of chunks ``[start, end)``; drops entries this one contains."""
        key = (xorb, start, end)
        size = memoryview(data).nbytes
        if size > self.max_bytes or self._containing(xorb, start, end) is not None:
            return
        for s, e in list(self._by_xorb.get(xorb, ())):
            if start <= s and e <= end:
                await self.evict((xorb, s, e))
        await self._shrink(size)
        ok = False
        with contextlib.suppress(Exception):
            ok = await self.store.write(key_name(key), data)
        if ok:
            self._add(key, size)
            self.bytes_stored += size

    async def evict(self, key: CacheKey) -> None:
        """Drop one entry (e.g. its bytes failed to decode or verify)."""
        self._forget(key)
        with contextlib.suppress(Exception):
            await self.store.delete(key_name(key))

    async def invalidate(self, xorb: MerkleHash, start: int, end: int) -> None:
        """Drop every entry of ``xorb`` that overlaps chunks ``[start, end)``."""
        for s, e in list(self._by_xorb.get(xorb, ())):
            if s < end and start < e:
                await self.evict((xorb, s, e))

    async def evict_all(self, keys: Iterable[CacheKey]) -> None:
        for key in list(keys):
            await self.evict(key)

    async def clear(self) -> None:
        await self.evict_all(list(self._lru))

    async def _shrink(self, incoming: int) -> None:
        while self._lru and self.total_bytes + incoming > self.max_bytes:
            oldest = next(iter(self._lru))
            self.evictions += 1
            await self.evict(oldest)


class MemoryStore:
    """Blobs in a dict (lost with the process)."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def read(self, name: str) -> bytes | None:
        return self._blobs.get(name)

    async def write(self, name: str, data: Buffer) -> bool:
        self._blobs[name] = data if isinstance(data, bytes) else bytes(data)
        return True

    async def delete(self, name: str) -> None:
        self._blobs.pop(name, None)

    async def load_index(self) -> list[tuple[str, int]]:
        return [(name, len(blob)) for name, blob in self._blobs.items()]


class DiskStore:
    """One file per entry under ``root/<first two hex digits>/``; written to a temporary name
    and renamed, so a crash never leaves a torn entry. Recency is the file's mtime (touched on
    every read), so the LRU order survives restarts and is shared by processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        os.makedirs(self.root, exist_ok=True)

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name[:2], name)

    async def read(self, name: str) -> bytes | None:
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                data = f.read()
            os.utime(path)
        except OSError:
            return None
        return data

    async def write(self, name: str, data: Buffer) -> bool:
        path = self._path(name)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False
        return True

    async def delete(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(name))

    async def load_index(self) -> list[tuple[str, int]]:
        found: list[tuple[float, str, int]] = []
        for sub in os.scandir(self.root):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)  # left behind by a crash
                    continue
                st = entry.stat()
                found.append((st.st_mtime, entry.name, st.st_size))
        found.sort()
        return [(name, size) for _, name, size in found]


#: Default size caps per backend.
DEFAULT_MEMORY_BYTES = 256 << 20
DEFAULT_PERSISTENT_BYTES = 4 << 30
CACHE_KINDS = ("auto", "memory", "disk", "browser", "none")


async def open_chunk_cache(
    kind: str = "auto", directory: str | None = None, max_bytes: int | None = None
) -> ChunkCache | None:
    """The chunk cache to use (None for ``"none"``).

    ``"auto"``: on disk when ``directory`` is given; in a browser (Pyodide with the Cache API)
    the Cache API; otherwise (CPython, Pyodide in Node) in memory.
    """
    if kind not in CACHE_KINDS:
        raise ValueError(f"chunk cache kind {kind!r}: expected one of {', '.join(CACHE_KINDS)}")
    if kind == "none":
        return None
    if kind == "auto":
        kind = "disk" if directory else "browser" if _browser_cache_available() else "memory"
    store: CacheStore
    if kind == "disk":
        if not directory:
            raise ValueError("a disk chunk cache needs a directory")
        store = DiskStore(directory)
    elif kind == "browser":
        from .cache_browser import CacheApiStore

        store = CacheApiStore()
    else:
        store = MemoryStore()
    default = DEFAULT_MEMORY_BYTES if kind == "memory" else DEFAULT_PERSISTENT_BYTES
    return await ChunkCache(store, default if max_bytes is None else max_bytes).open()


def _browser_cache_available() -> bool:
    if sys.platform != "emscripten":
        return False
    from .cache_browser import cache_api_available

    return cache_api_available()


__all__ = [
    "CACHE_KINDS",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_PERSISTENT_BYTES",
    "CacheKey",
    "CacheStore",
    "ChunkCache",
    "DiskStore",
    "MemoryStore",
    "key_name",
    "open_chunk_cache",
    "parse_key_name",
    "slice_records",
]
