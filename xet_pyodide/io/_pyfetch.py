"""Pyodide transport over the browser's ``fetch`` (``pyodide.http.pyfetch``).

Works the same in Chromium and in Node (whose global ``fetch`` is undici). Request bodies
are copied once into a JS ``Uint8Array`` and sent whole (browsers refuse streamed request
bodies over HTTP/1.1). Response bodies are read either whole (``arrayBuffer``) or block by
block through ``response.body.getReader()``.

``User-Agent`` is dropped: browsers own that header (Chromium silently ignores it) and
sending it from Node would only differ from what the page can do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from .transport import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    Buffer,
    Response,
    StreamingResponse,
    TransportError,
)

_FORBIDDEN = frozenset({"user-agent", "content-length", "host", "connection", "accept-encoding"})


def _js_body(body: Buffer | None) -> Any:
    if body is None:
        return None
    view = memoryview(body).cast("B")
    array = js.Uint8Array.new(len(view))
    array.assign(view)
    return array


def _clean_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in _FORBIDDEN}


class PyfetchTransport:
    """:class:`~xet_pyodide.io.transport.Transport` backed by ``fetch``."""

    browser = True

    def __init__(self, *, read_timeout: float = READ_TIMEOUT) -> None:
        self._read_timeout = read_timeout

    async def _fetch(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: Buffer | None,
        timeout: float | None,
    ) -> Any:
        kwargs: dict[str, Any] = {"method": method, "headers": _clean_headers(headers)}
        js_body = _js_body(body)
        if js_body is not None:
            kwargs["body"] = js_body
        limit = timeout if timeout is not None else self._read_timeout + CONNECT_TIMEOUT
        try:
            return await asyncio.wait_for(pyfetch(url, **kwargs), limit)
        except TimeoutError as exc:
            raise TransportError(f"no response within {limit:.0f} s", url=url) from exc
        except OSError as exc:  # pyodide.http.AbortError: "fetch failed", reset, refused, ...
            raise TransportError(f"fetch failed: {exc}", url=url) from exc

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Buffer | None = None,
        timeout: float | None = None,
    ) -> Response:
        resp = await self._fetch(method, url, headers, body, timeout)
        try:
            data = await asyncio.wait_for(resp.bytes(), self._read_timeout)
        except TimeoutError as exc:
            resp.abort("read timeout")
            raise TransportError("response body timed out", url=url) from exc
        except OSError as exc:
            raise TransportError(f"response body failed: {exc}", url=url) from exc
        return Response(resp.status, _headers(resp), data, resp.url or url)

    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Buffer | None = None,
        timeout: float | None = None,
    ) -> StreamingResponse:
        resp = await self._fetch(method, url, headers, body, timeout)
        js_body = resp.js_response.body
        reader = js_body.getReader() if js_body is not None else None
        read_timeout = self._read_timeout

        async def chunks() -> AsyncIterator[bytes]:
            if reader is None:
                return
            while True:
                try:
                    part = await asyncio.wait_for(reader.read(), read_timeout)
                except TimeoutError as exc:
                    raise TransportError("response body timed out", url=url) from exc
                except Exception as exc:  # JsException from the stream: connection dropped
                    raise TransportError(f"response body failed: {exc}", url=url) from exc
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

        return StreamingResponse(resp.status, _headers(resp), resp.url or url, chunks(), close)

    async def aclose(self) -> None:
        """Nothing to release: the browser owns connections."""


def _headers(resp: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in resp.headers.items()}


__all__ = ["PyfetchTransport"]
