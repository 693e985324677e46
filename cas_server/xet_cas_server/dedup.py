"""Global deduplication answers (docs/protocol.md §6).

``GET /v1/chunks/default/{chunk}`` returns a shard with no files and the CAS blocks of the
xorb(s) holding that chunk, every chunk hash protected as ``keyed_blake3(key, hash)`` so a
client can only recognise chunks it already has. The footer carries the key, the creation time
and the key expiry (after which the client must not rely on it).

Keys rotate: the key of period ``p = floor(now / ttl)`` is ``HMAC-SHA256(dedup subkey, p)``, so
answers inside one period are identical (cacheable) and old keys stop being handed out.
"""

from __future__ import annotations

import hashlib
import hmac

from xet_pyodide.core.hashes import hmac_hash
from xet_pyodide.core.shard import is_dedup_eligible_hash, serialize_shard
from xet_pyodide.core.shard_model import (
    CHUNK_FLAG_GLOBAL_DEDUP,
    Shard,
    ShardFooterInfo,
    XorbChunk,
    XorbEntry,
)

from .layout import XorbLayout


class DedupKeys:
    def __init__(self, seed: bytes, ttl: int) -> None:
        if ttl < 1:
            raise ValueError("dedup key ttl must be >= 1 second")
        self._seed = seed
        self.ttl = ttl

    def current(self, now: float) -> tuple[bytes, int, int]:
        """(key, creation timestamp, key expiry) for an answer given at ``now``."""
        period = int(now // self.ttl)
        key = hmac.new(self._seed, period.to_bytes(8, "little"), hashlib.sha256).digest()
        return key, int(now), int(now) + self.ttl


def dedup_shard(layouts: list[XorbLayout], key: bytes, created: int, expiry: int) -> bytes:
    """Serialize the answer shard for the given xorbs (with footer, no lookup tables)."""
    entries = []
    for layout in layouts:
        chunks = [
            XorbChunk(
                hmac_hash(h, key),
                layout.unpacked_start(k),
                layout.chunk_size(k),
                CHUNK_FLAG_GLOBAL_DEDUP if is_dedup_eligible_hash(h) else 0,
            )
            for k, h in enumerate(layout.chunk_hashes)
        ]
        entries.append(XorbEntry(layout.hash, chunks, num_bytes_on_disk=layout.records_len))
    shard = Shard(files=[], xorbs=entries, footer=ShardFooterInfo(key, created, expiry))
    return serialize_shard(shard, with_footer=True)
