"""Shapes crossing the Python ↔ JavaScript boundary of the browser front door.

The JS glue (``web/xet_pyodide.js``) calls Python methods that return an *envelope*, a plain
JS object ``{ok: true, value}`` or ``{ok: false, error: {name, message, status, requestId,
serverMessage, errorCode, url, pythonTraceback}}``; JS turns the latter into an ``Error``
whose ``name`` is the Python exception type (``"XetAuthError"``, ...). Results use camelCase
keys, as JS code expects.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..errors import redact_text
from .jsinterop import invoke_callback, to_js_value


def camel(name: str) -> str:
    """``bytes_processed`` → ``bytesProcessed``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any) -> Any:
    """Recursively rename dict keys from snake_case to camelCase."""
    if isinstance(value, dict):
        return {camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def error_json(exc: BaseException) -> dict[str, Any]:
    """What JS needs to build its ``Error``: type name, message, HTTP details, traceback.

    Our HTTP errors are redacted already (:mod:`xet_pyodide.errors`); the traceback also
    quotes the exceptions they were raised from, whose text comes from other libraries (a
    browser's fetch error may quote the URL it could not fetch), so it and the message go
    through :func:`~xet_pyodide.errors.redact_text` once more on their way to the page."""
    return {
        "name": type(exc).__name__,
        "message": redact_text(str(exc) or type(exc).__name__),
        "status": getattr(exc, "status", None),
        "requestId": getattr(exc, "request_id", None),
        "serverMessage": getattr(exc, "server_message", None),
        "errorCode": getattr(exc, "error_code", None),
        "url": getattr(exc, "url", None),
        "pythonTraceback": redact_text("".join(traceback.format_exception(exc))),
    }


def error_envelope(exc: BaseException) -> Any:
    return to_js_value({"ok": False, "error": error_json(exc)})


async def envelope(work: Awaitable[Any]) -> Any:
    """Await ``work``; return ``{ok, value}`` or ``{ok: false, error}`` as a JS object.

    Dicts and lists in ``value`` become JS objects and arrays, JS objects pass through, other
    Python objects reach JS as ``PyProxy`` objects (the JS side destroys them)."""
    try:
        value = await work
    except Exception as exc:  # every error crosses to JS as data; JS throws it
        return error_envelope(exc)
    return to_js_value({"ok": True, "value": value})


async def abortable(
    work: Coroutine[Any, Any, Any],
    signal: Any,
    cancellable: Callable[[], bool] | None = None,
) -> Any:
    """Await ``work``, cancelling it when the JS ``AbortSignal`` ``signal`` fires (``None``:
    not abortable); an aborted call raises :class:`~xet_pyodide.errors.XetAbortedError`
    (the JS glue rejects with ``signal.reason`` then). The work sees an ordinary
    ``asyncio.CancelledError`` and cleans up as on any cancellation (an upload abandons its
    file, a download closes its fetches).

    ``cancellable``: asked when the signal fires; if it says no (the work is past its point
    of no return, e.g. a commit sending its shard), the abort is ignored and the work
    finishes normally."""
    from ..errors import XetAbortedError

    if nullish(signal):
        return await work
    if signal.aborted:
        work.close()
        raise XetAbortedError("aborted before it started")
    from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

    task = asyncio.ensure_future(work)

    def on_abort(_event: Any) -> None:
        if cancellable is None or cancellable():
            task.cancel()

    listener = create_proxy(on_abort)
    signal.addEventListener("abort", listener)
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and signal.aborted and not _cancelling():
            raise XetAbortedError("aborted") from None
        task.cancel()  # this call itself was cancelled: stop the work too
        raise
    finally:
        signal.removeEventListener("abort", listener)
        listener.destroy()


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not just awaiting a cancelled
    one)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def nullish(value: Any) -> bool:
    """``None`` (JS ``undefined``) or Pyodide's ``jsnull`` (JS ``null``)."""
    if value is None:
        return True
    if sys.platform != "emscripten":
        return False
    from pyodide.ffi import jsnull  # type: ignore[import-not-found]

    return value is jsnull


def option(options: Any, name: str, default: Any = None) -> Any:
    """``options[name]`` of a JS options object (or a dict); ``default`` when absent, null
    or undefined."""
    if nullish(options):
        return default
    value = options.get(name) if isinstance(options, dict) else getattr(options, name, None)
    return default if nullish(value) else value


def console_error(message: str) -> None:
    """``console.error`` in a browser, stderr elsewhere."""
    if sys.platform == "emscripten":
        import js  # type: ignore[import-not-found]

        js.console.error(message)
    else:
        print(message, file=sys.stderr)


async def notify(listener: Any, payload: dict[str, Any]) -> None:
    """Call a user's progress listener; a failing listener is reported, never fatal."""
    try:
        await invoke_callback(listener, payload)
    except Exception as exc:
        console_error(f"xet_pyodide: progress listener failed: {type(exc).__name__}: {exc}")


__all__ = [
    "camel",
    "camel_keys",
    "console_error",
    "envelope",
    "error_envelope",
    "error_json",
    "notify",
    "nullish",
    "option",
]
