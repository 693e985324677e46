"""A Web Worker pool for the chunk-and-hash stage (Pyodide on a browser page).

The page's Python drives N module workers (``web/xet_worker.mjs``), each running its own
instance of ``xet_kernels.wasm``: the ``WebAssembly.Module`` the page's own kernels were made
from (:func:`~xet_pyodide.kernels._load_pyodide.compiled_module`, compiled once per page) is
posted to every worker, which instantiates and warms it up before reporting ready. Data travels
through one ``SharedArrayBuffer`` cut into block *slots*: a block is copied into a slot once,
workers read their slices from it and write chunk hashes back into it, so only small messages
(offsets) cross threads. Tasks go to whichever worker is idle (a queue, not a fixed split), so a
slow core does not hold a whole block back.

:mod:`xet_pyodide.io.pool_hasher` builds the session's chunk hasher on top of this pool;
:mod:`xet_pyodide.io.pool_fetch` has the workers read download bodies (their messages carry a
``stream`` id and go to :attr:`WorkerPool.streams`, not to the task queue).
:func:`start_pool` returns ``None`` — after a console warning — when the page is not
cross-origin isolated (``SharedArrayBuffer`` then does not exist): callers fall back to the
single-threaded hasher.
"""

from __future__ import annotations

import asyncio
import itertools
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

from ..core.chunking import GEAR_WINDOW_PREFIX
from ..errors import XetKernelError
from ..kernels._load_pyodide import compiled_module
from .blob import blob_read_error
from .jsinterop import js_copy_into, js_uint8array_copy, to_js_value

MIB = 1 << 20
#: Bytes of one block slot in the shared buffer.
SLOT_BYTES = 16 * MIB
#: Slots in the shared buffer: an upload holds up to four (the block being hashed and the
#: blocks read ahead), ``hashFile`` as many as are free.
SLOTS = 4
#: Smallest slice of work worth a message to a worker.
MIN_TASK = 256 * 1024
#: Tasks per worker and block. More would balance uneven cores, but every task costs a message
#: round trip through the page's busy main thread: in Chromium on 2 cores, 1 task per worker
#: hashed ~10 % faster than 2, and 4 was ~35 % slower.
TASKS_PER_WORKER = 1
#: Tasks a worker may hold at once: the second waits in the worker's own message queue, so
#: the worker goes on without a round trip through the page's (busy) thread, and can hash
#: while one of its Blob reads is pending.
TASK_DEPTH = 2
READY_TIMEOUT = 60.0

NOT_ISOLATED_WARNING = (
    "xet_pyodide: this page is not cross-origin isolated (no SharedArrayBuffer), so chunk "
    "hashing runs single-threaded on the main thread. Serve the page with "
    "'Cross-Origin-Opener-Policy: same-origin' and 'Cross-Origin-Embedder-Policy: "
    "require-corp' (or 'credentialless') to enable the worker pool."
)


def isolation_available() -> bool:
    """True when this page can share memory with workers (``SharedArrayBuffer``)."""
    return bool(getattr(js, "crossOriginIsolated", False)) and hasattr(js, "SharedArrayBuffer")


def default_pool_size() -> int:
    """``navigator.hardwareConcurrency`` (at least 1, at most 16)."""
    navigator = getattr(js, "navigator", None)
    cores = getattr(navigator, "hardwareConcurrency", None) if navigator is not None else None
    try:
        return max(1, min(16, int(cores)))
    except (TypeError, ValueError):
        return 2


