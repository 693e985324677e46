"""HttpxTransport against a real local HTTP server (aiohttp): bodies, streaming, failures."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.cpython.test_session_fakecas import serve_app
from xet_pyodide.io import default_transport
from xet_pyodide.io._httpx import HttpxTransport
from xet_pyodide.io.transport import TransportError


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "length": len(body),
            "content_length": request.headers.get("Content-Length"),
            "chunked": request.headers.get("Transfer-Encoding"),
            "sum": sum(body) % 65521,
            "ua": request.headers.get("User-Agent"),
        },
        headers={"X-Request-Id": "abc"},
    )


async def stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for i in range(5):
        await resp.write(f'{{"i": {i}}}\n'.encode())
        await asyncio.sleep(0.01)
    await resp.write_eof()
    return resp


async def broken(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Length": "1000000"})
    await resp.prepare(request)
    await resp.write(b"x" * 1000)
    assert request.transport is not None
    request.transport.close()  # die half-way through the promised body
    return resp


@pytest.fixture
def server() -> Iterator[str]:
    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/stream", stream)
    app.router.add_get("/broken", broken)
    with serve_app(app) as url:
        yield url


async def test_default_transport_is_httpx() -> None:
    transport = default_transport()
    assert isinstance(transport, HttpxTransport) and transport.browser is False


async def test_request_bodies_and_headers(server: str) -> None:
    t = HttpxTransport()
    data = bytes(range(256)) * 10_000
    for body in (data, bytearray(data), memoryview(data)[100:]):
        resp = await t.request("POST", f"{server}/echo", headers={"User-Agent": "me"}, body=body)
        info = json.loads(resp.body)
        expected = bytes(body)
        assert resp.status == 200 and resp.request_id == "abc"
        assert info["length"] == len(expected)
        assert info["content_length"] == str(len(expected)) and info["chunked"] is None
        assert info["sum"] == sum(expected) % 65521
        assert info["ua"] == "me"
    await t.aclose()


async def test_streamed_response(server: str) -> None:
    t = HttpxTransport()
    resp = await t.stream("GET", f"{server}/stream")
    try:
        assert resp.status == 200 and resp.headers["content-type"] == "application/x-ndjson"
        body = await resp.read()
    finally:
        await resp.aclose()
    assert body.decode().splitlines() == [f'{{"i": {i}}}' for i in range(5)]
    await t.aclose()


async def test_failures_are_transport_errors(server: str) -> None:
    t = HttpxTransport(connect_timeout=2, read_timeout=5)
    with pytest.raises(TransportError):
        await t.request("GET", f"{server}/broken")
    resp = await t.stream("GET", f"{server}/broken")
    with pytest.raises(TransportError):
        await resp.read()
    await resp.aclose()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(TransportError):
        await t.request("GET", f"http://127.0.0.1:{port}/")
    await t.aclose()
