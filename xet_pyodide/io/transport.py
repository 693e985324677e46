"""The HTTP transport interface: one small protocol, two implementations, injectable in tests.

A :class:`Transport` sends one request whose body is a bytes-like object and returns either
the whole response (:meth:`Transport.request`) or a response whose body is read as an async
iterator of byte blocks (:meth:`Transport.stream`; NDJSON shard progress, downloads).

Transports know nothing about Xet: no retries, no tokens, no status interpretation. They
raise :class:`TransportError` when no HTTP response could be obtained or its body could not be
read completely (refused or dropped connection, timeout); everything with a status line is
returned as a response, 5xx included.

Implementations: :class:`~xet_pyodide.io._httpx.HttpxTransport` (CPython) and
:class:`~xet_pyodide.io._pyfetch.PyfetchTransport` (Pyodide, browser fetch), both built on
:class:`BaseTransport`. Use :func:`~xet_pyodide.io.runtime.default_transport` to get the right
one for the running interpreter.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack, runtime_checkable

from ..errors import redact_text, redact_url

Buffer = bytes | bytearray | memoryview


class DetachedBody:
    """A request body a transport has already copied out of Python memory (in a browser: a
    ``Blob``), so the Python buffer can be freed while the request is in flight or retried.
    ``crc64``: the CRC-64/NVME of the bytes, set by the CAS client for grant uploads."""

    __slots__ = ("crc64", "handle", "size")

    def __init__(self, handle: Any, size: int, crc64: int | None = None) -> None:
        self.handle = handle
        self.size = size
        self.crc64 = crc64

    def __len__(self) -> int:
        return self.size

    def release(self) -> None:
        """Free the copy now (a worker holding it is terminated) once no request will send it
        again; a no-op for copies the garbage collector frees."""
        release = getattr(self.handle, "release", None)
        if release is not None:
            release()


Body = Buffer | DetachedBody

MIB = 1024 * 1024

#: Default timeouts (seconds). The read timeout is generous because ``/v1/shards`` answers only
#: after validating the whole shard.
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Transport.request` and :meth:`Transport.stream`."""

    headers: Mapping[str, str] | None
    body: Body | None
    timeout: float | None


@dataclass(slots=True)
class Request:
    """One request as :class:`BaseTransport` hands it to an implementation. Its ``repr()``
    leaves the headers out (they hold the bearer token)."""

    method: str
    url: str
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    body: Body | None = None
    timeout: float | None = None


#: Request headers a page may not set: ``fetch`` refuses or ignores them (browsers own them).
_FORBIDDEN = frozenset({"user-agent", "content-length", "host", "connection", "accept-encoding"})


