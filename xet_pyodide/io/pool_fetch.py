"""Streamed xorb downloads read by the worker pool's workers (Pyodide on a browser page).

Measured in Chromium (bench/download.py, ``chromium.cpu_seconds``): reading a response body
through ``fetch`` costs the reading thread ~0.4 s of CPU per 300 MB, and during a download the
page's thread is the bottleneck (decoding, hashing and Python run there too).
:class:`WorkerStreamTransport` moves that reading to a worker (``op: "fetch"`` of
``web/xet_worker.mjs``): the worker runs ``fetch``, reads the body (BYOB, into 1 MiB buffers
where the stream allows it) and posts every block to the page, transferred (not copied); the
page only turns blocks into ``bytes``. A worker sends at most 8 MiB ahead of what the page
has consumed (acknowledged every ``ACK_BYTES``), so memory stays bounded; the
acknowledgements carry the consumed blocks' buffers back, transferred, for the worker's next
reads (no fresh allocation per block: see docs/browser.md, "Downloads: where the CPU goes").

Only streamed bodiless requests (xorb range GETs) go to the workers; everything else goes to
the page's own transport. Failures look like the page transport's: a network error is a
:class:`~xet_pyodide.io.transport.TransportError`, before or during the body.

Decoded in the worker (``downloadToBlob`` only): while :data:`WORKER_DECODE` holds a
:class:`WorkerDecode` (set by the download fetcher around one xorb range GET), a successful
body is not sent to the page at all: the worker decodes and hashes its chunk records with
the kernels (the same ``xk_decode_records`` checks as the page's ``RecordDecoder``) and makes
the decoded bytes into Blobs itself. The body's blocks are then :class:`BodyBytes` (counts,
no data), and the result — the Blobs of the decoded chunks, their sizes and digests — lands in
``WorkerDecode.result``; a body that does not decode raises
:class:`~xet_pyodide.errors.XetFormatError` (the fetcher fetches it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from ..errors import XetFormatError
from ._pyfetch import response_limit
from .jsinterop import js_array, post_message
from .transport import (
    READ_TIMEOUT,
    BaseTransport,
    Request,
    Response,
    StreamingResponse,
    Transport,
    TransportError,
    fetch_headers,
    lower_headers,
    request_id_of,
)
from .worker_decode import WORKER_DECODE, BodyBytes, WorkerDecode

_END = object()
#: The page acknowledges consumed body bytes to the worker once at least this many are
#: pending (and at the end), not per block: each ``postMessage`` cost the page ~0.3 ms
#: (measured: ~0.14 s per 512 MiB downloaded with one per block). Must stay well below the
#: worker's 8 MiB window (``STREAM_WINDOW`` of ``web/xet_worker.mjs``) or reading stalls.
ACK_BYTES = 2 << 20
#: Stream ids, unique in this interpreter (several sessions may share one pool).
_STREAM_IDS = itertools.count(1)


class _Decoded:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class WorkerStream:
    """One body being read by a worker: its head (status, headers) and its blocks."""

    def __init__(self, worker: Any, sid: int) -> None:
        self.worker = worker
        self.sid = sid
        self.head: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.blocks: asyncio.Queue[Any] = asyncio.Queue()
        self.finished = False

    def deliver(self, data: Any) -> None:
        """A message of the worker about this stream (called from the pool's handler)."""
        if getattr(data, "chunk", None) is not None:
            self.blocks.put_nowait(data.chunk)
        elif getattr(data, "got", None) is not None:  # (decoding in the worker)
            self.blocks.put_nowait(BodyBytes(int(data.got)))
        elif getattr(data, "decoded", None) is not None:
            self.blocks.put_nowait(_Decoded(data.decoded))
        elif getattr(data, "bad", None) is not None:
            self.blocks.put_nowait(XetFormatError(str(data.bad)))
        elif getattr(data, "done", False):
            self.blocks.put_nowait(_END)
        elif getattr(data, "error", None) is not None:
            error = TransportError(f"fetch failed: {data.error}")
            if not self.head.done():
                self.head.set_exception(error)
            else:
                self.blocks.put_nowait(error)
        elif not self.head.done():
            self.head.set_result(data)

    def ack(self, n: int, buffers: Any = None) -> None:
        """Tell the worker ``n`` more bytes were consumed, handing back ``buffers`` (a JS
        array of the consumed blocks' ``ArrayBuffer`` s, transferred) for its next reads."""
        message = {"op": "ack", "sid": self.sid, "bytes": n}
        if buffers is None or not buffers.length:
            post_message(self.worker, message)
        else:
            post_message(self.worker, {**message, "buffers": buffers}, buffers)

    def abort(self) -> None:
        post_message(self.worker, {"op": "abort", "sid": self.sid})


class WorkerStreamTransport(BaseTransport):
    """A transport whose streamed bodiless requests run in ``pool``'s workers (see module
    docstring); the rest goes to ``fallback`` (the session's transport)."""

    browser = True

    def __init__(
        self, pool: Any, fallback: Transport, *, read_timeout: float = READ_TIMEOUT
    ) -> None:
        self._pool = pool
        self._fallback = fallback
        self._read_timeout = read_timeout

    async def _request(self, req: Request) -> Response:
        return await self._fallback.request(
            req.method, req.url, headers=req.headers, body=req.body, timeout=req.timeout
        )

    async def _stream(self, req: Request) -> StreamingResponse:
        if req.body is not None:
            return await self._fallback.stream(
                req.method, req.url, headers=req.headers, body=req.body, timeout=req.timeout
            )
        sid = next(_STREAM_IDS)
        workers = self._pool.workers
        stream = WorkerStream(workers[sid % len(workers)], sid)
        self._pool.streams[sid] = stream
        headers = fetch_headers(req.headers)
        message: dict[str, Any] = {
            "op": "fetch", "sid": sid, "url": req.url, "method": req.method, "headers": headers
        }  # fmt: skip
        decode = WORKER_DECODE.get()
        if decode is not None:
            decode.result = None
            message["decode"] = {
                "chunks": decode.chunks,
                "hint": decode.hint,
                "hash": decode.hash,
                "length": decode.length,
            }
        post_message(stream.worker, message)
        limit = response_limit(req, self._read_timeout)
        try:
            head = await asyncio.wait_for(stream.head, limit)
        except BaseException as exc:
            self._close(stream)
            if isinstance(exc, TimeoutError):
                raise TransportError(f"no response within {limit:.0f} s", url=req.url) from exc
            if isinstance(exc, TransportError):
                raise TransportError(exc.detail, url=req.url) from exc
            raise
        status = int(head.status)
        resp_headers = lower_headers((pair[0], pair[1]) for pair in head.headers)
        url = str(head.url) if head.url else req.url
        blocks = self._blocks(stream, req.url, request_id_of(resp_headers), decode)
        return StreamingResponse(status, resp_headers, url, blocks, lambda: self._aclose(stream))

    async def _blocks(
        self, stream: WorkerStream, url: str, rid: str | None, decode: WorkerDecode | None
    ) -> AsyncIterator[Any]:
        """The body's blocks: ``bytes``, or :class:`BodyBytes` counts when the worker decodes
        it (see module docstring)."""
        unacked = 0  # consumed bytes not yet acknowledged (see ACK_BYTES)
        consumed = js_array()  # their buffers, returned to the worker with the ack
        while True:
            try:
                # A block already queued needs no timer (wait_for arms one per call: a JS
                # setTimeout under Pyodide).
                item = stream.blocks.get_nowait()
            except asyncio.QueueEmpty:
                item = None
            try:
                if item is None:
                    item = await asyncio.wait_for(stream.blocks.get(), self._read_timeout)
            except TimeoutError as exc:
                raise TransportError("response body timed out", url=url, request_id=rid) from exc
            if item is _END:
                stream.finished = True
                if consumed.length:  # (the worker recycles them for its next body)
                    stream.ack(unacked, consumed)
                return
            if isinstance(item, TransportError):
                stream.finished = True
                raise TransportError(
                    f"response body failed: {item.detail}", url=url, request_id=rid
                )
            if isinstance(item, BodyBytes):
                yield item
                continue
            if isinstance(item, _Decoded):
                stream.finished = True
                if decode is not None:
                    decode.result = item.value
                return
            if isinstance(item, XetFormatError):
                stream.finished = True  # (the worker stopped reading)
                raise item
            # (Not detached with ``ArrayBuffer.transfer(0)`` after the copy: measured, that
            # raised the renderer's peak streaming 2 GiB into a Blob from ~0.67 to
            # 1.0-1.15 GiB, as V8 then sees less external memory and collects the page's other
            # garbage later.)
            data = item.to_bytes()
            consumed.push(item.buffer)
            unacked += len(data)
            if unacked >= ACK_BYTES:
                stream.ack(unacked, consumed)
                unacked = 0
                consumed = js_array()
            yield data

    async def _aclose(self, stream: WorkerStream) -> None:
        self._close(stream)

    def _close(self, stream: WorkerStream) -> None:
        if self._pool.streams.pop(stream.sid, None) is not None and not stream.finished:
            with contextlib.suppress(Exception):
                stream.abort()

    async def aclose(self) -> None:
        """Nothing to release: the session closes its own transport."""


def worker_stream_transport(pool: Any, fallback: Transport) -> WorkerStreamTransport | None:
    """A :class:`WorkerStreamTransport` over ``pool`` when it can stream (a
    :class:`~xet_pyodide.io.workers.WorkerPool` with at least one worker), else None."""
    if pool is None or not hasattr(pool, "streams") or not getattr(pool, "workers", None):
        return None
    return WorkerStreamTransport(pool, fallback)


__all__ = [
    "ACK_BYTES",
    "WorkerStream",
    "WorkerStreamTransport",
    "worker_stream_transport",
]
