"""A file's SHA-256 chained block by block through the pool workers (issue 20).

An upload of a ``Blob`` with a worker pool has each block read by a worker straight into a slot
of the shared buffer (:meth:`~xet_pyodide.io.pool_hasher.PooledChunkHasher.read_blob`). The
file's SHA-256 is computed from there instead of on the page's thread (hashlib: ~3 CPU-s per
GiB uploaded, the page's largest item) and without reading the ``Blob`` a second time (the side
worker of :meth:`~xet_pyodide.io.workers.WorkerPool.sha256_blob` does): SHA-256 is sequential,
so the blocks form a chain — the link of block *k* goes to any free worker (op
``sha256blocks``) once block *k*'s bytes are in its slot and block *k − 1*'s chaining value is
back, and compresses the block's whole 64-byte blocks with the kernels' compression function
(``xk_sha256_blocks``). What is not in a slot (a short last block read on the page) and the
final padding are compressed here with the same kernel, keeping the state exactly like
:class:`~xet_pyodide.kernels.sha256.KernelSha256` (chaining value, < 64 pending bytes, length).
A slot is only reused once its link is done (:meth:`Sha256Chain.add_slot` returns when).

This module knows nothing of Pyodide: the pool is a :class:`ChainPool` (the real one is
:class:`~xet_pyodide.io.workers.WorkerPool`), so the chain's bookkeeping runs in every runtime
(tests drive it with the kernels standing in for the workers).
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol

from ..errors import XetKernelError
from ..kernels import get_kernels
from ..kernels.api import Kernels
from ..kernels.sha256 import SHA256_IV

Buffer = bytes | bytearray | memoryview


class ChainPool(Protocol):
    """What a :class:`Sha256Chain` uses of a worker pool."""

    async def sha256_blocks(self, offset: int, length: int, state: bytes, head: bytes) -> bytes:
        """The chaining value after ``head + shared[offset, offset + length)`` (whole 64-byte
        blocks) from ``state``, computed by a worker."""
        ...

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes of the shared buffer from ``offset``."""
        ...


class _Slot:
    __slots__ = ("free", "length", "offset", "ready")

    def __init__(self, offset: int, length: int, ready: Awaitable[Any], free: asyncio.Future[None]):
        self.offset = offset
        self.length = length
        self.ready = ready
        self.free = free


_END = object()


