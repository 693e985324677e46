"""The commit's sha256 proof, done while the upload is still running (issue 20).

A commit names a large file by the sha256 its shard claims; the Hub proves that claim against
the stored bytes before the commit may use it (:meth:`.service.Hub.lfs_blob`). Rebuilding and
hashing the file at commit time (:func:`.content.sha256_of`) costs ~0.75 s per GiB at the end
of every upload, with the client waiting and one core idle. Here the same work is started as
the xorbs arrive:

* Per write token, the xorbs are remembered in the order their uploads *started* (grant
  request, or the start of a legacy POST): clients seal and start xorbs in file order. A
  background thread hashes each one's stored chunks (the same mapping and decoding as the full
  proof, so the bytes hashed are the stored ones) as soon as it is stored and its predecessor
  is hashed, keeping the SHA-256 state at every xorb start (a ``hashlib`` copy: a few hundred
  bytes per ~64 MiB xorb).
* When a commit needs the proof of a Xet file whose terms are exactly that stream from its
  start (whole xorbs, the last one possibly cut short), the digest is the saved state at the
  end of its last xorb (or that xorb's start state continued over its first chunks): no
  rebuild. The committing thread hashes any xorb the background thread has not reached yet
  itself, so a commit never waits on the background thread's low priority.
* Anything else — deduplicated or reordered terms, a file that does not start a stream, a
  token refreshed mid-upload, a damaged record, a server restart — falls back to the full
  proof, which raises the typed errors it always did. A wrong claim is refused as before: both
  ways yield the sha256 of the stored bytes, compared with the claim by the caller.

When a shard registers a file with a sha256 claim that no blob proves yet, its proof starts
at once in a worker thread (:meth:`EarlyProofs.files_registered`): from its stream where one
holds it, else the full rebuild. The commit then waits for that result (an error raised there
is raised at the commit, as the rebuild's would be): a commit of many files, or a client that
sends its shard well before its commit, overlaps the proofs with everything else.

Only write tokens of the Hub's repositories are followed. The background thread runs at
nice 19: an upload that is never committed pays its hashing only from otherwise idle CPU.
Memory is bounded by :data:`MAX_STREAMS` streams of at most
:data:`MAX_STREAM_XORBS` xorbs; a stream idle for :data:`STREAM_IDLE_SECONDS` is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from xet_pyodide.core.hashes import MerkleHash

from ..jsonlog import get_logger
from ..layout import XorbLayout
from ..stats import Stats
from ..store import Store
from . import content

log = get_logger("hub.early")

#: Write tokens followed at once (the least recently active is dropped beyond it).
MAX_STREAMS = 16
#: Xorbs remembered per token (1 TiB of 64 MiB xorbs; ~0.6 KiB each with its SHA-256
#: state: ≤ ~10 MiB per stream); later ones are not followed.
MAX_STREAM_XORBS = 16384
#: A stream with no new xorb for this long is dropped.
STREAM_IDLE_SECONDS = 3600.0
#: Nice value of the background hashing thread (Linux: per thread).
NICE = 19
#: Proofs started at shard registration and kept for their commit (the oldest finished ones
#: are forgotten beyond it; past it, no more are started: the commit proves the file).
MAX_AHEAD = 256


@dataclass(eq=False)
class _Stream:
    """The xorbs of one write token in upload-start order and the SHA-256 of their prefix."""

    xorbs: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    #: ``starts[i]``: the SHA-256 state before xorb ``i`` (never updated once appended: users
    #: copy it); ``len(starts) - 1`` xorbs are hashed.
    starts: list[hashlib._Hash] = field(default_factory=lambda: [hashlib.sha256()])
    busy: bool = False  # a thread is hashing xorb ``hashed``
    failed: bool = False
    touched: float = field(default_factory=time.monotonic)

    @property
    def hashed(self) -> int:
        return len(self.starts) - 1


class EarlyProofs:
    """Speculative in-order hashing of uploaded xorbs; :meth:`sha256_of` is the proof the
    commit uses (the full rebuild when no stream covers the file)."""

    def __init__(
        self,
        store: Store,
        stats: Stats | None = None,
        follow: Callable[[str], bool] = lambda repo: True,
        background: bool = True,
        needed: Callable[[str, int], bool] = lambda sha256, size: True,
    ) -> None:
        self.store = store
        self.stats = stats
        #: Which tokens to follow, by their repository claim: the Hub's repositories (an
        #: upload to the bare CAS is never committed by sha256).
        self._follow = follow
        #: Whether a (sha256, size) claim still needs a proof (no blob has it yet).
        self._needed = needed
        self._background = background
        self._ahead: OrderedDict[str, Future[str]] = OrderedDict()
        self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="sha256-ahead")
        self._cv = threading.Condition()
        #: Per write token, its stream (None: a token not followed).
        self._streams: OrderedDict[str, _Stream | None] = OrderedDict()
        self._wakes = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ upload events
    def xorb_started(self, owner: str, repo: str, xorb_hex: str) -> None:
        """The upload of ``xorb_hex`` by write token ``owner`` (for ``repo``, a token's
        repository claim) started: its grant was asked for, or its POST arrived. Cheap: called
        on the event loop (one ``follow(repo)`` per new token)."""
        now = time.monotonic()
        with self._cv:
            known = owner in self._streams
            stream = self._streams.get(owner)
        if not known:
            stream = _Stream() if self._follow(repo) else None
        with self._cv:
            if not known and owner not in self._streams:
                self._streams[owner] = stream
                self._forget_old(now)
            else:
                stream = self._streams[owner]
                self._streams.move_to_end(owner)
            if stream is None:
                return
            stream.touched = now
            if xorb_hex in stream.positions or len(stream.xorbs) >= MAX_STREAM_XORBS:
                return
            stream.positions[xorb_hex] = len(stream.xorbs)
            stream.xorbs.append(xorb_hex)
            self._wake()
        if self._background and self._thread is None:
            self._start_thread()

    def xorb_stored(self, xorb_hex: str) -> None:
        """A xorb was stored (or found stored): the background thread may go on."""
        with self._cv:
            self._wake()

    def files_registered(self, repo: str, files: Sequence[tuple[str, str | None, int]]) -> None:
        """A shard registered ``files`` (file hash, claimed sha256 or None, size) through a
        token of ``repo``: start the proof of each claim no blob proves yet, in a worker thread
        (its result waits for the commit). Called from a worker thread."""
        if not self._background or not files or not self._follow(repo):
            return
        for file_hash, sha256, size in files:
            if sha256 is None or not self._needed(sha256, size):
                continue
            with self._cv:
                if self._closed or file_hash in self._ahead:
                    continue
                running = sum(1 for f in self._ahead.values() if not f.done())
                if running >= MAX_AHEAD:
                    return
                while len(self._ahead) >= MAX_AHEAD:
                    self._ahead.popitem(last=False)
                self._ahead[file_hash] = self._ahead_pool.submit(self._prove, file_hash)

    def _forget_old(self, now: float) -> None:
        """(lock held) Drop idle streams and the least recently active beyond the cap."""
        idle = [
            o
            for o, s in self._streams.items()
            if s is not None and now - s.touched > STREAM_IDLE_SECONDS
        ]
        for owner in idle:
            del self._streams[owner]
        while len(self._streams) > MAX_STREAMS:
            self._streams.popitem(last=False)

    def _wake(self) -> None:
        self._wakes += 1
        self._cv.notify_all()

    # ------------------------------------------------------------------ the proof
    def sha256_of(self, file_hash: str) -> str:
        """SHA-256 of stored Xet file ``file_hash``: the proof started when its shard came, if
        any (waited for; its error raised here), else :meth:`_prove` now."""
        with self._cv:
            ahead = self._ahead.pop(file_hash, None)
        if ahead is not None and not ahead.cancel():  # (a cancelled one had not started)
            self._count("sha256_proofs_ahead")
            return ahead.result()
        return self._prove(file_hash)

    def _prove(self, file_hash: str) -> str:
        """Continued from a stream that holds the file's first xorbs in order, else rebuilt
        (:func:`.content.sha256_of`, whose errors propagate)."""
        early = self.streamed_sha256(file_hash)
        if early is not None:
            digest, rest = early
            self._count("sha256_proofs_streamed" if rest == 0 else "sha256_proofs_partly_streamed")
            return digest
        self._count("sha256_proofs_rebuilt")
        return content.sha256_of(self.store, file_hash)

    def streamed_sha256(self, file_hash: str) -> tuple[str, int] | None:
        """(SHA-256 of ``file_hash``, how many of its terms were hashed here) from the stream
        sharing the longest run of leading whole xorbs with the file: its saved state after
        them, continued over the file's other terms (none, or the part of its last xorb, when
        the file is exactly the stream's start; more after a reordered or deduplicated xorb).
        The committing thread hashes whatever the background thread has not reached. The bytes
        hashed and the result are :func:`.content.sha256_of`'s. None when no stream starts
        like the file or a read fails (the rebuild then reports it)."""
        row = self.store.file(file_hash)
        if row is None or not row.terms:
            return None
        xorbs = [MerkleHash(t.xorb_raw).hex() for t in row.terms]
        best, shared = None, 0
        with self._cv:
            for s in self._streams.values():
                if s is None or s.failed:
                    continue
                n = 0
                while n < min(len(xorbs), len(s.xorbs)) and s.xorbs[n] == xorbs[n]:
                    n += 1
                if n > shared:
                    best, shared = s, n
        if best is None:
            return None
        layouts: list[XorbLayout] = []
        for x in xorbs:
            lay = self.store.layout(x)
            if lay is None:
                return None
            layouts.append(lay)
        whole = 0  # leading terms that are whole xorbs of the stream
        prefix_bytes = 0
        while whole < shared:
            t, lay = row.terms[whole], layouts[whole]
            if t.chunk_start != 0 or t.chunk_end != lay.num_chunks:
                break
            prefix_bytes += lay.unpacked_len(0, lay.num_chunks)
            whole += 1
        if whole == 0 or prefix_bytes > row.size:
            return None
        state = self._state_before(best, whole)
        if state is None:
            return None
        remaining = row.size - prefix_bytes
        rest = row.terms[whole:]
        try:
            for t, x, lay in zip(rest, xorbs[whole:], layouts[whole:], strict=True):
                if remaining <= 0:
                    break
                remaining = content.hash_xorb_chunks(
                    self.store, state, x, lay, t.chunk_start, t.chunk_end, remaining
                )
        except Exception:  # the rebuild reports it
            return None
        # exact: the file is the stream's start (its last xorb possibly cut short)
        exact = whole == len(xorbs) or (shared == len(xorbs) and whole == len(xorbs) - 1)
        if not exact:
            log.info(
                "sha256 proof partly streamed",
                extra={"file": file_hash, "terms": len(xorbs), "streamed": whole},
            )
        return state.hexdigest(), 0 if exact else len(rest)

    def _state_before(self, stream: _Stream, n: int) -> hashlib._Hash | None:
        """A copy of the SHA-256 state after the first ``n`` xorbs of ``stream`` (all stored),
        hashing the missing ones here unless the background thread is at one of them."""
        while True:
            with self._cv:
                if stream.failed:
                    return None
                if stream.hashed >= n:
                    return stream.starts[n].copy()
                if stream.busy:
                    self._cv.wait(1.0)
                    continue
                stream.busy = True
                i = stream.hashed
            self._step(stream, i)

    def _step(self, stream: _Stream, i: int) -> None:
        """Hash xorb ``i`` of ``stream`` (claimed by this thread: ``busy``) on top of the state
        before it, and publish the state after it."""
        digest = stream.starts[i].copy()
        ok = False
        try:
            lay = self.store.layout(stream.xorbs[i])
            if lay is not None:
                content.hash_xorb_chunks(
                    self.store, digest, stream.xorbs[i], lay, 0, lay.num_chunks, 1 << 62
                )
                ok = True
        except Exception as e:  # a damaged record: the full proof will name it
            log.warning(
                "early sha256 stream stopped", extra={"xorb": stream.xorbs[i], "error": str(e)}
            )
        finally:
            with self._cv:
                stream.busy = False
                if ok:
                    stream.starts.append(digest)
                else:
                    stream.failed = True
                self._wake()

    def _count(self, name: str) -> None:
        if self.stats is not None:
            self.stats.add(name)

    # ------------------------------------------------------------------ background thread
    def _start_thread(self) -> None:
        with self._cv:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="early-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # per-thread nice: Linux
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while True:
            with self._cv:
                if self._closed:
                    return
                seen = self._wakes
                heads = [
                    (s, s.hashed)
                    for s in self._streams.values()
                    if s is not None and not s.busy and not s.failed and s.hashed < len(s.xorbs)
                ]
            try:
                job = next(
                    ((s, i) for s, i in heads if self.store.layout(s.xorbs[i]) is not None), None
                )
            except Exception:  # the store closed under us (shutdown)
                return
            if job is not None:
                stream, i = job
                with self._cv:
                    if stream.busy or stream.failed or stream.hashed != i:
                        continue
                    stream.busy = True
                self._step(stream, i)
                continue
            with self._cv:
                if not self._closed and self._wakes == seen:
                    self._cv.wait(1.0)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._wake()
        self._ahead_pool.shutdown(wait=False, cancel_futures=True)
