"""Global deduplication (protocol §6): which chunks to ask about, and what the answers mean.

* :class:`DedupQueries` decides which chunks are queried — the first chunk of each file, and
  chunks with ``word3(hash) % 1024 == 0`` at most once per ``spacing`` bytes of a file — and
  runs the queries in the background with bounded concurrency.
* :class:`GlobalDedupIndex` holds what the answers taught us. An answer is a shard whose CAS
  section lists existing xorbs with their chunk hashes protected by a keyed hash
  (``hmac(h, key)``, §3.8). To look our chunks up we protect *our* hashes with each known key
  — one batched kernel call per key and batch — and match. Shards past their
  ``shard_key_expiry`` are not used (the server may refuse uploads relying on them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.hashes import HASH_LEN, MerkleHash
from ..core.shard import NO_EXPIRY, parse_shard
from ..core.shard_model import Shard
from ..errors import XetFormatError
from ..io.cas import CasClient
from ..kernels import get_kernels
from .packing import XorbRef

#: A chunk whose hash word 3 is divisible by this is eligible for a global-dedup query.
ELIGIBLE_MODULUS = 1024
_NO_KEY = bytes(HASH_LEN)


def is_query_eligible(hash_raw: bytes, chunk_index: int) -> bool:
    """§6 eligibility: first chunk of a file, or ``word3(hash) % 1024 == 0``."""
    return chunk_index == 0 or int.from_bytes(hash_raw[24:32], "little") % ELIGIBLE_MODULUS == 0


def eligible_positions(hashes: bytes, first_index: int) -> list[int]:
    """The positions ``k`` in a batch of raw chunk hashes stored back to back (chunk
    ``first_index + k``) that :func:`is_query_eligible` accepts, in order. Word 3 can only
    be a multiple of 1024 if its low byte (byte 24 of the hash) is zero, so only those
    hashes (1 in 256) are tested: a scan of the batch, not a call per chunk."""
    low_bytes = hashes[24::HASH_LEN]
    found = [0] if first_index == 0 and low_bytes else []
    pos = low_bytes.find(0)
    while pos >= 0:
        if (pos or first_index) and is_query_eligible(
            hashes[pos * HASH_LEN : (pos + 1) * HASH_LEN], first_index + pos
        ):
            found.append(pos)
        pos = low_bytes.find(0, pos + 1)
    return found


assert ELIGIBLE_MODULUS % 256 == 0  # what eligible_positions relies on


class GlobalXorb(XorbRef):
    """An existing xorb learned from a dedup answer."""

    __slots__ = ("expiry", "key", "protected_hashes")

    def __init__(self, hash: MerkleHash, protected: list[bytes], key: bytes, expiry: int) -> None:
        super().__init__(hash)
        self.protected_hashes = protected
        self.key = key
        self.expiry = expiry

    def usable(self, now: float) -> bool:
        return self.expiry in (0, NO_EXPIRY) or now < self.expiry


@dataclass(slots=True)
class _KeyTable:
    """Every chunk seen under one HMAC key: protected hash → (xorb, index)."""

    chunks: dict[bytes, tuple[GlobalXorb, int]] = field(default_factory=dict)


class ProtectedHashes:
    """Our chunk hashes protected under every active key (computed once per batch)."""

    def __init__(self, by_key: dict[bytes, list[bytes]]) -> None:
        self.by_key = by_key

    def get(self, key: bytes, i: int) -> bytes | None:
        values = self.by_key.get(key)
        return values[i] if values is not None else None


class GlobalDedupIndex:
    """Chunks of existing xorbs, learned from global-dedup answers."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tables: dict[bytes, _KeyTable] = {}
        self.shards_added = 0

    def __bool__(self) -> bool:
        return bool(self._tables)

    def add_shard(self, shard: Shard) -> int:
        """Index an answer's xorbs; returns the number of chunks added (0 if expired)."""
        footer = shard.footer
        key = footer.hmac_key if footer is not None else _NO_KEY
        expiry = footer.key_expiry if footer is not None else 0
        if expiry not in (0, NO_EXPIRY) and expiry <= self._clock():
            return 0
        table = self._tables.setdefault(key, _KeyTable())
        added = 0
        for entry in shard.xorbs:
            protected = [c.hash.raw for c in entry.chunks]
            xorb = GlobalXorb(entry.xorb_hash, protected, key, expiry)
            for index, h in enumerate(protected):
                if h not in table.chunks:
                    table.chunks[h] = (xorb, index)
                    added += 1
        self.shards_added += 1
        return added

    def protect(self, hashes: bytes) -> ProtectedHashes:
        """Our raw chunk hashes (concatenated) protected under every known key."""
        n = len(hashes) // HASH_LEN
        by_key: dict[bytes, list[bytes]] = {}
        kernels = get_kernels()
        for key in self._tables:
            if key == _NO_KEY:
                digests = hashes
            else:
                digests = kernels.blake3_keyed_many(hashes, [HASH_LEN] * n, key)
            by_key[key] = [digests[i * HASH_LEN : (i + 1) * HASH_LEN] for i in range(n)]
        return ProtectedHashes(by_key)

    def lookup(self, protected: ProtectedHashes, i: int) -> tuple[GlobalXorb, int] | None:
        """Where chunk ``i`` of a protected batch lives in an existing, unexpired xorb."""
        now = self._clock()
        for key, table in self._tables.items():
            value = protected.get(key, i)
            if value is None:
                continue
            hit = table.chunks.get(value)
            if hit is not None and hit[0].usable(now):
                return hit
        return None

    def continues(self, xorb: GlobalXorb, index: int, protected: ProtectedHashes, i: int) -> bool:
        """Is our chunk ``i`` the chunk at ``index`` of ``xorb`` (match extension)?"""
        if not 0 <= index < len(xorb.protected_hashes) or not xorb.usable(self._clock()):
            return False
        return protected.get(xorb.key, i) == xorb.protected_hashes[index]


