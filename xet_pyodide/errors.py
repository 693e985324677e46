"""Typed errors. Every failure a caller can act on is one of these.

The hierarchy is deliberately flat so that ``except XetError`` catches everything we raise,
while callers who care can tell a malformed object from a refused token from a flaky server.
"""

from __future__ import annotations


class XetError(Exception):
    """Base class of every error raised by xet_pyodide."""


class XetProtocolError(XetError):
    """A peer spoke the protocol wrongly (unexpected response shape, missing field, ...)."""


class XetFormatError(XetProtocolError):
    """Bytes that should be a xorb, shard, LZ4 frame, ... are malformed.

    Raised by the parsers on truncated, bit-flipped or hostile input; parsers never crash
    with IndexError/struct.error or allocate memory proportional to an untrusted count.
    """


class XetIntegrityError(XetError):
    """Data decoded fine but does not hash to what it claims (chunk, xorb or file hash)."""


class XetAbortedError(XetError):
    """The operation was stopped: through its ``AbortSignal`` (browser front door; the JS
    glue rejects with the signal's ``reason`` instead, as ``fetch`` does), or because its
    session was closed or aborted while it ran."""


class XetReadError(XetError):
    """The data to upload or hash could not be read: a ``File``/``Blob`` read failed (the
    browser says ``NotReadableError`` when a chosen file was changed, moved or deleted
    afterwards), or it came out shorter than its size said."""


class XetKernelError(XetError):
    """The WebAssembly kernels could not be loaded or reported an internal error."""


class _HttpError(XetError):
    """An HTTP-level failure; carries what a user needs to report it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        url: str | None = None,
    ) -> None:
        details = []
        if status is not None:
            details.append(f"HTTP {status}")
        if request_id:
            details.append(f"request id {request_id}")
        if url:
            details.append(url)
        super().__init__(f"{message} ({', '.join(details)})" if details else message)
        self.status = status
        self.request_id = request_id
        self.url = url


class XetAuthError(_HttpError):
    """The token is missing, expired, invalid or lacks the needed scope (401/403)."""


class XetServerError(_HttpError):
    """The server failed (5xx, 429, dropped connection) and retries were exhausted,
    or it refused the request with a status we cannot recover from."""


class XetNotFoundError(_HttpError):
    """The requested object (file, xorb) does not exist on the server."""


class XetRangeError(_HttpError):
    """A requested byte range is not satisfiable (HTTP 416)."""


class XetResponseError(XetProtocolError, _HttpError):
    """The server answered, but not with a valid protocol response (garbage body, missing
    field, unexpected status). Carries the status and request id like the other HTTP errors."""


__all__ = [
    "XetAbortedError",
    "XetAuthError",
    "XetError",
    "XetFormatError",
    "XetIntegrityError",
    "XetKernelError",
    "XetNotFoundError",
    "XetProtocolError",
    "XetRangeError",
    "XetReadError",
    "XetResponseError",
    "XetServerError",
]