def fetch_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` without those a page may not set (for every ``fetch`` a page or worker
    makes: :mod:`._pyfetch`, the pool's and the body workers' requests)."""
    return {k: v for k, v in (headers or {}).items() if k.lower() not in _FORBIDDEN}


def lower_headers(items: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """Response headers as a ``dict`` with lower-case names."""
    return {str(k).lower(): str(v) for k, v in items}


class TransportError(Exception):
    """No usable HTTP response: connection refused/reset/dropped, timeout, truncated body.

    Internal to the I/O layer: the retry logic turns it into a :class:`~xet_pyodide.errors.
    XetServerError` when it gives up, so callers never see it (except as that error's
    ``__cause__``, hence the redaction). ``detail``: what went wrong, redacted like ``url``
    (:func:`~xet_pyodide.errors.redact_text`: the text of a lower layer's exception may
    quote the URL); ``url``: the request's URL without its query; ``request_id``: the
    server's id when the failure came after the response head (a body that broke off);
    ``unreachable``: no connection could be made (refused, unknown host; in a browser, where
    ``fetch`` says only "Failed to fetch", also a CORS refusal or blocked mixed content).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        request_id: str | None = None,
        unreachable: bool = False,
    ) -> None:
        self.detail = redact_text(message, url)
        self.url = redact_url(url) if url else None
        self.request_id = request_id
        self.unreachable = unreachable
        super().__init__(f"{self.detail} ({self.url})" if self.url else self.detail)


#: Response headers naming the request for the server's operators, in order of preference:
#: the CAS server's own id, then those of the AWS load balancer and CloudFront CDN that answer
#: presigned xorb URLs (huggingface_hub reports the same ones). In a browser a cross-origin
#: header is only visible when the server lists it in ``Access-Control-Expose-Headers``.
REQUEST_ID_HEADERS = ("x-request-id", "x-amzn-trace-id", "x-amz-cf-id")


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The request id among ``headers`` (lower-case names; see :data:`REQUEST_ID_HEADERS`)."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


@dataclass(slots=True)
class Response:
    """A complete HTTP response. Header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str = ""

    @property
    def request_id(self) -> str | None:
        return request_id_of(self.headers)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(slots=True)
class StreamingResponse:
    """A response whose body has not been read yet.

    Iterate :meth:`aiter_bytes` (once) and always :meth:`aclose` (also after an error).
    """

    status: int
    headers: dict[str, str]
    url: str
    _chunks: AsyncIterator[bytes]
    _closer: object = field(default=None, repr=False)

    @property
    def request_id(self) -> str | None:
        return request_id_of(self.headers)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as byte blocks of transport-chosen sizes (empty blocks are skipped)."""
        return self._chunks

    async def read(self) -> bytes:
        """The whole remaining body."""
        parts = [block async for block in self._chunks]
        return b"".join(parts)

    async def aclose(self) -> None:
        closer = self._closer
        self._closer = None
        if closer is not None:
            await closer()  # type: ignore[operator]


@runtime_checkable
class Transport(Protocol):
    """What the rest of the package needs from an HTTP client.

    ``headers`` are sent as given (the caller composes them). ``body`` is sent with a
    ``Content-Length``; ``None`` means no body. ``timeout`` bounds the whole exchange for
    :meth:`request` and the time to the response head for :meth:`stream`.
    """

    #: True when requests go through a browser's ``fetch`` (forbidden headers such as
    #: ``User-Agent`` are dropped; extra headers on cross-origin URLs cost a CORS preflight).
    browser: bool

    async def request(
        self, method: str, url: str, **options: Unpack[RequestOptions]
    ) -> Response: ...

    async def stream(
        self, method: str, url: str, **options: Unpack[RequestOptions]
    ) -> StreamingResponse: ...

    async def aclose(self) -> None: ...


class BaseTransport:
    """Common front of the transport implementations: :meth:`request` and :meth:`stream` pack
    their arguments into a :class:`Request` and call ``_request`` / ``_stream``."""

    browser: bool = False

    async def request(self, method: str, url: str, **options: Unpack[RequestOptions]) -> Response:
        return await self._request(Request(method, url, **options))

    async def stream(
        self, method: str, url: str, **options: Unpack[RequestOptions]
    ) -> StreamingResponse:
        return await self._stream(Request(method, url, **options))

    async def _request(self, request: Request) -> Response:
        raise NotImplementedError

    async def _stream(self, request: Request) -> StreamingResponse:
        raise NotImplementedError

    async def detach(self, body: Buffer) -> DetachedBody | None:
        """A copy of ``body`` outside Python memory for later requests, or None when this
        transport sends Python buffers as they are (the default). ``body`` may be freed once
        this returned."""
        return None

    async def aclose(self) -> None:
        """Nothing to release by default."""


def default_download_buffer_bytes() -> int:
    """Default of ``SessionConfig.download_buffer_bytes``: 96 MiB under Pyodide (its heap never
    shrinks, and the page holds Blob parts too), 256 MiB elsewhere."""
    return (96 if sys.platform == "emscripten" else 256) * MIB


__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "REQUEST_ID_HEADERS",
    "BaseTransport",
    "Request",
    "RequestOptions",
    "Response",
    "StreamingResponse",
    "Transport",
    "TransportError",
    "default_download_buffer_bytes",
    "fetch_headers",
    "lower_headers",
    "request_id_of",
]
