"""What the server needs to know about a stored xorb, read back from its footer."""

from __future__ import annotations

import mmap
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xet_pyodide.core.hashes import MerkleHash
from xet_pyodide.core.xorb_footer import parse_footer


@dataclass(frozen=True, slots=True)
class XorbLayout:
    hash: MerkleHash
    chunk_hashes: list[MerkleHash]
    #: cumulative end offsets of the chunk records (chunk k ends at ``record_ends[k]``)
    record_ends: list[int]
    #: cumulative uncompressed end offsets
    unpacked_ends: list[int]

    @property
    def num_chunks(self) -> int:
        return len(self.chunk_hashes)

    @property
    def records_len(self) -> int:
        return self.record_ends[-1]

    def chunk_size(self, k: int) -> int:
        return self.unpacked_ends[k] - (self.unpacked_ends[k - 1] if k else 0)

    def chunk_sizes(self, start: int, end: int) -> list[int]:
        """Uncompressed sizes of chunks ``[start, end)``."""
        ends = self.unpacked_ends
        return [
            b - a
            for a, b in zip(
                [self.unpacked_start(start), *ends[start : end - 1]], ends[start:end], strict=True
            )
        ]

    def unpacked_start(self, k: int) -> int:
        return self.unpacked_ends[k - 1] if k else 0

    def unpacked_len(self, start: int, end: int) -> int:
        """Uncompressed bytes of chunks ``[start, end)``."""
        return self.unpacked_ends[end - 1] - self.unpacked_start(start)

    def byte_range(self, start: int, end: int) -> tuple[int, int]:
        """Inclusive byte range of the records of chunks ``[start, end)`` in the stored xorb."""
        return (self.record_ends[start - 1] if start else 0), self.record_ends[end - 1] - 1


def read_layout(path: Path) -> XorbLayout:
    """Parse the footer of a stored xorb without reading its records (mmap: only the tail
    pages are touched)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        footer = parse_footer(m)
    if footer.unpacked_ends is None:  # pragma: no cover - this server writes V1 only
        raise ValueError(f"{path} has a V0 footer")
    return XorbLayout(
        footer.xorb_hash, footer.chunk_hashes, footer.record_ends, footer.unpacked_ends
    )


class LayoutCache:
    """A small LRU of parsed footers; stored xorbs never change, so entries never go stale."""

    def __init__(self, load: Callable[[str], XorbLayout], size: int = 512) -> None:
        self._load = load
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, XorbLayout] = OrderedDict()

    def get(self, hex_hash: str) -> XorbLayout:
        with self._lock:
            hit = self._items.get(hex_hash)
            if hit is not None:
                self._items.move_to_end(hex_hash)
                return hit
        layout = self._load(hex_hash)
        with self._lock:
            self._items[hex_hash] = layout
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return layout

    def put(self, hex_hash: str, layout: XorbLayout) -> None:
        with self._lock:
            self._items[hex_hash] = layout

    def forget(self, hex_hash: str) -> None:
        """Drop an entry (its xorb was removed by the orphan collection)."""
        with self._lock:
            self._items.pop(hex_hash, None)
