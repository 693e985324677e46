"""Server configuration: one frozen dataclass, built by the CLI or directly by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import DEFAULT_BODY_TIMEOUT, DEFAULT_HEAD_TIMEOUT, DEFAULT_MAX_HEAD_BYTES

MIB = 1024 * 1024

#: Largest serialized xorb body accepted (64 MiB of chunk records, plus slack for headers).
DEFAULT_MAX_XORB_BYTES = 64 * MIB + 256 * 1024
#: Largest shard body accepted (MDB_SHARD_TARGET_SIZE).
DEFAULT_MAX_SHARD_BYTES = 64 * MIB
#: Largest JSON request body (grant requests, admin calls).
DEFAULT_MAX_JSON_BYTES = 256 * 1024
#: Bytes of live upload grants one access token may hold (reserved at grant time, staged on
#: disk by the PUT until the commit): 16 full-size xorbs in flight.
DEFAULT_MAX_STAGING_BYTES = 1024 * MIB

#: Endpoints that can be switched off to exercise client fallbacks (they then answer 404,
#: exactly like a server that never had them).
DISABLEABLE = frozenset({"v2-shards", "v2-reconstructions", "grants", "dedup"})


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    dev_secret: str
    host: str = "127.0.0.1"
    port: int = 0
    #: Base URL handed to clients (``casUrl``, signed download and upload URLs); empty = the
    #: address the server listens on. Never taken from a request's ``Host`` header.
    public_url: str = ""
    web_dir: Path | None = None
    #: Lifetime of access tokens handed out by the token endpoint (seconds).
    token_ttl: int = 3600
    #: ``shard_key_expiry - creation`` of global-dedup answers; also the HMAC key rotation period.
    dedup_key_ttl: int = 7 * 24 * 3600
    #: Lifetime of signed xorb download URLs.
    signed_url_ttl: int = 900
    #: Lifetime of an upload grant (its PUT URL and its pending state).
    grant_ttl: int = 900
    #: Accepted xorbs that no stored shard references are kept this long (seconds), so an
    #: interrupted upload can resume from them; older ones are removed at start-up (and by
    #: ``POST /_admin/gc``).
    orphan_xorb_grace: float = 7 * 24 * 3600.0
    disabled: frozenset[str] = frozenset()
    max_xorb_bytes: int = DEFAULT_MAX_XORB_BYTES
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    #: Per access token: bytes of upload grants not yet committed or expired (429 beyond).
    max_staging_bytes: int = DEFAULT_MAX_STAGING_BYTES
    #: Connection limits (see protocol.py): request head size, time to send a request head,
    #: longest pause inside a request body.
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: NDJSON heartbeat interval of ``POST /v2/shards`` while validation runs.
    heartbeat_seconds: float = 20.0
    log_level: str = "info"
    #: Initial fault-injection configuration (same JSON shape as ``POST /_admin/faults``).
    faults: dict[str, Any] = field(default_factory=dict)
    request_log_size: int = 2000

    def __post_init__(self) -> None:
        unknown = set(self.disabled) - DISABLEABLE
        if unknown:
            raise ValueError(f"unknown endpoint group(s) to disable: {sorted(unknown)}")
        if not self.dev_secret:
            raise ValueError("a non-empty dev secret is required")

    def enabled(self, group: str) -> bool:
        return group not in self.disabled

    @property
    def cas_url(self) -> str:
        """What clients are told to use: ``public_url``, or ``http://host:port``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
