"""Everything a request handler needs, built once per process."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .auth import TokenAuthority
from .config import ServerConfig
from .dedup import DedupKeys
from .faults import FaultInjector
from .signing import ServerKeys, UrlSigner
from .stats import Stats
from .store import Store


@dataclass
class Grant:
    """An upload grant: the client may PUT ``length`` bytes with this CRC, then commit."""

    id: str
    xorb_hex: str
    length: int
    crc: int
    expires: float
    uploaded: bool = False


@dataclass
class GrantRegistry:
    """In-memory on purpose: a grant only lives for minutes, and after a restart the client's
    commit gets 404, which hf_xet answers with a fresh grant (xet-protocol.md §7.4).
    ``drop_data(grant_id)`` removes the staged body of a grant that expired unused."""

    drop_data: Callable[[str], None]
    _grants: dict[str, Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, xorb_hex: str, length: int, crc: int, ttl: int) -> Grant:
        grant = Grant(secrets.token_urlsafe(12), xorb_hex, length, crc, time.time() + ttl)
        with self._lock:
            now = time.time()
            expired = [g.id for g in self._grants.values() if g.expires < now]
            for gid in expired:
                del self._grants[gid]
            self._grants[grant.id] = grant
        for gid in expired:
            self.drop_data(gid)
        return grant

    def get(self, grant_id: str) -> Grant | None:
        with self._lock:
            grant = self._grants.get(grant_id)
        return grant if grant is not None and grant.expires >= time.time() else None

    def discard(self, grant_id: str) -> None:
        with self._lock:
            self._grants.pop(grant_id, None)


class CasState:
    def __init__(self, config: ServerConfig) -> None:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.keys = ServerKeys.load(config.data_dir, config.dev_secret)
        self.tokens = TokenAuthority(self.keys.token)
        self.signer = UrlSigner(self.keys)
        self.dedup_keys = DedupKeys(self.keys.dedup, config.dedup_key_ttl)
        self.faults = FaultInjector(config.faults)
        self.stats = Stats(config.request_log_size)
        self.store = Store(config.data_dir, config.max_shard_bytes)
        self.grants = GrantRegistry(
            lambda gid: self.store.objects.staging_path(gid).unlink(missing_ok=True)
        )

    def close(self) -> None:
        self.store.close()
