"""Pyodide transport over the browser's ``fetch`` (``pyodide.http.pyfetch``).

Works the same in Chromium and in Node (whose global ``fetch`` is undici). Request bodies
are copied once out of the WebAssembly heap and sent whole (Chromium streams request bodies
only over HTTP/2 or QUIC; to a plain-HTTP server it fails: ``ERR_ALPN_NEGOTIATION_FAILED``).
Large detached bodies (xorbs) are held and sent by a worker of their own in a page that
enabled it (:mod:`.body_worker`, so their memory is freed when the upload ends), else they are
a ``Blob`` (see :func:`_js_body`).
Response bodies are read either whole (``arrayBuffer``) or block by block through
``response.body.getReader()``.

``User-Agent`` is dropped: browsers own that header (Chromium silently ignores it) and
sending it from Node would only differ from what the page can do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pyodide.http import pyfetch  # type: ignore[import-not-found]

from .blob import blob_from_memory
from .body_worker import WorkerBody, body_workers_enabled
from .jsinterop import js_uint8array_copy
from .transport import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    BaseTransport,
    Body,
    Buffer,
    DetachedBody,
    Request,
    Response,
    StreamingResponse,
    TransportError,
    fetch_headers,
    lower_headers,
    request_id_of,
)

T = TypeVar("T")

#: Request bodies of at least this size are sent as a ``Blob``.
BLOB_BODY = 1 << 20


def _js_body(body: Body) -> Any:
    """``body`` for ``fetch``, copied once out of the WebAssembly heap.

    Large bodies (xorbs, up to 64 MiB) become a ``Blob``, whose bytes the browser keeps out
    of the page. A ``Uint8Array`` body is copied by ``fetch`` into a buffer the page frees
    only when a garbage collection collects the finished request, and the collector does not
    see that memory: measured in Chromium, the page grew by every xorb sent (up to 1 GiB for a
    1 GiB upload) until some unrelated allocation triggered a collection. A Blob's bytes are
    also released only when its (tiny) JS object is collected, but in the browser process,
    where Chromium caps them (a fresh profile fails at ~0.5 GiB): hence
    :class:`~.body_worker.WorkerBody` in pages (docs/browser.md, "Upload request bodies")."""
    if isinstance(body, DetachedBody):
        return body.handle
    view = memoryview(body).cast("B")
    if len(view) >= BLOB_BODY:
        return blob_from_memory(view)
    return js_uint8array_copy(view)


def response_limit(req: Request, read_timeout: float) -> float:
    """Seconds to wait for the response head of ``req``."""
    return req.timeout if req.timeout is not None else read_timeout + CONNECT_TIMEOUT


class PyfetchTransport(BaseTransport):
    """:class:`~xet_pyodide.io.transport.Transport` backed by ``fetch``."""

    browser = True

    def __init__(self, *, read_timeout: float = READ_TIMEOUT) -> None:
        self._read_timeout = read_timeout

    async def detach(self, body: Buffer) -> DetachedBody | None:
        """Large bodies held by a worker of their own when the page enabled it (see
        :mod:`.body_worker`), else as a ``Blob`` (see :func:`_js_body`); made once for every
        attempt. The caller calls ``release()`` on it when the upload ended."""
        if len(body) < BLOB_BODY:
            return None
        if body_workers_enabled():
            return DetachedBody(await WorkerBody.create(memoryview(body).cast("B")), len(body))
        return DetachedBody(blob_from_memory(body), len(body))

    async def _fetch(self, req: Request) -> Any:
        url = req.url
        init: dict[str, Any] = {"method": req.method, "headers": fetch_headers(req.headers)}
        limit = response_limit(req, self._read_timeout)
        try:
            if req.body is not None:
                init["body"] = _js_body(req.body)
            return await asyncio.wait_for(pyfetch(url, **init), limit)
        except TimeoutError as exc:
            raise TransportError(f"no response within {limit:.0f} s", url=url) from exc
        except OSError as exc:  # pyodide.http.AbortError: "fetch failed", reset, refused, ...
            raise TransportError(f"fetch failed: {exc}", url=url, unreachable=True) from exc

    async def _request(self, req: Request) -> Response:
        worker = _worker_body(req)
        if worker is not None:
            return await worker.send(req, response_limit(req, self._read_timeout))
        resp = await self._fetch(req)
        headers = _headers(resp)
        data = await _read_body(
            resp.bytes(),
            req.url,
            self._read_timeout,
            Exception,  # AbortError (an OSError), or what Pyodide raises instead (below)
            lambda: resp.abort("read timeout"),
            request_id=request_id_of(headers),
        )
        return Response(resp.status, headers, data, resp.url or req.url)

    async def _stream(self, req: Request) -> StreamingResponse:
        worker = _worker_body(req)
        if worker is not None:
            return await worker.send_streaming(req, response_limit(req, self._read_timeout))
        url = req.url
        resp = await self._fetch(req)
        headers = _headers(resp)
        rid = request_id_of(headers)
        js_body = resp.js_response.body
        reader = js_body.getReader() if js_body is not None else None
        read_timeout = self._read_timeout

        async def chunks() -> AsyncIterator[bytes]:
            if reader is None:
                return
            while True:
                # Any JsException from the stream (connection dropped) is a failed body.
                part = await _read_body(reader.read(), url, read_timeout, Exception, request_id=rid)
                if part.done:
                    return
                value = part.value
                if value is not None and value.byteLength:
                    yield value.to_bytes()

        async def close() -> None:
            if reader is not None:
                # Already finished or errored streams have nothing left to release.
                with contextlib.suppress(Exception):
                    await reader.cancel()

        return StreamingResponse(resp.status, headers, resp.url or url, chunks(), close)

    async def aclose(self) -> None:
        """Nothing to release: the browser owns connections."""


async def _read_body(
    step: Awaitable[T],
    url: str,
    timeout: float,
    failures: type[Exception],
    on_timeout: Callable[[], object] | None = None,
    *,
    request_id: str | None = None,
) -> T:
    """Await one read of a response body; a timeout or one of ``failures`` (after calling
    ``on_timeout`` for a timeout) becomes a :class:`TransportError` (with the response's
    ``request_id``)."""
    try:
        return await asyncio.wait_for(step, timeout)
    except TimeoutError as exc:
        if on_timeout is not None:
            on_timeout()
        raise TransportError("response body timed out", url=url, request_id=request_id) from exc
    except failures as exc:
        # Pyodide (314.0)'s pyfetch turns a body that broke off into AbortError(signal.reason),
        # which fails with AttributeError when the signal has no reason: the browser's error
        # is then the context.
        cause = exc.__context__ if isinstance(exc, AttributeError) and exc.__context__ else exc
        raise TransportError(
            f"response body failed: {cause}", url=url, request_id=request_id
        ) from exc


def _worker_body(req: Request) -> WorkerBody | None:
    body = req.body
    if isinstance(body, DetachedBody) and isinstance(body.handle, WorkerBody):
        return body.handle
    return None


def _headers(resp: Any) -> dict[str, str]:
    return lower_headers(resp.headers.items())


__all__ = ["PyfetchTransport", "response_limit"]
