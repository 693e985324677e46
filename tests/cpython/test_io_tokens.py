"""Token shapes (Python and JS-proxy-like), refresh ahead of expiry, single flight, 401."""

from __future__ import annotations

import asyncio

import pytest

from xet_pyodide.errors import XetAuthError
from xet_pyodide.io.tokens import TokenInfo, TokenSource, call_refresher, coerce_token_info


class MethodForm:
    """Like a JS class exposing ``token()`` / ``exp()`` methods (exp as a BigInt → int)."""

    def __init__(self, token: str, exp: int) -> None:
        self._t, self._e = token, exp

    def token(self) -> str:
        return self._t

    def exp(self) -> int:
        return self._e


class PropertyForm:
    """Like a JS object with getters; ``exp`` a JS number (float)."""

    accessToken = "prop-token"
    exp = 1_900_000_000.0


class JsRefresher:
    """Like a JS ``TokenRefresher`` whose ``refreshToken()`` returns a Promise."""

    def __init__(self) -> None:
        self.calls = 0

    def refreshToken(self):  # the JS method name
        self.calls += 1

        async def promise() -> MethodForm:
            return MethodForm(f"js-{self.calls}", 2_000_000_000)

        return promise()


def test_coerce_token_shapes() -> None:
    assert coerce_token_info(("t", 5)) == TokenInfo("t", 5)
    assert coerce_token_info({"accessToken": "a", "exp": 7, "casUrl": "http://c"}) == TokenInfo(
        "a", 7, "http://c"
    )
    assert coerce_token_info(MethodForm("m", 2**40)) == TokenInfo("m", 2**40)
    assert coerce_token_info(PropertyForm()) == TokenInfo("prop-token", 1_900_000_000)
    with pytest.raises(XetAuthError):
        coerce_token_info({"exp": 3})
    with pytest.raises(XetAuthError):
        coerce_token_info({"token": "x", "exp": "soon"})


async def test_refresher_shapes() -> None:
    assert (await call_refresher(lambda: ("sync", 1))).token == "sync"

    async def coro() -> dict:
        return {"token": "async", "exp": 2}

    assert (await call_refresher(coro)).token == "async"
    js = JsRefresher()
    info = await call_refresher(js)
    assert info == TokenInfo("js-1", 2_000_000_000) and js.calls == 1


async def test_refreshes_ahead_of_expiry_only() -> None:
    now = [1000.0]
    calls: list[int] = []

    def refresher() -> TokenInfo:
        calls.append(1)
        return TokenInfo(f"t{len(calls)}", int(now[0]) + 600)

    src = TokenSource(TokenInfo("t0", 1100), refresher, clock=lambda: now[0])
    assert await src.get() == "t0"  # expires in 100 s > 30 s margin
    now[0] = 1071.0  # 29 s left: refresh
    assert await src.get() == "t1"
    assert await src.get() == "t1"
    assert len(calls) == 1


async def test_single_refresh_in_flight() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def refresher() -> TokenInfo:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return TokenInfo("fresh", 10**10)

    src = TokenSource(None, refresher)
    waiters = [asyncio.ensure_future(src.get()) for _ in range(5)]
    await started.wait()
    release.set()
    assert await asyncio.gather(*waiters) == ["fresh"] * 5
    assert calls == 1


async def test_refresh_after_rejection_once_per_token() -> None:
    n = 0

    def refresher() -> TokenInfo:
        nonlocal n
        n += 1
        return TokenInfo(f"r{n}", 10**10)

    src = TokenSource(TokenInfo("old", 10**10), refresher)
    assert await src.refresh_after_rejection("old") is True
    assert await src.get() == "r1"
    # a second caller rejected with the *old* token does not trigger another refresh
    assert await src.refresh_after_rejection("old") is True
    assert n == 1
    no_refresher = TokenSource(TokenInfo("x", 1))
    assert await no_refresher.refresh_after_rejection("x") is False
    assert await no_refresher.get() == "x"  # expired but nothing better: the server decides


async def test_refresh_failure_is_auth_error() -> None:
    def broken() -> TokenInfo:
        raise RuntimeError("hub down")

    src = TokenSource(None, broken)
    with pytest.raises(XetAuthError, match="hub down"):
        await src.get()
