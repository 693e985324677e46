"""HttpClient: headers, retries with backoff (fake clock), Retry-After, 501, 401 recovery."""

from __future__ import annotations

import random

import pytest

from xet_pyodide.errors import XetAuthError, XetServerError
from xet_pyodide.io.http import HttpClient, default_user_agent
from xet_pyodide.io.retry import RetryPolicy, parse_retry_after
from xet_pyodide.io.testing import MockRequest, MockTransport, json_response
from xet_pyodide.io.tokens import TokenInfo, TokenSource
from xet_pyodide.io.transport import Response, TransportError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(fc: FakeClock, **kw) -> RetryPolicy:
    return RetryPolicy(clock=fc.clock, sleep=fc.sleep, rng=random.Random(0), **kw)


def scripted(*answers):
    """A handler returning the given responses (or raising TransportError) in order."""
    queue = list(answers)

    def handler(req: MockRequest) -> Response:
        item = queue.pop(0)
        if item == "drop":
            raise TransportError("connection reset")
        status, headers = item if isinstance(item, tuple) else (item, {})
        return Response(status, {"x-request-id": f"req-{len(queue)}", **headers}, b"{}")

    return handler


def client(handler, fc: FakeClock, *, tokens=None, **kw) -> tuple[HttpClient, MockTransport]:
    transport = MockTransport(handler)
    tokens = tokens or TokenSource(TokenInfo("tok", 10**10))
    return HttpClient(transport, tokens, retry=policy(fc, **kw), session_id="sess-1"), transport


async def test_headers_bearer_only_on_cas_calls() -> None:
    fc = FakeClock()
    http, transport = client(lambda r: Response(200, {}, b""), fc)
    await http.send("GET", "http://cas/v1/x", what="t")
    await http.send("PUT", "http://s3/presigned", what="t", auth=False, external=True)
    cas_req, ext_req = transport.requests
    assert cas_req.header("authorization") == "Bearer tok"
    assert cas_req.header("x-xet-session-id") == "sess-1"
    assert cas_req.header("user-agent") == default_user_agent() == "xet_pyodide/0.1.0"
    assert ext_req.header("authorization") is None
    assert ext_req.header("x-xet-session-id") == "sess-1"  # hf_xet sends it everywhere


async def test_browser_transport_skips_our_headers_on_external_urls() -> None:
    fc = FakeClock()
    transport = MockTransport(lambda r: Response(200, {}, b""), browser=True)
    http = HttpClient(transport, None, retry=policy(fc))
    await http.send("PUT", "https://s3/x", what="t", auth=False, external=True, headers={"A": "1"})
    assert transport.requests[0].headers == {"A": "1"}


async def test_retries_5xx_and_drops_then_succeeds() -> None:
    fc = FakeClock()
    http, transport = client(scripted(503, "drop", 502, 200), fc, base_delay=1.0)
    resp = await http.send("POST", "http://cas/x", what="t", body=b"abc")
    assert resp.status == 200
    assert len(transport.requests) == 4
    assert [r.body for r in transport.requests] == [b"abc"] * 4
    # exponential: attempt k waits in [c/2, c] with c = 1, 2, 4
    for k, wait in enumerate(fc.sleeps):
        assert 2**k / 2 <= wait <= 2**k
    assert http.stats.retries == 3


async def test_honours_retry_after_and_gives_up_with_request_id() -> None:
    fc = FakeClock()
    answers = [(429, {"retry-after": "7"})] * 3
    http, _ = client(scripted(*answers), fc, max_attempts=3, max_delay=30)
    with pytest.raises(XetServerError) as info:
        await http.send("GET", "http://cas/x", what="probe")
    assert fc.sleeps == [7.0, 7.0]
    assert info.value.status == 429
    assert info.value.request_id == "req-0"
    assert "after 3 attempts" in str(info.value)


async def test_total_time_bound() -> None:
    fc = FakeClock()
    http, transport = client(scripted(*[500] * 10), fc, base_delay=10, max_total=25, max_delay=10)
    with pytest.raises(XetServerError):
        await http.send("GET", "http://cas/x", what="t")
    assert fc.now <= 25
    assert len(transport.requests) < 10


async def test_501_and_4xx_are_not_retried() -> None:
    for status in (501, 400, 404, 403):
        fc = FakeClock()
        http, transport = client(scripted(status), fc)
        resp = await http.send("GET", "http://cas/x", what="t")
        assert resp.status == status and len(transport.requests) == 1


async def test_429_not_retried_when_asked() -> None:
    fc = FakeClock()
    http, transport = client(scripted(429), fc)
    resp = await http.send("GET", "http://cas/x", what="t", retry_429=False)
    assert resp.status == 429 and len(transport.requests) == 1


async def test_connection_failure_exhausted_is_server_error_without_status() -> None:
    fc = FakeClock()
    http, _ = client(scripted(*["drop"] * 3), fc, max_attempts=3)
    with pytest.raises(XetServerError) as info:
        await http.send("GET", "http://cas/x", what="t")
    assert info.value.status is None