class Slot:
    """One region of the shared buffer: room for up to 63 history bytes, the block, the chunk
    sizes of a hash round and their digests."""

    __slots__ = ("data", "data_cap", "lens", "out", "out_cap")

    def __init__(self, base: int, data_cap: int) -> None:
        self.data = base + 64  # the history bytes go just before the data
        self.data_cap = data_cap
        self.out_cap = data_cap // 4096 + 16  # digests per hash round (chunks are >= 8 KiB)
        self.lens = self.data + data_cap
        self.out = self.lens + 4 * self.out_cap

    @staticmethod
    def size(data_cap: int) -> int:
        return 64 + data_cap + 36 * (data_cap // 4096 + 16)


class WorkerPool:
    """N kernel workers sharing one ``SharedArrayBuffer`` of :data:`SLOTS` block slots.

    Create it with :func:`start_pool`. :meth:`hasher` is a ``chunk_hasher_factory``.
    """

    def __init__(
        self,
        workers: list[Any],
        sab: Any,
        slots: list[Slot],
        *,
        module: Any = None,
        worker_url: str | None = None,
        worker_options: dict[str, Any] | None = None,
    ) -> None:
        self.workers = workers
        self.size = len(workers)
        self.sab = sab
        self.slot_bytes = slots[0].data_cap
        self._free: asyncio.Queue[Slot] = asyncio.Queue()
        for slot in slots:
            self._free.put_nowait(slot)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._queue: deque[tuple[dict[str, Any], asyncio.Future[Any]]] = deque()
        self._idle = list(range(self.size)) * TASK_DEPTH
        #: Bodies being read by the workers, by stream id (:mod:`.pool_fetch`).
        self.streams: dict[int, Any] = {}
        self._proxies = [create_proxy(self._message_handler(i)) for i in range(self.size)]
        for worker, proxy in zip(workers, self._proxies, strict=True):
            worker.onmessage = proxy
        # The side worker (started on first use) runs whole-file jobs such as a Blob's SHA-256,
        # which must not occupy a pool worker for seconds.
        self._module = module
        self._worker_url = worker_url
        self._worker_options = worker_options
        self._side: asyncio.Future[Any] | None = None
        self._side_pending: dict[int, asyncio.Future[Any]] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()  # (strong references)
        self._closed = False

    def close(self) -> None:
        """Terminate the workers; pending tasks fail."""
        self._closed = True
        for worker in self.workers:
            worker.terminate()
        side_worker, side, self._side = self._running_side(), self._side, None
        if side_worker is not None:
            side_worker.terminate()
        elif side is not None:
            side.cancel()  # still starting: _start_workers terminates what it started
        for proxy in self._proxies:
            proxy.destroy()
        self._proxies.clear()
        error = _closed_error()
        pending = [*self._pending.values(), *(f for _, f in self._queue)]
        for future in [*pending, *self._side_pending.values()]:
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._side_pending.clear()
        self._queue.clear()
        for stream in list(self.streams.values()):
            stream.deliver(_Failure("the worker pool was closed"))
        self.streams.clear()

    # ------------------------------------------------------------------ slots and memory

    async def acquire(self) -> Slot:
        if self._closed:
            raise _closed_error()
        return await self._free.get()

    def try_acquire(self) -> Slot | None:
        """A free slot, or None (never waits)."""
        try:
            return self._free.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def release(self, slot: Slot) -> None:
        self._free.put_nowait(slot)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Copy a Python buffer into the shared buffer."""
        js_copy_into(self.sab, offset, data)

    def read(self, offset: int, n: int) -> bytes:
        return bytes(js.Uint8Array.new(self.sab, offset, n).to_bytes()) if n > 0 else b""

    # ------------------------------------------------------------------ tasks

    def _message_handler(self, index: int) -> Callable[[Any], None]:
        def on_message(event: Any) -> None:
            data = event.data
            stream_id = getattr(data, "stream", None)
            if stream_id is not None:  # a body read by the worker (not a task)
                stream = self.streams.get(int(stream_id))
                if stream is not None:
                    stream.deliver(data)
                return
            future = self._pending.pop(int(data.id), None)
            if future is not None and not future.done():
                error = getattr(data, "error", None)
                if error:
                    future.set_exception(_worker_error(data, error))
                else:
                    future.set_result(data)
            self._idle.append(index)
            self._pump()

        return on_message

    def _submit(self, message: dict[str, Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:  # its workers are gone: nothing would ever answer
            future.set_exception(_closed_error())
            return future
        message["id"] = next(self._ids)
        self._queue.append((message, future))
        self._pump()
        return future

    def _pump(self) -> None:
        while self._idle and self._queue:
            message, future = self._queue.popleft()
            if future.done():
                continue
            worker = self.workers[self._idle.pop()]
            self._pending[message["id"]] = future
            worker.postMessage(to_js_value(message))

    # ------------------------------------------------------------------ the side worker

    def sha256_blob(self, blob: Any, *, block_size: int = SLOT_BYTES) -> asyncio.Future[bytes]:
        """Start the SHA-256 of a whole JS ``Blob`` on the side worker, which reads the Blob
        itself: the digest costs this thread nothing and runs alongside the chunking (at
        about hashlib's speed, ~0.48 GB/s in Chromium, but the Blob is read twice; off by
        default: see :class:`xet_pyodide.browser.BrowserXet`). Resolves to the 32-byte
        digest; cancelling the future stops the worker's job."""
        loop = asyncio.get_running_loop()
        digest: asyncio.Future[bytes] = loop.create_future()
        job_id = next(self._ids)

        async def run() -> None:
            try:
                worker = await self._side_worker()
            except BaseException as exc:  # failed to start, or the pool closed meanwhile
                if not digest.done():
                    digest.set_exception(_closed_error() if self._closed else exc)
                return
            if digest.done():  # cancelled while the worker started
                return
            self._side_pending[job_id] = digest
            message = {"op": "sha256", "id": job_id, "blob": blob, "block": block_size}
            worker.postMessage(to_js_value(message))

        def finished(future: asyncio.Future[bytes]) -> None:
            if future.cancelled() and self._side_pending.pop(job_id, None) is not None:
                worker = self._running_side()
                if worker is not None:
                    worker.postMessage(to_js_value({"op": "cancel", "id": job_id}))

        self._side_tasks.add(task := loop.create_task(run()))
        task.add_done_callback(self._side_tasks.discard)
        digest.add_done_callback(finished)
        return digest

    def _running_side(self) -> Any:
        """The side worker if it has started (else None)."""
        side = self._side
        if side is None or not side.done() or side.cancelled() or side.exception() is not None:
            return None
        return side.result()

    async def _side_worker(self) -> Any:
        if self._closed:
            raise _closed_error()
        if self._side is None:
            self._side = asyncio.ensure_future(self._start_side())
        return await asyncio.shield(self._side)

    async def _start_side(self) -> Any:
        if self._module is None or self._worker_url is None:
            raise XetKernelError("this worker pool cannot start a side worker")
        (worker,) = await _start_workers(
            self._worker_url, self._module, self.sab, 1, self._worker_options
        )
        if self._closed:
            worker.terminate()
            raise _closed_error()
        proxy = create_proxy(self._side_message)
        self._proxies.append(proxy)
        worker.onmessage = proxy
        return worker

    def _side_message(self, event: Any) -> None:
        data = event.data
        future = self._side_pending.pop(int(data.id), None)
        if future is None or future.done():
            return
        error = getattr(data, "error", None)
        if error:
            future.set_exception(_worker_error(data, error))
        else:
            future.set_result(bytes(data.digest.to_bytes()))

    def _pieces(self, total: int) -> int:
        return max(1, min(self.size * TASKS_PER_WORKER, total // MIN_TASK))

    def scan(self, slot: Slot, prefix_len: int, length: int) -> asyncio.Future[list[int]]:
        """Start the gear scan of ``slot``'s data ``[0, length)`` (``prefix_len`` history bytes
        already in place before it); resolves to candidate offsets from the data start."""
        pieces = self._pieces(length)
        bounds = [length * i // pieces for i in range(pieces + 1)]
        futures = []
        for a, b in itertools.pairwise(bounds):
            history = min(a, GEAR_WINDOW_PREFIX) if a else prefix_len
            message = {
                "op": "gear",
                "from": slot.data + a - history,
                "start": slot.data + a,
                "end": slot.data + b,
                "base": slot.data,
            }
            futures.append(self._submit(message))
        return _candidates_task(futures)

    def read_scan(
        self, slot: Slot, blob: Any, start: int, length: int, *, whole: bool = False
    ) -> asyncio.Future[list[int]]:
        """Like :meth:`scan`, but the workers read ``blob[start, start + length)`` themselves
        into ``slot``'s data (each slice with the up to 63 Blob bytes before it as history), so
        the block never passes through this thread. Resolves once the bytes are in the slot, to
        candidate offsets from the block start (each worker subtracts ``base``, the block's
        Blob offset, itself).

        ``whole``: one worker reads and scans the whole block instead of each worker a slice.
        Callers with several blocks in flight use it: the workers still run in parallel (on
        different blocks) and a Blob read in 16 MiB slices costs the browser noticeably less
        than in 8 MiB ones (bench: 1 GiB in 0.85-0.93 s vs 0.98-1.13 s with 2 workers, and
        ``hashFile`` 560-628 -> 644-655 MB/s)."""
        pieces = 1 if whole else self._pieces(length)
        bounds = [length * i // pieces for i in range(pieces + 1)]
        futures = []
        for a, b in itertools.pairwise(bounds):
            message = {
                "op": "readscan",
                "blob": blob,
                "from": max(0, start + a - GEAR_WINDOW_PREFIX),
                "start": start + a,
                "end": start + b,
                "dst": slot.data + a,
                "base": start,
            }
            futures.append(self._submit(message))
        return _candidates_task(futures)

    async def sha256_blocks(self, offset: int, length: int, state: bytes, head: bytes) -> bytes:
        """One link of a file's SHA-256 on any free worker (op ``sha256blocks``; the
        :class:`~xet_pyodide.io.pool_sha.Sha256Chain` drives it): the chaining value after
        ``head`` (< 64 bytes) and ``length`` bytes at ``offset`` of the shared buffer, whole
        64-byte blocks in all, from the big-endian chaining value ``state``."""
        message = {
            "op": "sha256blocks",
            "off": offset,
            "len": length,
            "state": js_uint8array_copy(state),
            "head": js_uint8array_copy(head),
        }
        answer = await self._submit(message)
        return bytes(answer.state.to_bytes())

    async def hash(self, slot: Slot, start: int, lengths: list[int]) -> bytes:
        """Chunk hashes (DATA_KEY) of consecutive chunks at ``slot.data + start``."""
        digests = bytearray()
        first, offset = 0, start
        while first < len(lengths):
            batch = lengths[first : first + slot.out_cap]
            digests += await self._hash_round(slot, offset, batch)
            first += len(batch)
            offset += sum(batch)
        return bytes(digests)

    async def _hash_round(self, slot: Slot, offset: int, lengths: list[int]) -> bytes:
        self.write(slot.lens, memoryview(array("I", lengths)).cast("B"))
        total = sum(lengths)
        groups = self._pieces(total)
        futures = []
        first, pos, done = 0, offset, 0
        for g in range(1, groups + 1):
            target = total * g // groups
            last, size = first, 0
            while last < len(lengths) and (done + size < target or last == first):
                size += lengths[last]
                last += 1
            if last > first:
                message = {
                    "op": "hash",
                    "off": slot.data + pos,
                    "lens": slot.lens + 4 * first,
                    "count": last - first,
                    "out": slot.out + 32 * first,
                }
                futures.append(self._submit(message))
            first, pos, done = last, pos + size, done + size
        await asyncio.gather(*futures)
        return self.read(slot.out, 32 * len(lengths))


def retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Done-callback marking a future's exception as retrieved (awaiting it still raises it),
    for futures that may fail before anyone awaits them, or never be awaited."""
    if not future.cancelled():
        future.exception()


def _candidates_task(futures: list[asyncio.Future[Any]]) -> asyncio.Task[list[int]]:
    """:func:`_merge_candidates` as a task. Read-ahead scans may fail (an unreadable Blob)
    before anyone awaits them, and Pyodide's loop reports a task that fails with no
    done-callback as an unhandled exception right away, although the caller still awaits it
    (and gets the error) or drops it: hence :func:`retrieve_exception`."""
    task = asyncio.ensure_future(_merge_candidates(futures))
    task.add_done_callback(retrieve_exception)
    return task


def _worker_error(data: Any, error: Any) -> Exception:
    """A task's failure as the worker reported it: a Blob that could not be read (``kind:
    "read"``) is the caller's input, anything else the kernels' or the worker's fault."""
    if getattr(data, "kind", None) == "read":
        return blob_read_error(str(error))
    return XetKernelError(f"hashing worker failed: {error}")


def _closed_error() -> XetKernelError:
    return XetKernelError(
        "the worker pool was closed (xet.close()): load a new instance with loadXet()"
    )


class _Failure:
    """A stream message saying the stream failed (for :meth:`WorkerPool.close`)."""

    chunk = None
    done = False

    def __init__(self, error: str) -> None:
        self.error = error


async def _merge_candidates(futures: list[asyncio.Future[Any]]) -> list[int]:
    """Candidates of consecutive slices of one block, in order.

    The workers already report offsets from the block start (``base`` of the ``gear`` and
    ``readscan`` messages), so the slices' ``Uint32Array`` bytes are only appended here and
    turned into Python ints once, with no per-candidate arithmetic on this thread."""
    found = array("I")
    for result in await asyncio.gather(*futures):
        found.frombytes(result.cands.to_bytes())
    return found.tolist()


async def start_pool(
    worker_url: str, size: int | None = None, *, byob_stall_ms: int | None = None
) -> WorkerPool | None:
    """Start ``size`` kernel workers (default :func:`default_pool_size`).

    Returns ``None`` for ``size == 0``, and — with a console warning — when the page is not
    cross-origin isolated. Raises :class:`~xet_pyodide.errors.XetKernelError` if a worker
    fails to start. ``byob_stall_ms``: after how long the workers give up a Blob stream read
    that makes no progress and read slices instead (default: the worker's 10 s; tests set it
    tiny to exercise that path).
    """
    if size is None:
        size = default_pool_size()
    if size <= 0:
        return None
    if not isolation_available():
        js.console.warn(NOT_ISOLATED_WARNING)
        return None
    module = await compiled_module()  # the page's own, when its kernels are loaded already
    slot_size = Slot.size(SLOT_BYTES)
    slots = [Slot(i * slot_size, SLOT_BYTES) for i in range(SLOTS)]
    sab = js.SharedArrayBuffer.new(SLOTS * slot_size)
    options = {"byobStallMs": byob_stall_ms} if byob_stall_ms is not None else None
    workers = await _start_workers(worker_url, module, sab, size, options)
    return WorkerPool(
        workers, sab, slots, module=module, worker_url=worker_url, worker_options=options
    )


async def _start_workers(
    worker_url: str, module: Any, sab: Any, size: int, options: dict[str, Any] | None = None
) -> list[Any]:
    """``size`` kernel workers, initialised (with ``options`` in their init message) and
    warmed up (their ``onmessage`` is the caller's to set)."""
    worker_options = to_js_value({"type": "module", "name": "xet-kernels"})
    workers = [js.Worker.new(worker_url, worker_options) for _ in range(size)]
    ready = [asyncio.get_running_loop().create_future() for _ in workers]
    proxies = []
    for worker, future in zip(workers, ready, strict=True):
        proxy = create_proxy(_ready_handler(future))
        proxies.append(proxy)
        worker.onmessage = proxy
        worker.onerror = proxy
        init = {"op": "init", "module": module, "sab": sab, **(options or {})}
        worker.postMessage(to_js_value(init))
    try:
        await asyncio.wait_for(asyncio.gather(*ready), READY_TIMEOUT)
    except BaseException:
        for worker in workers:
            worker.terminate()
        raise
    finally:
        for worker in workers:
            worker.onerror = None
        for proxy in proxies:
            proxy.destroy()
    return workers


def _ready_handler(future: asyncio.Future[Any]) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        if future.done():
            return
        data = getattr(event, "data", None)
        if data is not None and getattr(data, "op", None) == "ready":
            future.set_result(float(data.warmMs))
            return
        message = getattr(data, "error", None) or getattr(event, "message", None) or "error"
        future.set_exception(XetKernelError(f"hashing worker failed to start: {message}"))

    return on_event


__all__ = [
    "NOT_ISOLATED_WARNING",
    "SLOT_BYTES",
    "Slot",
    "WorkerPool",
    "default_pool_size",
    "isolation_available",
    "retrieve_exception",
    "start_pool",
]
