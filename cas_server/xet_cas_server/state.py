"""Everything a request handler needs, built once per process."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .auth import Scope, TokenAuthority
from .config import ServerConfig
from .dedup import DedupKeys
from .errors import TooManyRequests
from .faults import FaultInjector
from .signing import ServerKeys, UrlSigner
from .stats import Stats
from .store import Store

if TYPE_CHECKING:
    from .validation import ValidXorb


class UploadObserver(Protocol):
    """Told about xorb uploads as they start and as they are stored (on the event loop: must be
    cheap), and about the files a shard registered (from a worker thread): the Hub's early
    sha256 proofs, ``hub/early.py``."""

    def xorb_started(self, owner: str, repo: str, xorb_hex: str) -> None: ...

    def xorb_stored(self, xorb_hex: str) -> None: ...

    def files_registered(self, repo: str, files: Sequence[tuple[str, str | None, int]]) -> None:
        """A shard registered ``files``: (file hash, claimed sha256 or None, size)."""


@dataclass
class Grant:
    """An upload grant: the client may PUT ``length`` bytes with this CRC, then commit with a
    token of the same repository."""

    id: str
    xorb_hex: str
    length: int
    crc: int
    expires: float
    #: ``TokenClaims.token_id`` of the token that asked for it (whose budget it uses)
    owner: str = ""
    repo: str = ""
    uploaded: bool = False
    #: The staged body of the last PUT and the verdict on it, set together (the commit acts
    #: on exactly these): what the stored object needs, or why the commit must refuse it.
    staged: Path | None = None
    valid: ValidXorb | None = None
    invalid: str | None = None


@dataclass
class GrantRegistry:
    """In-memory on purpose: a grant only lives for minutes, and after a restart the client's
    commit gets 404, which hf_xet answers with a fresh grant (docs/protocol.md §7.4).
    ``drop_data(grant_id)`` removes the staged body of a grant.

    Each token may hold at most ``max_bytes`` of live grants (their declared lengths, reserved
    when granted, released by the commit, a failed commit or expiry): a client cannot park
    more than that in ``staging/`` with PUTs it never commits. Expired grants and their
    staged bodies go at the next :meth:`sweep` (run periodically by the app) or grant."""

    drop_data: Callable[[str], None]
    max_bytes: int = 1 << 62
    _grants: dict[str, Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(
        self, xorb_hex: str, length: int, crc: int, ttl: int, owner: str = "", repo: str = ""
    ) -> Grant:
        """A new grant, or :class:`TooManyRequests` when ``owner`` is over its budget."""
        now = time.time()
        grant = Grant(secrets.token_urlsafe(12), xorb_hex, length, crc, now + ttl, owner, repo)
        with self._lock:
            expired = self._expire(now)
            held = sum(g.length for g in self._grants.values() if g.owner == owner)
            if held + length <= self.max_bytes:
                self._grants[grant.id] = grant
        for gid in expired:
            self.drop_data(gid)
        if grant.id not in self._grants:
            raise TooManyRequests(
                f"this token holds {held} bytes of open upload grants; {length} more would "
                f"exceed {self.max_bytes}: commit (or let expire) earlier grants first"
            )
        return grant

    def _expire(self, now: float) -> list[str]:
        """Forget expired grants (lock held); returns their ids."""
        expired = [g.id for g in self._grants.values() if g.expires < now]
        for gid in expired:
            del self._grants[gid]
        return expired

    def sweep(self) -> int:
        """Drop expired grants and their staged bodies; returns how many."""
        with self._lock:
            expired = self._expire(time.time())
        for gid in expired:
            self.drop_data(gid)
        return len(expired)

    def get(self, grant_id: str) -> Grant | None:
        with self._lock:
            grant = self._grants.get(grant_id)
        return grant if grant is not None and grant.expires >= time.time() else None

    def discard(self, grant_id: str) -> None:
        with self._lock:
            self._grants.pop(grant_id, None)


@dataclass(frozen=True)
class XetToken:
    """A minted access token and where to use it, in the Hub's two shapes."""

    access_token: str
    exp: int
    cas_url: str

    def json(self) -> dict[str, str | int]:
        """The JSON body of a Hub token route."""
        return {"accessToken": self.access_token, "exp": self.exp, "casUrl": self.cas_url}

    def headers(self) -> dict[str, str]:
        """The same as ``X-Xet-*`` response headers (what huggingface_hub reads)."""
        return {
            "X-Xet-Access-Token": self.access_token,
            "X-Xet-Token-Expiration": str(self.exp),
            "X-Xet-Cas-Url": self.cas_url,
        }


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
        self.store = Store(config.data_dir, config.max_shard_bytes, config.orphan_xorb_grace)
        self.grants = GrantRegistry(
            self.store.objects.drop_staged,
            config.max_staging_bytes,
        )
        #: Set by the Hub: told of each xorb upload's start (per write token) and storage.
        self.upload_observer: UploadObserver | None = None

    def issue_token(
        self, repo: str, scope: Scope, revision: str = "", ttl: int | None = None
    ) -> XetToken:
        """A CAS access token for ``repo`` (:func:`~.auth.repo_key` form, e.g.
        ``models/org/name``): what a Hub's ``xet-{read,write}-token`` route hands out.
        ``ttl`` defaults to the fault override or ``--token-ttl``."""
        if ttl is None:
            ttl = self.faults.token_ttl or self.config.token_ttl
        access, exp = self.tokens.mint(scope, ttl, repo, revision)
        return XetToken(access, exp, self.config.cas_url)

    def close(self) -> None:
        self.store.close()
