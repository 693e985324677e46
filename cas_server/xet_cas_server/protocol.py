"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol plus the limits it lacks.

uvicorn bounds neither the size of a request head (httptools accumulates a header value of
any length: a 200 MiB header was accepted) nor the time a client may take to send it (a
connection that sends half a request line stays open forever; the keep-alive timeout only
runs *between* requests), nor the pauses inside a request body. This subclass adds:

* ``max_head_bytes``: a request head (request line + headers) larger than this gets
  ``431 Request Header Fields Too Large`` and the connection is closed;
* ``head_timeout``: from the connection's start, or from the first byte of a request, the
  whole head must arrive within this many seconds (``408`` and close otherwise; a connection
  that never sent a byte is just closed);
* ``body_timeout``: while a request body is incomplete, a pause of this many seconds without a
  byte closes the connection (not counted while the server itself has paused reading because
  the application has not consumed what arrived);
* ``TCP_NODELAY`` on every connection: uvicorn writes a response's head and its body with
  separate ``write`` calls; with Nagle's algorithm on, the body waited for the client's delayed
  ACK of the head, ~40 ms on every response of a kept-alive connection.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Largest request head (request line + headers) accepted.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
#: Seconds a client has to send a complete request head.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Seconds without a byte allowed while a request body is incomplete.
DEFAULT_BODY_TIMEOUT = 30.0


def _plain_response(status: bytes, message: str) -> bytes:
    body = message.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; the limits are class attributes (:func:`protocol_class`)."""

    max_head_bytes = DEFAULT_MAX_HEAD_BYTES
    head_timeout = DEFAULT_HEAD_TIMEOUT
    body_timeout = DEFAULT_BODY_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_bytes = 0
        self._in_body = False  # a request body is still arriving
        self._timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- timers
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self.transport.write(_plain_response(b"408 Request Timeout", "request head too slow"))
        self.transport.close()

    def _body_idle(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._in_body:
            return
        if self.flow.read_paused:  # our own back-pressure, not the client's silence
            self._arm(self.body_timeout, self._body_idle)
            return
        self.transport.close()

    # ---------------------------------------------------------------- protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._arm(self.head_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head and not self._in_body:  # a kept-alive connection's next request
            self._start_head()
        if self._in_head:
            self._head_bytes += len(data)
        elif self._in_body:
            self._arm(self.body_timeout, self._body_idle)
        super().data_received(data)
        # Counted after parsing: ``data`` may end the head and carry the start of the body.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(
                    _plain_response(
                        b"431 Request Header Fields Too Large",
                        f"request head over {self.max_head_bytes} bytes",
                    )
                )
                self.transport.close()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._arm(self.head_timeout, self._head_expired)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a pipelined request, in the same read as the previous one
            self._start_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._arm(self.body_timeout, self._body_idle)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()


def protocol_class(
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
    head_timeout: float = DEFAULT_HEAD_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` option, with these limits."""
    return type(
        "CasHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "head_timeout": head_timeout,
            "body_timeout": body_timeout,
        },
    )