async def test_401_refreshes_once_and_retries() -> None:
    fc = FakeClock()
    issued = iter(["new-1", "new-2"])
    tokens = TokenSource(TokenInfo("stale", 10**10), lambda: TokenInfo(next(issued), 10**10))

    def handler(req: MockRequest) -> Response:
        ok = req.header("authorization") == "Bearer new-1"
        return json_response(200 if ok else 401, {})

    http, transport = client(handler, fc, tokens=tokens)
    assert (await http.send("GET", "http://cas/x", what="t")).status == 200
    assert [r.header("authorization") for r in transport.requests] == [
        "Bearer stale",
        "Bearer new-1",
    ]
    # A token that keeps being refused: one refresh, then the 401 comes back to the caller.
    tokens2 = TokenSource(TokenInfo("a", 10**10), lambda: TokenInfo("b", 10**10))
    http2, transport2 = client(lambda r: json_response(401, {}), fc, tokens=tokens2)
    assert (await http2.send("GET", "http://cas/x", what="t")).status == 401
    assert len(transport2.requests) == 2


async def test_missing_token_is_auth_error() -> None:
    fc = FakeClock()
    http = HttpClient(MockTransport(lambda r: Response(200, {}, b"")), None, retry=policy(fc))
    with pytest.raises(XetAuthError):
        await http.send("GET", "http://cas/x", what="t")


def test_parse_retry_after() -> None:
    assert parse_retry_after("3", 0) == 3.0
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("garbage", 0) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0


async def test_unreachable_server_is_named_and_the_url_shown_once() -> None:
    """Nothing listens: the error says the server could not be reached, with the URL once
    (the transport's own text quoted it too); in a page it adds the CORS / mixed-content
    hint, since fetch() fails the same way for those."""
    url = "http://127.0.0.1:9/v1/xorbs/default/ab?sig=0123456789abcdef"

    def handler(req: MockRequest) -> Response:
        raise TransportError(f"Failed to fetch ({req.url})", url=req.url, unreachable=True)

    for browser in (False, True):
        fc = FakeClock()
        http, transport = client(handler, fc, max_attempts=2)
        transport.browser = browser
        with pytest.raises(XetServerError) as info:
            await http.send("POST", url, what="xorb upload")
        text = str(info.value)
        assert text.startswith("xorb upload failed: the server could not be reached"), text
        assert "(after 2 attempts; Failed to fetch)" in text
        assert text.count("127.0.0.1:9") == 1 and "0123456789abcdef" not in text
        assert text.endswith("(http://127.0.0.1:9/v1/xorbs/default/ab)")
        assert ("CORS" in text and "mixed content" in text) is browser
        assert info.value.status is None


async def test_httpx_connect_error_is_unreachable() -> None:
    """The real CPython transport against a closed port: the typed error says so."""
    from xet_pyodide.io.runtime import default_transport

    http = HttpClient(default_transport(), None, retry=RetryPolicy(max_attempts=1))
    try:
        with pytest.raises(XetServerError) as info:
            await http.send("GET", "http://127.0.0.1:9/x", what="token refresh", auth=False)
    finally:
        await http.aclose()
    assert str(info.value).startswith(
        "token refresh failed: the server could not be reached (1 attempt; ConnectError: ")
    assert str(info.value).count("http://127.0.0.1:9/x") == 1


async def test_retries_are_announced_before_their_wait() -> None:
    """on_retry hears of each retry, before the wait: what, attempt, delay and why (no URL)."""
    fc = FakeClock()
    heard: list[tuple[float, object]] = []

    async def listener(notice: object) -> None:
        heard.append((fc.now, notice))

    def handler(req: MockRequest) -> Response:
        if len(heard) == 0:
            raise TransportError(f"Failed to fetch ({req.url})", url=req.url, unreachable=True)
        if len(heard) == 1:
            return Response(503, {}, b"")
        return Response(200, {}, b"")

    http, _ = client(handler, fc, max_attempts=4, on_retry=listener)
    assert (await http.send("POST", "http://cas/v1/xorbs/x?sig=secretsecret",
                            what="xorb upload")).status == 200
    (t1, n1), (t2, n2) = heard
    assert (n1.what, n1.attempt, n1.max_attempts) == ("xorb upload", 1, 4)
    assert n1.reason == "server unreachable (Failed to fetch)"
    assert (n2.attempt, n2.reason) == (2, "HTTP 503")
    assert t1 == 0.0 and t2 == pytest.approx(fc.sleeps[0])  # announced before each sleep
    assert [n1.delay, n2.delay] == fc.sleeps
    assert n1.to_dict() == {"what": "xorb upload", "attempt": 1, "max_attempts": 4,
                            "delay": round(fc.sleeps[0], 3),
                            "reason": "server unreachable (Failed to fetch)"}