class Sha256Chain:
    """The SHA-256 of one file whose pieces are given in order: blocks in the pool's shared
    buffer (:meth:`add_slot`) or bytes on this thread (:meth:`add_bytes`); :meth:`close` after
    the last. :attr:`digest` resolves to the 32-byte digest, or fails with the first link's
    error (:class:`~xet_pyodide.errors.XetKernelError` from a worker; the error :meth:`abort`
    was given). Cancelling :attr:`digest` (an abandoned upload) stops the chain: links not yet
    posted are skipped and their slots freed at once."""

    def __init__(self, pool: ChainPool, kernels: Kernels | None = None) -> None:
        self._pool = pool
        self._kernels = kernels
        loop = asyncio.get_running_loop()
        self.digest: asyncio.Future[bytes] = loop.create_future()
        self.digest.add_done_callback(self._digest_done)
        self._state = SHA256_IV
        self._pending = b""  # < 64 bytes not compressed yet
        self._length = 0
        self._queue: deque[Any] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._closed = False
        self._stopped = False  # failed, aborted or cancelled: no more links are posted
        self._task = loop.create_task(self._run())
        self._task.add_done_callback(_retrieve)

    @property
    def error(self) -> BaseException | None:
        """The chain's failure once it failed (not when it was cancelled), else None."""
        digest = self.digest
        if digest.done() and not digest.cancelled():
            return digest.exception()
        return None

    # ------------------------------------------------------------------ pieces

    def add_slot(self, offset: int, length: int, ready: Awaitable[Any]) -> asyncio.Future[None]:
        """The next ``length`` bytes of the file are at ``offset`` of the shared buffer once
        ``ready`` resolves (it may fail: the chain then fails with its error). Returns a future
        that resolves when the chain no longer reads them (never fails): free the slot only
        after it."""
        free: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed or self._stopped:
            free.set_result(None)
            if not self._stopped:
                raise RuntimeError("Sha256Chain: a piece added after close()")
            return free
        self._push(_Slot(offset, length, ready, free))
        return free

    def add_bytes(self, data: Buffer) -> None:
        """The next bytes of the file, compressed on this thread (after the links before)."""
        if self._stopped:
            return
        if self._closed:
            raise RuntimeError("Sha256Chain: a piece added after close()")
        self._push(bytes(data))

    def close(self) -> None:
        """No more pieces: :attr:`digest` resolves after the last link."""
        if not self._closed:
            self._closed = True
            self._push(_END)

    def abort(self, error: BaseException | None = None) -> None:
        """Stop the chain (the file's reading stopped early): :attr:`digest` fails with
        ``error`` (default: a :class:`~xet_pyodide.errors.XetKernelError`) unless it is done."""
        if self.digest.done():
            return
        self._fail(error or XetKernelError("the SHA-256 chain stopped before the file's end"))
        self.digest.exception()  # retrieved: whoever awaits it still gets it

    # ------------------------------------------------------------------ the chain

    def _push(self, item: Any) -> None:
        self._queue.append(item)
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _digest_done(self, digest: asyncio.Future[bytes]) -> None:
        if digest.cancelled():
            self._stopped = True
            self._push(_END)  # wake the chain so it frees what it holds and ends

    def _fail(self, error: BaseException) -> None:
        self._stopped = True
        if not self.digest.done():
            self.digest.set_exception(error)
        self._push(_END)

    async def _run(self) -> None:
        """Take the pieces in order; each link starts when its bytes and the state are there."""
        while True:
            if not self._queue:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                continue
            item = self._queue.popleft()
            if item is _END:
                if self._stopped:
                    self._drain()
                    return
                self._finish()
                return
            if self._stopped:
                if isinstance(item, _Slot):
                    _set(item.free)
                continue
            try:
                if isinstance(item, _Slot):
                    await self._link(item)
                else:
                    self._update(item)
            except Exception as exc:  # a worker's failure, a failed read of the slot's bytes
                self._fail(exc)

    async def _link(self, piece: _Slot) -> None:
        try:
            try:
                await piece.ready
            except asyncio.CancelledError:
                if isinstance(piece.ready, asyncio.Future) and piece.ready.cancelled():
                    raise XetKernelError("a block's read was cancelled") from None
                raise  # this task itself is being cancelled
            if self._stopped:
                return
            head = self._pending
            whole = (len(head) + piece.length) // 64 * 64 - len(head)
            if whole < 0:  # a block shorter than the pending bytes' complement: keep it all
                self._pending = head + self._pool.read(piece.offset, piece.length)
            else:
                if whole + len(head):
                    self._state = await self._pool.sha256_blocks(
                        piece.offset, whole, self._state, head
                    )
                rest = piece.length - whole
                self._pending = self._pool.read(piece.offset + whole, rest)
            self._length += piece.length
        finally:
            _set(piece.free)

    def _update(self, data: bytes) -> None:
        kernels = self._kernels or get_kernels()
        self._length += len(data)
        data = self._pending + data
        whole = len(data) - len(data) % 64
        if whole:
            self._state = kernels.sha256_blocks(self._state, data[:whole])
        self._pending = data[whole:]

    def _finish(self) -> None:
        # 0x80, zeros up to 56 mod 64, then the bit length as a big-endian u64 (FIPS 180-4).
        kernels = self._kernels or get_kernels()
        tail = self._pending + b"\x80" + bytes((55 - len(self._pending)) % 64)
        tail += struct.pack(">Q", (self._length * 8) & 0xFFFF_FFFF_FFFF_FFFF)
        try:
            digest = kernels.sha256_blocks(self._state, tail)
        except Exception as exc:
            self._fail(exc)
            return
        if not self.digest.done():
            self.digest.set_result(digest)

    def _drain(self) -> None:
        """Stopped: free every slot still queued (their bytes will not be read)."""
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Slot):
                _set(item.free)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["ChainPool", "Sha256Chain"]
