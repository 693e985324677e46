"""CPython transport over ``httpx.AsyncClient`` (HTTP/1.1, connection pooling).

The client runs on a private event loop in a background thread, shared by all transports of
the process. Callers await from their own loop; meanwhile the bytes keep flowing even while
their loop is busy with CPU work (chunking, hashing and compressing release the GIL inside the
kernels and hashlib). In a browser the network stack gives us that overlap for free; under
CPython this thread does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx

from .transport import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    BaseTransport,
    Buffer,
    Request,
    Response,
    StreamingResponse,
    TransportError,
    lower_headers,
    request_id_of,
)

T = TypeVar("T")

#: Slice size when streaming a non-``bytes`` body (avoids copying big xorbs into ``bytes``).
_BODY_SLICE = 1 << 20


class _IoLoop:
    """The process-wide background event loop (daemon thread, started on first use)."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="xet_pyodide-http", daemon=True
                )
                thread.start()
                cls._loop = loop
            return cls._loop


async def _on_io_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the I/O loop; cancelling the caller cancels it there too."""
    future = asyncio.run_coroutine_threadsafe(coro, _IoLoop.get())
    return await asyncio.wrap_future(future)


def _body(body: Buffer | None) -> bytes | AsyncIterator[bytes] | None:
    """httpx takes ``bytes`` as is; other buffers are streamed as slices of a memoryview (the
    caller sets ``Content-Length``, so no chunked encoding is used)."""
    if body is None or isinstance(body, bytes):
        return body
    view = memoryview(body).cast("B")

    async def slices() -> AsyncIterator[bytes]:
        for start in range(0, len(view), _BODY_SLICE):
            yield view[start : start + _BODY_SLICE]  # type: ignore[misc]

    return slices()


def _error(exc: httpx.HTTPError, url: str, resp: httpx.Response | None = None) -> TransportError:
    """``exc`` as a :class:`TransportError`; ``resp``: the response whose body broke off."""
    rid = request_id_of(_headers(resp)) if resp is not None else None
    return TransportError(f"{type(exc).__name__}: {exc}", url=url, request_id=rid,
                          unreachable=isinstance(exc, httpx.ConnectError))


class HttpxTransport(BaseTransport):
    """:class:`~xet_pyodide.io.transport.Transport` backed by an ``httpx.AsyncClient`` living
    on the background I/O loop (see module docstring)."""

    browser = False

    def __init__(
        self,
        *,
        max_connections: int = 64,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        # Only called on the I/O loop: the client is bound to the loop that uses it.
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=self._limits, timeout=self._timeout, follow_redirects=True, trust_env=False
            )
        return self._client

    def _build(self, req: Request) -> httpx.Request:
        extensions = {}
        if req.timeout is not None:
            extensions["timeout"] = httpx.Timeout(req.timeout).as_dict()
        all_headers = dict(req.headers or {})
        body = req.body
        if body is not None and not isinstance(body, bytes):
            all_headers["Content-Length"] = str(memoryview(body).nbytes)
        return self._get_client().build_request(
            req.method, req.url, headers=all_headers, content=_body(body), extensions=extensions
        )

    async def _send(self, req: Request, *, stream: bool) -> httpx.Response:
        # Only called on the I/O loop (see _get_client).
        request = self._build(req)
        try:
            return await self._get_client().send(request, stream=stream)
        except httpx.HTTPError as exc:  # transport errors, timeouts, broken bodies
            raise _error(exc, req.url) from exc

    async def _request(self, req: Request) -> Response:
        async def run() -> Response:
            # streamed, then read: a body that breaks off still names the request (its id)
            resp = await self._send(req, stream=True)
            try:
                content = await resp.aread()
            except httpx.HTTPError as exc:
                raise _error(exc, req.url, resp) from exc
            finally:
                await resp.aclose()
            return Response(resp.status_code, _headers(resp), content, str(resp.url))

        return await _on_io_loop(run())

    async def _stream(self, req: Request) -> StreamingResponse:
        resp = await _on_io_loop(self._send(req, stream=True))
        blocks = resp.aiter_bytes()

        async def next_block() -> bytes | None:
            try:
                return await blocks.__anext__()
            except StopAsyncIteration:
                return None
            except httpx.HTTPError as exc:
                raise _error(exc, req.url, resp) from exc

        async def chunks() -> AsyncIterator[bytes]:
            while (block := await _on_io_loop(next_block())) is not None:
                if block:
                    yield block

        async def close() -> None:
            await _on_io_loop(resp.aclose())

        return StreamingResponse(resp.status_code, _headers(resp), str(resp.url), chunks(), close)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _on_io_loop(client.aclose())


def _headers(resp: httpx.Response) -> dict[str, str]:
    return lower_headers(resp.headers.items())


__all__ = ["HttpxTransport"]
