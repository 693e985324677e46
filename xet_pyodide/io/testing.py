"""An in-memory :class:`~xet_pyodide.io.transport.Transport` for unit tests.

``MockTransport(handler)`` calls ``handler(request)`` — sync or async — for every request and
returns what it gives: a :class:`~xet_pyodide.io.transport.Response`, or raise
:class:`~xet_pyodide.io.transport.TransportError` to simulate a dropped connection. Every
request is recorded in :attr:`MockTransport.requests`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .transport import BaseTransport, Request, Response, StreamingResponse


@dataclass(slots=True)
class MockRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float | None = None

    @property
    def path(self) -> str:
        rest = self.url.split("://", 1)[-1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class MockTransport(BaseTransport):
    handler: Callable[[MockRequest], Any]
    browser: bool = False
    #: Body block size of streamed responses.
    stream_block: int = 7
    requests: list[MockRequest] = field(default_factory=list)

    async def _request(self, req: Request) -> Response:
        body = req.body
        request = MockRequest(
            req.method,
            req.url,
            dict(req.headers or {}),
            None if body is None else bytes(body),
            req.timeout,
        )
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError("a MockTransport handler must return a Response")
        result.headers = {k.lower(): v for k, v in result.headers.items()}
        if not result.url:
            result.url = req.url
        return result

    async def _stream(self, req: Request) -> StreamingResponse:
        resp = await self._request(req)
        block = self.stream_block

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(resp.body), block):
                yield resp.body[start : start + block]

        return StreamingResponse(resp.status, resp.headers, resp.url, chunks())


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    import json

    all_headers = {"content-type": "application/json", **(headers or {})}
    return Response(status, all_headers, json.dumps(payload).encode())


__all__ = ["MockRequest", "MockTransport", "json_response"]
