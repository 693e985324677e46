"""Typed errors. Every failure a caller can act on is one of these.

The hierarchy is deliberately flat so that ``except XetError`` catches everything we raise,
while callers who care can tell a malformed object from a refused token from a flaky server.

HTTP errors never show a URL's query: a presigned xorb or upload URL is a bearer credential
until it expires (its signature sits in the query, under whatever parameter name the issuer
chose). The redaction happens where such errors are built, whoever builds them: the
constructor of :class:`_HttpError` (every HTTP error class) redacts its ``url``, its message
and the server's message with :func:`redact_url` and :func:`redact_text`, and
:class:`~xet_pyodide.io.transport.TransportError` (a request without an answer, the
``__cause__`` of a ``XetServerError``) does the same with its own.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

#: ``scheme://user:password@`` at the start of a URL (RFC 3986 userinfo).
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
#: A URL inside free text: up to whitespace, a quote or an angle bracket (a query may hold
#: anything else, parentheses included, so it is cut there rather than at a ``)``).
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+""")
#: Query values at least this long are also removed wherever they appear in a message (a
#: server may echo the signature it refused); shorter ones are too common to search for.
_SECRET_MIN = 8


def redact_url(url: str) -> str:
    """``url`` as an error may show it: without its query and fragment, and without
    ``user:password@``. Scheme, host, port and path stay (they say which server and object
    failed). The client builds no URL with a query itself, so nothing useful is lost."""
    base = re.split(r"[?#]", url, maxsplit=1)[0]
    return _USERINFO.sub(r"\1", base)


def redact_text(text: str, *urls: str | None) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`, and the query values
    of ``urls`` (the request's URLs: echoed signatures) removed wherever they appear."""
    for url in urls:
        for secret in _query_values(url or ""):
            text = text.replace(secret, "[redacted]")
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _query_values(url: str) -> set[str]:
    query = url.partition("?")[2].partition("#")[0]
    values = set()
    for pair in query.split("&"):
        raw = pair.partition("=")[2]
        for value in (raw, unquote_plus(raw)):
            if len(value) >= _SECRET_MIN:
                values.add(value)
    return values


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


class XetBlobLimitError(XetError, ValueError):
    """A ``downloadToBlob`` larger than the browser can be relied on to hold in Blob storage
    (``maxBlobBytes``): raised before anything is downloaded; ``downloadStream`` has no
    such limit (see docs/browser.md, "Blob storage")."""


class XetKernelError(XetError):
    """The WebAssembly kernels could not be loaded or reported an internal error."""


class _HttpError(XetError):
    """An HTTP-level failure; carries what a user needs to report it.

    ``status``: the HTTP status (None when no answer came); ``request_id``: the id the server
    or the CDN in front of it gave the request (``X-Request-Id``, ``X-Amzn-Trace-Id``,
    ``X-Amz-Cf-Id``); ``server_message``: what the server said about the failure (the
    ``message``/``error`` field of a JSON body, or an excerpt of the body); ``url``: the
    request's URL without its query (see the module docstring; the message, the server
    message and ``url`` are all redacted here, whoever built the error).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        url: str | None = None,
        server_message: str | None = None,
    ) -> None:
        message = redact_text(message, url)
        self.url = redact_url(url) if url else None
        self.server_message = redact_text(server_message, url) if server_message else None
        details = []
        if status is not None:
            details.append(f"HTTP {status}")
        if request_id:
            details.append(f"request id {request_id}")
        if self.url:
            details.append(self.url)
        super().__init__(f"{message} ({', '.join(details)})" if details else message)
        self.status = status
        self.request_id = request_id


class XetAuthError(_HttpError):
    """The token is missing, expired, invalid or lacks the needed scope (401/403)."""


class XetServerError(_HttpError):
    """The server failed (5xx, 429, dropped connection) and retries were exhausted,
    or it refused the request with a status we cannot recover from."""


class XetResumeStaleError(XetServerError):
    """The server refused the shard because xorbs recorded by an earlier, interrupted upload
    (upload resume) are not stored any more. Those xorbs were dropped from the resume state:
    uploading the same files again sends their chunks anew. ``xorbs``: their xet hex hashes."""

    def __init__(self, message: str, *, xorbs: list[str], **details: object) -> None:
        super().__init__(message, **details)  # type: ignore[arg-type]
        self.xorbs = xorbs


class XetNotFoundError(_HttpError):
    """The requested object (file, xorb) does not exist on the server."""


class XetRangeError(_HttpError):
    """A requested byte range is not satisfiable (HTTP 416)."""


class XetResponseError(XetProtocolError, _HttpError):
    """The server answered, but not with a valid protocol response (garbage body, missing
    field, unexpected status). Carries the status and request id like the other HTTP errors."""


class XetHubError(_HttpError):
    """The Hugging Face Hub refused a request (repository, commit, resolve, token endpoint…).

    Besides the HTTP fields, ``error_code`` is the Hub's ``X-Error-Code`` (``RepoNotFound``,
    ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``…) when it sent one, and
    ``server_message`` its ``{"error": …}`` (or ``X-Error-Message``). Subclasses say what a
    caller can do about it; they also derive from the CAS error of the same meaning, so
    ``except XetAuthError`` catches a refused Hub token too."""

    def __init__(self, message: str, *, error_code: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error_code = error_code


class XetHubAuthError(XetHubError, XetAuthError):
    """No token, an invalid one, or one without the right to read or write (401/403)."""


class XetHubNotFoundError(XetHubError, XetNotFoundError):
    """The repository, revision or file does not exist, or is not visible with this token
    (404; ``error_code`` tells which)."""


class XetHubConflictError(XetHubError):
    """409: the branch moved since ``parent_commit`` (someone else committed; fetch the new
    head, check, and commit again), or what is being created exists already."""


__all__ = [
    "XetAbortedError",
    "XetAuthError",
    "XetBlobLimitError",
    "XetError",
    "XetFormatError",
    "XetHubAuthError",
    "XetHubConflictError",
    "XetHubError",
    "XetHubNotFoundError",
    "XetIntegrityError",
    "XetKernelError",
    "XetNotFoundError",
    "XetProtocolError",
    "XetRangeError",
    "XetReadError",
    "XetResponseError",
    "XetResumeStaleError",
    "XetServerError",
    "redact_text",
    "redact_url",
]
