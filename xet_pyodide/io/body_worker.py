"""Upload bodies held and sent by a worker of their own (Pyodide in a browser page).

Why: a request body in a page is freed only when a garbage collection collects the request
(or the ``Blob``) that references it, and nothing in an upload triggers one. As ``Blob``s the
xorbs piled up in the browser process until Chromium's in-memory Blob cap (a fresh or
Incognito profile cannot spill to disk) failed the upload with ``ERR_BLOB_OUT_OF_MEMORY``; as
``Uint8Array`` bodies, ``fetch``'s copies piled up in the page instead (measured in
docs/browser.md, "Upload request bodies"). A worker's memory, though, is returned when the
worker is terminated, collection or not.

So each detached body gets a dedicated worker (``op: "hold"`` of ``web/xet_worker.mjs``):
the bytes are copied once out of the wasm heap into the staging ``ArrayBuffer``, transferred
to the worker (no copy), which makes them a ``Blob``, waits until the Blob is complete in the
browser process (the renderer keeps a copy of a new Blob's bytes until then) and transfers
the buffer back for the next body. Bodies are handed over one at a time, so the page holds
at most the staging buffer plus one Blob in transit (2 × 64 MiB) whatever the number of
uploads in flight. Every attempt of the upload is a ``fetch`` in that worker (``op: "send"``), and
:meth:`WorkerBody.release` — called when the xorb's upload ended, however it ended —
terminates the worker, which frees the Blob at once. The Blob data Chromium holds for our
uploads is then at most the bodies in flight, and at most :data:`MAX_HELD_BODIES` bodies are
held at once in the page, whatever ``maxConcurrentUploads`` says: at most 4 × 64 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from .transport import (
    Request,
    Response,
    StreamingResponse,
    TransportError,
    fetch_headers,
    lower_headers,
)

MIB = 1 << 20
#: Capacity of a staging buffer (a xorb body is at most 64 MiB; larger bodies get their own).
STAGING_BYTES = 64 * MIB

_worker_url: str | None = None
_spare: list[Any] = []  # at most one staging ArrayBuffer, reused
_idle: list[Any] = []  # one worker started ahead (it loads while the previous body uploads)
_ids = itertools.count(1)
#: Bodies held by workers at once, in this page (each at most a 64 MiB xorb): the bound on
#: the Blob data our uploads make Chromium hold (docs/browser.md, "Upload request bodies").
MAX_HELD_BODIES = 4
_handover: asyncio.Lock | None = None  # one body copied and made a Blob at a time
_held_slots: asyncio.Semaphore | None = None


def _handover_lock() -> asyncio.Lock:
    global _handover
    if _handover is None:
        _handover = asyncio.Lock()
    return _handover


def _slots() -> asyncio.Semaphore:
    global _held_slots
    if _held_slots is None:
        _held_slots = asyncio.Semaphore(MAX_HELD_BODIES)
    return _held_slots


def set_body_worker_url(url: str | None) -> None:
    """Enable worker-held upload bodies, started from ``url`` (``web/xet_worker.mjs``);
    ``None`` disables them (bodies are then page ``Blob``s)."""
    global _worker_url
    _worker_url = url
    while _idle:  # started from the previous URL
        _idle.pop().terminate()


def body_workers_enabled() -> bool:
    if _worker_url is None:
        return False
    import js  # type: ignore[import-not-found]

    return hasattr(js, "Worker")


def _spawn() -> Any:
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    options = to_js({"type": "module"}, dict_converter=js.Object.fromEntries)
    return js.Worker.new(_worker_url, options)


def _take_worker() -> Any:
    """A started worker for the next body (the one started ahead, if any), and start the next
    one ahead: a module worker takes ~50 ms to load here, which the handover would wait for."""
    worker = _idle.pop() if _idle else _spawn()
    _idle.append(_spawn())
    return worker


def _take_staging(n: int) -> Any:
    import js  # type: ignore[import-not-found]

    if _spare and _spare[-1].byteLength >= n:
        return _spare.pop()
    return js.ArrayBuffer.new(max(n, STAGING_BYTES))


def _give_back(buffer: Any) -> None:
    if not _spare and buffer.byteLength == STAGING_BYTES:
        _spare.append(buffer)


class WorkerBody:
    """The ``handle`` of a :class:`~xet_pyodide.io.transport.DetachedBody` whose bytes a
    dedicated worker holds (see module docstring)."""

    def __init__(self, size: int) -> None:
        from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

        assert _worker_url is not None
        self.size = size
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._failure: str | None = None
        self._worker: Any = _take_worker()
        self._on_message = create_proxy(self._message)
        self._on_error = create_proxy(self._error)
        self._worker.addEventListener("message", self._on_message)
        self._worker.addEventListener("error", self._on_error)

    @classmethod
    async def create(cls, data: memoryview) -> WorkerBody:
        """A worker holding a copy of ``data`` (which may be freed once this returned)."""
        import js  # type: ignore[import-not-found]

        slots = _slots()
        await slots.acquire()  # given back by release()
        try:
            body = cls(len(data))
        except BaseException:
            slots.release()
            raise
        try:
            async with _handover_lock():
                buffer = _take_staging(len(data))
                js.Uint8Array.new(buffer, 0, len(data)).assign(data)
                body._post({"op": "hold", "buffer": buffer, "length": len(data)}, buffer)
                await body._held
        except BaseException:
            body.release()
            raise
        return body

    def _post(self, message: dict[str, Any], transfer: Any = None) -> None:
        import js  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        msg = to_js(message, dict_converter=js.Object.fromEntries)
        if transfer is None:
            self._worker.postMessage(msg)
        else:
            self._worker.postMessage(msg, js.Array.of(transfer))

    def _message(self, event: Any) -> None:
        data = event.data
        op = getattr(data, "op", None)
        if op == "held":
            _give_back(data.buffer)
            if not self._held.done():
                self._held.set_result(None)
        elif op == "sent":
            future = self._pending.pop(int(data.id), None)
            if future is not None and not future.done():
                future.set_result(data)
        elif getattr(data, "error", None) is not None and not self._held.done():
            # "hold" failed (the browser refused the Blob): no copy to send
            self._held.set_exception(TransportError(f"fetch failed: {data.error}"))

    def _error(self, event: Any) -> None:
        """The worker failed (e.g. its script could not be loaded): fail every attempt."""
        self._failure = str(getattr(event, "message", None) or "the upload worker failed")
        if not self._held.done():
            self._held.set_exception(TransportError(f"fetch failed: {self._failure}"))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TransportError(f"fetch failed: {self._failure}"))
        self._pending.clear()

    async def send(self, req: Request, limit: float) -> Response:
        """One attempt: ``req`` (whose body is this one) sent by the worker."""
        if self._worker is None:
            raise TransportError("fetch failed: the upload body was already released",
                                 url=req.url)
        if self._failure is not None:
            raise TransportError(f"fetch failed: {self._failure}", url=req.url)
        rid = next(_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._post({"op": "send", "id": rid, "url": req.url, "method": req.method,
                    "headers": fetch_headers(req.headers)})
        try:
            data = await asyncio.wait_for(future, limit)
        except BaseException as exc:
            self._pending.pop(rid, None)
            if self._worker is not None:
                with contextlib.suppress(Exception):
                    self._post({"op": "cancelsend", "id": rid})
            if isinstance(exc, TimeoutError):
                raise TransportError(f"no response within {limit:.0f} s", url=req.url) from exc
            if isinstance(exc, TransportError):
                raise TransportError(exc.detail, url=req.url) from exc
            raise
        if getattr(data, "error", None) is not None:
            # the worker's fetch() rejected: as for the page's own fetch, no answer came (the
            # server could not be reached, or the browser refused to send the request)
            raise TransportError(f"fetch failed: {data.error}", url=req.url, unreachable=True)
        headers = lower_headers((pair[0], pair[1]) for pair in data.headers)
        body = data.body.to_bytes() if data.body is not None else b""
        return Response(int(data.status), headers, body, str(data.url or "") or req.url)

    async def send_streaming(self, req: Request, limit: float) -> StreamingResponse:
        resp = await self.send(req, limit)

        async def chunks() -> Any:
            if resp.body:
                yield resp.body

        async def close() -> None:
            return None

        return StreamingResponse(resp.status, resp.headers, resp.url, chunks(), close)

    def release(self) -> None:
        """Terminate the worker (freeing the Blob it holds). Idempotent."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        _slots().release()
        with contextlib.suppress(Exception):
            worker.removeEventListener("message", self._on_message)
            worker.removeEventListener("error", self._on_error)
            worker.terminate()
        released = TransportError("fetch failed: upload body released")
        if not self._held.done():
            self._held.set_exception(released)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(released)
        self._pending.clear()
        self._on_message.destroy()
        self._on_error.destroy()


__all__ = [
    "MAX_HELD_BODIES",
    "STAGING_BYTES",
    "WorkerBody",
    "body_workers_enabled",
    "set_body_worker_url",
]