@dataclass(slots=True)
class FileQueries:
    """Per-file query bookkeeping: pending tasks by file offset, spacing state."""

    tasks: list[tuple[int, asyncio.Task[None]]] = field(default_factory=list)
    last_offset: int | None = None


class DedupQueries:
    """Schedules global-dedup queries and feeds the answers into a :class:`GlobalDedupIndex`."""

    def __init__(
        self,
        cas: CasClient,
        index: GlobalDedupIndex,
        *,
        enabled: bool = True,
        max_concurrent: int = 4,
        spacing: int = 4_000_000,
    ) -> None:
        self._cas = cas
        self._index = index
        self.enabled = enabled
        self._spacing = spacing
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._asked: set[bytes] = set()
        self._all: set[asyncio.Task[None]] = set()
        self.issued = 0
        self.answered = 0

    def consider(self, state: FileQueries, hash_raw: bytes, chunk_index: int, offset: int) -> bool:
        """Start a query for this chunk if the policy says so; True if one was started."""
        if not self.enabled or not is_query_eligible(hash_raw, chunk_index):
            return False
        spaced = state.last_offset is None or offset - state.last_offset >= self._spacing
        if chunk_index != 0 and not spaced:
            return False
        if hash_raw in self._asked:
            return False
        self._asked.add(hash_raw)
        state.last_offset = offset
        task = asyncio.ensure_future(self._query(MerkleHash(hash_raw)))
        self._all.add(task)
        task.add_done_callback(self._all.discard)
        state.tasks.append((offset, task))
        self.issued += 1
        return True

    async def _query(self, chunk_hash: MerkleHash) -> None:
        async with self._semaphore:
            data = await self._cas.query_dedup_shard(chunk_hash)
        if data is None:
            return
        try:
            shard = parse_shard(data)
        except XetFormatError:
            return  # a broken answer only costs us the dedup opportunity
        self._index.add_shard(shard)
        self.answered += 1

    async def wait_until(self, state: FileQueries, offset: int) -> None:
        """Wait for this file's queries about chunks before ``offset``."""
        ready = [task for pos, task in state.tasks if pos < offset]
        state.tasks = [(pos, task) for pos, task in state.tasks if pos >= offset]
        for task in ready:
            await task

    async def aclose(self) -> None:
        tasks = list(self._all)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "ELIGIBLE_MODULUS",
    "DedupQueries",
    "FileQueries",
    "GlobalDedupIndex",
    "GlobalXorb",
    "ProtectedHashes",
    "eligible_positions",
    "is_query_eligible",
]
