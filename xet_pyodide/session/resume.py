"""Resumable uploads: what the server acknowledged, kept where a later session finds it.

While a session uploads, every xorb the server acknowledges is recorded — its hash and its
chunks (hash, size), the facts a session shard holds about it — in a *journal*: one per
endpoint and scope, so different CAS servers (or repositories, when a scope is given) never
mix. A later session on the same endpoint and scope loads the journal into its dedup index
before it chunks anything, after checking (``HEAD /v1/xorbs/default/{hash}``) that the server
still has each xorb: chunks already inside those xorbs are not sent again, and the shard it
finally registers lists those xorbs.

Journal format (``JOURNAL_VERSION`` 1), a sequence of frames ``u32 length | u32 crc32 |
payload`` (little-endian). Payload kinds:

* ``H`` header, first frame: JSON ``{"v": 1, "endpoint", "scope"}`` (the key's plain text:
  a hash collision of the name can never mix endpoints);
* ``X`` acknowledged xorb: ``f64 unix time | xorb hash (32) | u32 n | n chunk hashes (32 each)
  | n u32 chunk sizes``; on load the xorb hash is recomputed from its chunks.

Appends write whole frames (one ``write`` each). A torn or corrupted frame ends what is read:
the good frames before it are kept, the rest discarded with a warning, and the journal is
rewritten (write-temp + rename) at once, so a torn tail never poisons later appends. A journal
whose header is unreadable or names another endpoint is discarded whole.

Policy: records older than ``SessionConfig.resume_max_age`` (7 days) are dropped when a
journal is loaded; a journal untouched for that long is deleted by the next session using the
same store. After a successful ``finalize()`` the xorbs its shard registered are removed (they
are then registered files' content, found by normal dedup). Size: 53 bytes per xorb plus 36
per chunk — 0.44 % of the chunk bytes at the 8 KiB minimum chunk, 0.06 % at the 64 KiB
average; a journal is also capped at ``MAX_JOURNAL_BYTES`` (oldest records dropped first).

Backends (:class:`ResumeBackend`) store named byte strings: a directory in CPython
(:mod:`xet_pyodide.io.resume_dir`), the page's IndexedDB in a browser (``web/xet_resume.mjs``
through :mod:`xet_pyodide.io.resume_browser`). docs/upload.md, "Resuming", is the user's view.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import struct
import sys
import time
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..core.hashes import HASH_LEN, MerkleHash, hashes_from_digests, xorb_hash
from ..core.shard_model import XorbEntry
from .packing import XorbRef

if TYPE_CHECKING:
    from ..io.cas import CasClient
    from .packing import Location, SealedXorb

log = logging.getLogger("xet_pyodide.resume")

JOURNAL_VERSION = 1
#: A journal never grows past this (oldest records are dropped when it is rewritten).
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
_FRAME = struct.Struct("<II")
_XORB_HEAD = struct.Struct("<cd32sI")
#: Largest frame payload accepted (a xorb holds at most 8192 chunks: 36 bytes each).
_MAX_PAYLOAD = 8192 * 36 + 1024
_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


@runtime_checkable
class ResumeBackend(Protocol):
    """Durable storage of journals by name. Each call must be atomic with respect to a crash:
    ``append`` adds all of ``data`` or a prefix of it (a torn frame is detected by its CRC),
    ``replace`` leaves the old or the new content, never a mix."""

    async def read(self, name: str) -> bytes | None: ...

    async def append(self, name: str, data: bytes) -> None: ...

    async def replace(self, name: str, data: bytes) -> None: ...

    async def remove(self, name: str) -> None: ...

    async def sweep(self, max_age: float, now: float) -> int:
        """Delete journals not written for ``max_age`` seconds; returns how many."""
        ...


class ResumedXorb(XorbRef):
    """A xorb an earlier session uploaded (acknowledged by the server, maybe not registered)."""

    __slots__ = ("hashes", "sizes")

    def __init__(self, hash: MerkleHash, hashes: bytes, sizes: list[int]) -> None:
        super().__init__(hash)
        self.hashes = hashes  # raw chunk hashes, 32 bytes each
        self.sizes = sizes

    def chunk_hash_raw(self, index: int) -> bytes | None:
        if 0 <= index < len(self.sizes):
            return self.hashes[index * HASH_LEN : (index + 1) * HASH_LEN]
        return None

    @property
    def num_bytes(self) -> int:
        return sum(self.sizes)

    def shard_entry(self) -> XorbEntry:
        assert self.hash is not None
        return XorbEntry.from_chunks(self.hash, hashes_from_digests(self.hashes), self.sizes)


@dataclass(slots=True)
class _Record:
    time: float
    xorb: ResumedXorb
    frame: bytes


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _sizes_bytes(sizes: Iterable[int]) -> bytes:
    values = array("I", sizes)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def _sizes_list(data: bytes) -> list[int]:
    values = array("I")
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


def encode_xorb(when: float, hash: MerkleHash, hashes: bytes, sizes: list[int]) -> bytes:
    """One framed ``X`` record."""
    head = _XORB_HEAD.pack(b"X", when, hash.raw, len(sizes))
    return _frame(head + hashes + _sizes_bytes(sizes))


def encode_header(endpoint: str, scope: str) -> bytes:
    text = json.dumps({"v": JOURNAL_VERSION, "endpoint": endpoint, "scope": scope})
    return _frame(b"H" + text.encode())


def _decode_xorb(payload: bytes) -> tuple[float, ResumedXorb] | None:
    if len(payload) < _XORB_HEAD.size:
        return None
    _, when, raw, n = _XORB_HEAD.unpack_from(payload)
    body = payload[_XORB_HEAD.size :]
    if n == 0 or len(body) != n * (HASH_LEN + 4):
        return None
    hashes, sizes = body[: n * HASH_LEN], _sizes_list(body[n * HASH_LEN :])
    claimed = MerkleHash(raw)
    if xorb_hash(list(zip(hashes_from_digests(hashes), sizes, strict=True))) != claimed:
        return None
    return when, ResumedXorb(claimed, hashes, sizes)


@dataclass(slots=True)
class ParsedJournal:
    records: list[_Record]
    #: Why (part of) the journal was not usable, or None when all of it was read.
    problem: str | None


def parse_journal(data: bytes, endpoint: str, scope: str) -> ParsedJournal:
    """The good records of a journal, never raising: a bad header discards everything, a bad
    frame ends the journal (what follows a torn write cannot be trusted)."""
    view = memoryview(data)
    records: list[_Record] = []
    pos = 0
    problem: str | None = None
    header_ok = False
    while pos < len(view):
        if len(view) - pos < _FRAME.size:
            problem = "torn frame at the end"
            break
        length, crc = _FRAME.unpack_from(view, pos)
        end = pos + _FRAME.size + length
        if length == 0 or length > _MAX_PAYLOAD or end > len(view):
            problem = f"bad frame length at byte {pos}"
            break
        payload = bytes(view[pos + _FRAME.size : end])
        if zlib.crc32(payload) != crc:
            problem = f"checksum mismatch at byte {pos}"
            break
        if not header_ok:
            try:
                header = json.loads(payload[1:]) if payload[:1] == b"H" else None
            except ValueError:
                header = None
            if not isinstance(header, dict) or header.get("v") != JOURNAL_VERSION:
                return ParsedJournal([], "unreadable header")
            if header.get("endpoint") != endpoint or header.get("scope") != scope:
                return ParsedJournal([], "journal of another endpoint or scope")
            header_ok = True
        elif payload[:1] == b"X":
            decoded = _decode_xorb(payload)
            if decoded is None:
                problem = f"invalid xorb record at byte {pos}"
                break
            records.append(_Record(decoded[0], decoded[1], bytes(view[pos:end])))
        # unknown kinds are skipped (a later version may add some)
        pos = end
    if not header_ok and data:
        problem = problem or "unreadable header"
    return ParsedJournal(records, problem)


def acknowledged_bytes(data: bytes | None, endpoint: str, scope: str) -> int:
    """Bytes of the chunks in the xorbs a journal's good records name (0 for no journal): how
    much of an interrupted upload a resume can skip (benchmarks and tests watch it grow)."""
    if not data:
        return 0
    return sum(r.xorb.num_bytes for r in parse_journal(data, endpoint, scope).records)


def journal_name(endpoint: str, scope: str) -> str:
    """The store name of a journal: a digest of endpoint and scope (the header keeps them)."""
    return hashlib.sha256(f"{endpoint}\n{scope}".encode()).hexdigest()[:32]


def xorbs_named_in(message: str) -> set[str]:
    """Xet hex hashes a server error message names (a refused shard names the missing xorb)."""
    return set(_HEX64.findall(message))


class UploadResume:
    """A session's link to its journal: load it once, append acknowledged xorbs, forget
    registered ones. Every failure of the backend is logged and ignored: resuming is an
    optimisation, never a reason for an upload to fail."""

    def __init__(
        self,
        backend: ResumeBackend,
        endpoint: str,
        scope: str = "",
        *,
        max_age: float = DEFAULT_MAX_AGE,
        verify: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.endpoint = endpoint.rstrip("/")
        self.scope = scope
        self.name = journal_name(self.endpoint, scope)
        self.max_age = max_age
        self.verify = verify
        self.clock = clock
        self._records: dict[MerkleHash, _Record] = {}
        self._loaded = False
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._has_header = False
        #: What the last load found (for tests, logs and metrics).
        self.loaded_xorbs = 0
        self.missing_xorbs = 0
        self.unverified_xorbs = 0
        self.problem: str | None = None

    # ------------------------------------------------------------------ loading

    async def load_into(self, cas: CasClient, index: dict[bytes, Location]) -> None:
        """Once per session: read the journal, check its xorbs exist, add their chunks to
        ``index`` (chunks already known keep their location)."""
        async with self._lock:
            if self._loaded:
                return
            self._loaded = True
            try:
                usable = await self._load(cas)
            except Exception as exc:  # a broken store must not break the upload
                log.warning("upload resume state not loaded: %s", exc)
                return
            for xorb in usable:
                hashes = xorb.hashes
                for i in range(len(xorb.sizes)):
                    index.setdefault(hashes[i * HASH_LEN : (i + 1) * HASH_LEN], (xorb, i))

    async def _load(self, cas: CasClient) -> list[ResumedXorb]:
        now = self.clock()
        try:
            await self.backend.sweep(self.max_age, now)
        except Exception as exc:
            log.warning("upload resume: sweeping old journals failed: %s", exc)
        data = await self.backend.read(self.name)
        if data is None:
            return []
        parsed = parse_journal(data, self.endpoint, self.scope)
        self.problem = parsed.problem
        if parsed.problem is not None:
            log.warning(
                "upload resume state %s: %s; %d record(s) kept",
                self.name,
                parsed.problem,
                len(parsed.records),
            )
        changed = parsed.problem is not None
        for record in parsed.records:
            if now - record.time > self.max_age or record.time > now + 86400:
                changed = True
                continue
            assert record.xorb.hash is not None
            self._records[record.xorb.hash] = record
        candidates = [r.xorb for r in self._records.values()]
        usable = candidates
        if self.verify and candidates:
            usable = []
            found = await exists_all(cas, candidates)
            for xorb, exists in zip(candidates, found, strict=True):
                if exists is True:
                    usable.append(xorb)
                elif exists is False:  # the server does not have it (any more)
                    assert xorb.hash is not None
                    del self._records[xorb.hash]
                    self.missing_xorbs += 1
                    changed = True
                else:  # no clear answer: keep it for later, do not rely on it now
                    self.unverified_xorbs += 1
        if self.missing_xorbs:
            log.warning(
                "upload resume: %d xorb(s) in the state are not on the server any more",
                self.missing_xorbs,
            )
        self.loaded_xorbs = len(usable)
        if changed:
            await self._rewrite()
        else:
            self._has_header = True
        return usable

    # ------------------------------------------------------------------ writing

    def acknowledged(self, xorb: SealedXorb) -> None:
        """Record a xorb the server just acknowledged (written in the background, in order)."""
        hashes = b"".join(h.raw for h in xorb.chunk_hashes)
        sizes = list(xorb.chunk_sizes)
        now = self.clock()
        record = _Record(now, ResumedXorb(xorb.hash, hashes, sizes), b"")
        record.frame = encode_xorb(now, xorb.hash, hashes, sizes)
        task = asyncio.ensure_future(self._append(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _append(self, record: _Record) -> None:
        async with self._lock:
            assert record.xorb.hash is not None
            self._records[record.xorb.hash] = record
            try:
                if not self._has_header:
                    # First write of this session: start the journal over from what is known
                    # (also drops whatever tail a crashed writer may have left).
                    await self._rewrite_locked()
                else:
                    await self.backend.append(self.name, record.frame)
            except Exception as exc:
                log.warning("upload resume: recording xorb failed: %s", exc)

    async def flush(self) -> None:
        """Wait for the records scheduled so far to be written."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def forget(self, hashes: Iterable[MerkleHash]) -> None:
        """Drop these xorbs from the journal (registered, or missing on the server)."""
        await self.flush()
        async with self._lock:
            dropped = [h for h in hashes if self._records.pop(h, None) is not None]
            if not dropped:
                return
            try:
                await self._rewrite_locked()
            except Exception as exc:
                log.warning("upload resume: rewriting the state failed: %s", exc)

    async def _rewrite(self) -> None:
        try:
            await self._rewrite_locked()
        except Exception as exc:
            log.warning("upload resume: rewriting the state failed: %s", exc)

    async def _rewrite_locked(self) -> None:
        records = sorted(self._records.values(), key=lambda r: r.time)
        header = encode_header(self.endpoint, self.scope)
        total = len(header) + sum(len(r.frame) for r in records)
        while records and total > MAX_JOURNAL_BYTES:
            total -= len(records[0].frame)
            assert records[0].xorb.hash is not None
            del self._records[records.pop(0).xorb.hash]
        if not records:
            await self.backend.remove(self.name)
            self._has_header = False
            return
        await self.backend.replace(self.name, header + b"".join(r.frame for r in records))
        self._has_header = True

    @property
    def xorb_hashes(self) -> set[MerkleHash]:
        return set(self._records)


async def exists_all(cas: CasClient, xorbs: list[ResumedXorb]) -> list[bool | None]:
    """HEAD every xorb (at most 8 at a time): True, False (404) or None (no clear answer)."""
    semaphore = asyncio.Semaphore(8)

    async def one(xorb: ResumedXorb) -> bool | None:
        assert xorb.hash is not None
        async with semaphore:
            try:
                return await cas.xorb_exists(xorb.hash)
            except Exception as exc:
                log.warning("upload resume: checking xorb %s failed: %s", xorb.hash, exc)
                return None

    return list(await asyncio.gather(*(one(x) for x in xorbs)))


__all__ = [
    "DEFAULT_MAX_AGE",
    "JOURNAL_VERSION",
    "MAX_JOURNAL_BYTES",
    "ParsedJournal",
    "ResumeBackend",
    "ResumedXorb",
    "UploadResume",
    "acknowledged_bytes",
    "encode_header",
    "encode_xorb",
    "exists_all",
    "journal_name",
    "parse_journal",
    "xorbs_named_in",
]
