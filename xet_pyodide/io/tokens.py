"""CAS access tokens: the value type, duck-typed adapters and the refreshing token source.

Callers hand us tokens in many shapes, and we accept them all without importing ``js``:

* a :class:`TokenInfo`, a ``(token, exp)`` tuple, or a mapping with ``token``/``accessToken``
  and ``exp`` (the Hub's token-endpoint JSON);
* any object whose ``token``/``accessToken`` and ``exp`` are attributes *or* zero-argument
  methods — this covers a JS ``TokenInfo`` reached through a Pyodide ``JsProxy`` whether it
  uses getters or methods, with ``exp`` possibly a JS ``BigInt`` (which Pyodide already turns
  into a Python ``int``) or a JS number (float).

A refresher is a callable returning one of the above (sync or awaitable), or an object with a
``refreshToken()`` method (the JS ``TokenRefresher`` shape, returning a Promise, which is
awaitable from Pyodide).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import XetAuthError

#: Refresh when the token expires within this many seconds (hf_xet uses 30 s).
REFRESH_MARGIN = 30.0


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A CAS access token and its expiry (unix seconds). ``cas_url`` is set when the token
    came from a Hub-style token endpoint that also names the CAS server. ``repr()`` leaves
    the token out (a repr ends up in logs, tracebacks and debugger output)."""

    token: str = field(repr=False)
    exp: int
    cas_url: str | None = None

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.exp <= now + seconds


def _member(obj: Any, *names: str) -> Any:
    """First present member among ``names``: mapping key, attribute, or zero-arg method result."""
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
            continue
        try:
            value = getattr(obj, name)
        except AttributeError:
            continue
        if value is None:
            continue
        if callable(value) and not isinstance(value, (str, int, float)):
            value = value()
        return value
    return None


def coerce_token_info(obj: Any) -> TokenInfo:
    """Turn any accepted token shape into a :class:`TokenInfo` (see module docstring)."""
    if isinstance(obj, TokenInfo):
        return obj
    if isinstance(obj, tuple) and len(obj) in (2, 3):
        token, exp, *rest = obj
        cas_url = rest[0] if rest else None
    else:
        token = _member(obj, "token", "accessToken", "access_token")
        exp = _member(obj, "exp", "expiration", "expiresAt", "expires_at")
        cas_url = _member(obj, "casUrl", "cas_url", "endpoint")
    if not isinstance(token, str) or not token:
        raise XetAuthError(f"token info has no usable token (got {type(token).__name__})")
    try:
        exp_int = int(exp)  # JS BigInt arrives as int, a JS number as float
    except (TypeError, ValueError):
        raise XetAuthError(f"token info has no usable expiry (got {exp!r:.40})") from None
    return TokenInfo(token, exp_int, str(cas_url) if cas_url else None)


async def call_refresher(refresher: Any) -> TokenInfo:
    """Invoke a refresher of any accepted shape and await its result if needed."""
    method = getattr(refresher, "refreshToken", None) or getattr(refresher, "refresh_token", None)
    target = method if method is not None else refresher
    if not callable(target):
        raise TypeError("a token refresher must be callable or have a refreshToken() method")
    result = target()
    if inspect.isawaitable(result):
        result = await result
    return coerce_token_info(result)


class TokenSource:
    """Hands out a valid bearer token, refreshing ahead of expiry.

    * ``get()`` refreshes when the token expires within ``margin`` seconds (or there is none);
    * ``refresh_after_rejection(token)`` is called after a 401: it refreshes once unless someone
      already replaced that token;
    * at most one refresh runs at a time; concurrent callers wait for it and share its result.

    Without a refresher, an expired token is still handed out (the server decides), and a 401
    cannot be recovered.
    """

    def __init__(
        self,
        token_info: Any = None,
        refresher: Any = None,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self._info = coerce_token_info(token_info) if token_info is not None else None
        self._refresher = refresher
        self._clock = clock
        self._margin = margin
        self._inflight: asyncio.Future[TokenInfo] | None = None
        self.refresh_count = 0

    @property
    def info(self) -> TokenInfo | None:
        return self._info

    @property
    def can_refresh(self) -> bool:
        return self._refresher is not None

    async def get(self) -> str:
        info = self._info
        if info is None or (
            self._refresher is not None and info.expires_within(self._margin, self._clock())
        ):
            info = await self._refresh()
        return info.token

    async def refresh_after_rejection(self, rejected: str) -> bool:
        """After a 401 with ``rejected``: make sure a different token is current.

        Returns True when a new token is available (retry the request), False otherwise.
        """
        if self._refresher is None:
            return False
        if self._info is not None and self._info.token != rejected:
            return True  # someone refreshed meanwhile
        try:
            info = await self._refresh()
        except XetAuthError:
            return False
        return info.token != rejected

    async def _refresh(self) -> TokenInfo:
        if self._refresher is None:
            raise XetAuthError("no access token and no token refresher")
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        future: asyncio.Future[TokenInfo] = asyncio.get_running_loop().create_future()
        self._inflight = future
        try:
            info = await call_refresher(self._refresher)
        except BaseException as exc:
            error = (
                exc
                if isinstance(exc, XetAuthError)
                else XetAuthError(f"token refresh failed: {type(exc).__name__}: {exc}")
            )
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters (if any) get it through shield
            self._inflight = None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise error from exc
        self._info = info
        self.refresh_count += 1
        future.set_result(info)
        self._inflight = None
        return info


__all__ = ["REFRESH_MARGIN", "TokenInfo", "TokenSource", "call_refresher", "coerce_token_info"]
