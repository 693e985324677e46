"""HTTP requests with Xet headers, bearer tokens, 401 recovery and retries.

:class:`HttpClient` wraps a :class:`~xet_pyodide.io.transport.Transport`:

* headers (protocol §7.1): ``X-Xet-Session-Id`` on every request, ``User-Agent:
  xet_pyodide/<version>``, caller-supplied custom headers, and ``Authorization: Bearer`` only on
  CAS calls (``auth=True``), never on grant or presigned URLs;
* tokens come from a :class:`~xet_pyodide.io.tokens.TokenSource` (refreshed ahead of expiry);
  a 401 triggers one refresh and one more try;
* retryable failures (see :mod:`.retry`) are retried with backoff; when the policy gives up,
  a typed error carrying the status, the request id and the server's message is raised (the
  URL in it without its query: :class:`~xet_pyodide.errors.XetError` subclasses for HTTP
  failures redact it themselves).

Non-retryable responses (2xx, 4xx, 501) are returned as they are: the caller knows which of
them mean "fall back" (404/501) and turns the rest into errors with :func:`raise_for_status`.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict, Unpack

from .._version import __version__
from ..errors import XetAuthError, XetServerError
from .retry import RetryPolicy, error_for_response, is_retryable_status, parse_retry_after
from .tokens import TokenSource
from .transport import Body, Response, StreamingResponse, Transport, TransportError


def default_user_agent() -> str:
    return f"xet_pyodide/{__version__}"


def new_session_id() -> str:
    """A random UUID (hf_xet uses v7; servers only log it)."""
    return str(uuid.uuid4())


def raise_for_status(resp: Response, what: str, ok: tuple[int, ...] = (200, 201)) -> Response:
    """Return ``resp`` if its status is in ``ok``; raise the matching typed error otherwise."""
    if resp.status not in ok:
        raise error_for_response(resp, what)
    return resp


class StreamOptions(TypedDict, total=False):
    """Keyword options of :meth:`HttpClient.send_stream` (defaults in brackets).

    ``body`` [None]; ``headers`` [None]: extra headers, applied last; ``auth`` [True]: send the
    bearer token (CAS calls only); ``external`` [False]: a grant or presigned URL, possibly on
    another origin (see :meth:`HttpClient.base_headers`); ``retry`` [the client's policy];
    ``timeout`` [the transport's].
    """

    body: Body | None
    headers: Mapping[str, str] | None
    auth: bool
    external: bool
    retry: RetryPolicy | None
    timeout: float | None


class SendOptions(StreamOptions, total=False):
    """Keyword options of :meth:`HttpClient.send`: those of :class:`StreamOptions` and
    ``retry_429`` [True] (whether a 429 is retried like a 5xx)."""

    retry_429: bool


@dataclass
class RequestStats:
    """Counters for tests and metrics."""

    requests: int = 0
    retries: int = 0
    auth_refreshes: int = 0


class HttpClient:
    """See module docstring. One per session; shared by upload and download code."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenSource | None = None,
        *,
        retry: RetryPolicy | None = None,
        session_id: str | None = None,
        user_agent: str | None = None,
        custom_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.session_id = session_id or new_session_id()
        self.user_agent = user_agent or default_user_agent()
        self.custom_headers = dict(custom_headers or {})
        self.stats = RequestStats()

    def with_transport(self, transport: Transport) -> HttpClient:
        """This client sending through ``transport`` instead: a shallow copy, so everything
        else (tokens, retry policy, session id, headers, the request counters) is shared and
        no field can be forgotten when the class gains one."""
        clone = copy.copy(self)
        clone.transport = transport
        return clone

    def base_headers(self, *, external: bool = False) -> dict[str, str]:
        """Headers every request carries. ``external`` (grant/presigned URLs, possibly on another
        origin): in a browser, skip our own headers to avoid CORS preflights they would fail."""
        if external and self.transport.browser:
            return {}
        headers = {"User-Agent": self.user_agent, "X-Xet-Session-Id": self.session_id}
        headers.update(self.custom_headers)
        return headers

    async def _headers(
        self, auth: bool, external: bool, extra: Mapping[str, str] | None
    ) -> tuple[dict[str, str], str | None]:
        headers = self.base_headers(external=external)
        token = None
        if auth:
            if self.tokens is None:
                raise XetAuthError("this request needs an access token and none was given")
            token = await self.tokens.get()
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers, token

    async def send(
        self, method: str, url: str, *, what: str, **options: Unpack[SendOptions]
    ) -> Response:
        """Send with retries; returns the first non-retryable response (see module docstring)."""
        resp = await self._send(method, url, what, stream=False, **options)
        assert isinstance(resp, Response)
        return resp

    async def send_stream(
        self, method: str, url: str, *, what: str, **options: Unpack[StreamOptions]
    ) -> Response | StreamingResponse:
        """Like :meth:`send`, but a 2xx response comes back unread (caller must ``aclose`` it);
        any other final status comes back as a read :class:`Response`."""
        return await self._send(method, url, what, stream=True, **options)

    async def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        stream: bool,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        external: bool = False,
        retry: RetryPolicy | None = None,
        retry_429: bool = True,
        timeout: float | None = None,
    ) -> Response | StreamingResponse:
        state = (retry or self.retry).start()
        refreshed = False
        while True:
            all_headers, token = await self._headers(auth, external, headers)
            self.stats.requests += 1
            try:
                resp = await self._once(method, url, all_headers, body, timeout, stream)
            except TransportError as exc:
                if await state.backoff(what=what, reason=_no_response_reason(exc)):
                    self.stats.retries += 1
                    continue
                raise XetServerError(
                    self._no_response_message(what, exc, state.attempts),
                    url=url,
                    request_id=exc.request_id,
                ) from exc
            if isinstance(resp, StreamingResponse):
                return resp
            status = resp.status
            if status == 401 and auth and not refreshed and self.tokens is not None:
                refreshed = True
                if token is not None and await self.tokens.refresh_after_rejection(token):
                    self.stats.auth_refreshes += 1
                    continue
            if is_retryable_status(status) and (retry_429 or status != 429):
                wait = parse_retry_after(resp.headers.get("retry-after"), state.policy.clock())
                if await state.backoff(wait, what=what, reason=f"HTTP {status}"):
                    self.stats.retries += 1
                    continue
                raise error_for_response(resp, what, attempts=state.attempts)
            return resp

    def _no_response_message(self, what: str, exc: TransportError, attempts: int) -> str:
        """The message of the error raised when no HTTP response came. The URL is not in it:
        the error appends it (once) to its details."""
        tries = f"after {attempts} attempts" if attempts > 1 else "1 attempt"
        cause = _strip_url(exc.detail, exc.url)
        said = f"{tries}; {cause}" if cause else tries
        if not exc.unreachable:
            return f"{what} failed: {cause} ({tries})"
        if not self.transport.browser:
            return f"{what} failed: the server could not be reached ({said})"
        # fetch() says "Failed to fetch" for all of these alike; only the console tells.
        return (
            f"{what} failed: the server could not be reached, or the browser refused to send "
            f"the request ({said}). The browser console names the cause: a server that is "
            "down or at a wrong address, a server that refuses this page's origin (CORS), an "
            "http:// server called from an https:// page (mixed content), or a limit of the "
            "browser (such as net::ERR_BLOB_OUT_OF_MEMORY)"
        )

    async def _once(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None,
        timeout: float | None,
        stream: bool,
    ) -> Response | StreamingResponse:
        if not stream:
            return await self.transport.request(
                method, url, headers=headers, body=body, timeout=timeout
            )
        sresp = await self.transport.stream(
            method, url, headers=headers, body=body, timeout=timeout
        )
        if 200 <= sresp.status < 300:
            return sresp
        try:
            data = await sresp.read()
        finally:
            await sresp.aclose()
        return Response(sresp.status, sresp.headers, data, sresp.url)

    async def aclose(self) -> None:
        await self.transport.aclose()


def _strip_url(text: str, url: str | None) -> str:
    """``text`` without ``url`` (already redacted) and the brackets around it: a lower layer's
    message that quotes the URL would otherwise show it twice."""
    if url:  # "(URL)", or "(URL" when redaction cut a query with the bracket after it
        text = re.sub(r"\(?\s*" + re.escape(url) + r"\s*\)?", "", text)
    return " ".join(text.split()).rstrip(" :")


def _no_response_reason(exc: TransportError) -> str:
    """Why an attempt got no response, for a retry announcement (no URL in it)."""
    cause = _strip_url(exc.detail, exc.url)
    if exc.unreachable:
        return "server unreachable" + (f" ({cause})" if cause else "")
    return cause or "no response"


__all__ = [
    "HttpClient",
    "RequestStats",
    "SendOptions",
    "StreamOptions",
    "default_user_agent",
    "new_session_id",
    "raise_for_status",
]
